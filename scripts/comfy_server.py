"""A headless ComfyUI server on loopback and the few HTTP calls we need (stdlib only).

Used by the main job and the graph tests: start ``main.py`` on a free port, queue an API-format
prompt on ``/prompt``, follow ``/history`` until it finishes, and list every file it wrote
(images, animated images, videos: any output entry carrying ``filename``). The HTTP requests, output
listing and error wording are the batch client's (``animdiff_batch.py``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

from animdiff_batch import HTTPStatusError, execution_failure, output_entries, request_json
from pack_import import RUNTIME_PYTHON


class PromptError(RuntimeError):
    """The server rejected a prompt or its execution failed; ``details`` is the server's JSON."""

    def __init__(self, message: str, details: dict):
        super().__init__(message)
        self.details = details


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """``with ComfyServer(comfy_dir, args) as server:`` a running ComfyUI, stopped on exit."""

    def __init__(self, comfy_dir: Path, extra_args: list[str], log_path: Path, python: str = RUNTIME_PYTHON,
                 env: dict | None = None):
        self.comfy_dir = Path(comfy_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path)
        self.cmd = [python, "main.py", "--listen", "127.0.0.1", "--port", str(self.port), "--disable-auto-launch", *extra_args]
        self.env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.env.pop("PYTHONSAFEPATH", None)  # main.py imports its own folder's modules
        self.process = None

    def __enter__(self) -> ComfyServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(self.cmd, cwd=self.comfy_dir, stdout=self._log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.process.poll() is not None:
                self.__exit__()
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode}; log: {self.log_path}\n{self.log()[-3000:]}")
            try:
                self.get("/object_info/KSampler")
                return self
            except (OSError, HTTPStatusError):
                time.sleep(0.3)
        self.__exit__()
        raise RuntimeError(f"ComfyUI did not answer within 180 s; log: {self.log_path}")

    def __exit__(self, *exc):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str):
        return request_json(self.url + path)

    def post(self, path: str, payload: dict):
        try:
            return request_json(self.url + path, payload)
        except HTTPStatusError as err:
            raise PromptError(f"{path} answered {err.status}: {json.dumps(err.body)[:2000]}", err.body) from None

    def queue(self, prompt: dict) -> str:
        return self.post("/prompt", {"prompt": prompt, "client_id": uuid.uuid4().hex})["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 900, progress=None) -> dict:
        """The prompt's ``/history`` entry once it is done; raises :class:`PromptError` if it failed."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            history = self.get(f"/history/{prompt_id}")
            if prompt_id in history:
                entry = history[prompt_id]
                status = entry.get("status", {})
                if status.get("status_str") == "error" or not status.get("completed", True):
                    failure = execution_failure(status, entry["prompt"][2])
                    raise PromptError(f"prompt {prompt_id} failed: {failure['message']} {json.dumps(failure['details'])[:2000]}", entry)
                return entry
            if progress:
                progress()
            time.sleep(0.25)
        raise TimeoutError(f"prompt {prompt_id} not finished after {timeout} s")

    def run(self, prompt: dict, **kwargs) -> dict:
        return self.wait(self.queue(prompt), **kwargs)


def output_files(entry: dict, output_dir: Path) -> list[Path]:
    """Every file a finished prompt wrote, whatever the output kind (images, gifs, videos, …)."""
    return [Path(output_dir) / item.get("subfolder", "") / item["filename"]
            for item in output_entries(entry) if item.get("type", "output") == "output"]
