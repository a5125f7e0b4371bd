"""A headless ComfyUI server on loopback for the main job and the tests, spoken to through the pack's client.

Start ``main.py`` on a free port (or a given one), queue an API-format prompt on ``/prompt``, follow it
until it finishes (its ``/ws`` events go to a ``progress`` callback), and list every file it wrote
(images, animated images, videos: any output entry carrying ``filename``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pack_import import RUNTIME_PYTHON, import_client  # noqa: E402

import_client()
from client.api import TRANSIENT, ComfyAPI, Events, HTTPStatusError, execution_failure, failed, output_entries  # noqa: E402


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
                 env: dict | None = None, port: int | None = None):
        self.comfy_dir = Path(comfy_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = ComfyAPI(self.url)
        self.client_id = uuid.uuid4().hex
        self.log_path = Path(log_path)
        self.cmd = [python, "main.py", "--listen", "127.0.0.1", "--port", str(self.port), "--disable-auto-launch", *extra_args]
        self.env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.env.pop("PYTHONSAFEPATH", None)  # main.py imports its own folder's modules
        self.process = None

    def start(self) -> ComfyServer:
        """Start the process without waiting for it (``ready`` waits)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(self.cmd, cwd=self.comfy_dir, stdout=self._log, stderr=subprocess.STDOUT, env=self.env)
        return self

    def ready(self, timeout: float = 180) -> ComfyServer:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode}; log: {self.log_path}\n{self.log()[-3000:]}")
            try:
                self.get("/object_info/KSampler")
                return self
            except TRANSIENT:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer within {timeout} s; log: {self.log_path}")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def __enter__(self) -> ComfyServer:
        return self.start().ready()

    def __exit__(self, *exc):
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str):
        return self.api.get(path)

    def post(self, path: str, payload: dict):
        try:
            return self.api.post(path, payload)
        except HTTPStatusError as err:
            raise PromptError(f"{path} answered {err.status}: {json.dumps(err.body)[:2000]}", err.body) from None

    def queue(self, prompt: dict) -> str:
        return self.post("/prompt", {"prompt": prompt, "client_id": self.client_id})["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 900, events: Events | None = None, progress=None) -> dict:
        """The prompt's ``/history`` entry once it is done; raises :class:`PromptError` if it failed. With ``events``
        (this client's ``/ws``), ``progress`` gets each of the prompt's messages."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            until = time.time() + 0.25
            while events is not None and events.ws is not None and time.time() < until:
                message = events.receive(max(0.01, until - time.time()))
                if message and (message.get("data") or {}).get("prompt_id") == prompt_id and progress:
                    progress(message)
            time.sleep(max(0.0, until - time.time()))
            entry = self.api.history(prompt_id)
            if entry is not None:
                if failed(entry):
                    failure = execution_failure(entry.get("status", {}), entry["prompt"][2])
                    raise PromptError(f"prompt {prompt_id} failed: {failure['message']} {json.dumps(failure['details'])[:2000]}", entry)
                return entry
        raise TimeoutError(f"prompt {prompt_id} not finished after {timeout} s")

    def run(self, prompt: dict, timeout: float = 900, progress=None) -> dict:
        """Queue ``prompt`` and wait for it; ``progress(message)`` gets its ``/ws`` messages (when websocket-client is there)."""
        events = Events(self.url, self.client_id) if progress else None
        try:
            return self.wait(self.queue(prompt), timeout, events, progress)
        finally:
            if events:
                events.close()


def linked_custom_nodes(folder: Path, checkouts: dict[str, Path]) -> Path:
    """``folder`` holding a link ``name -> checkout`` per other pack, for a ``custom_nodes:`` entry of an
    extra_model_paths.yaml: ComfyUI then loads those packs by path (never copied, never committed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, checkout in checkouts.items():
        link = folder / name
        if not link.is_symlink():
            link.symlink_to(Path(checkout).resolve(), target_is_directory=True)
    return folder


def output_files(entry: dict, output_dir: Path) -> list[Path]:
    """Every file a finished prompt wrote, whatever the output kind (images, gifs, videos, …)."""
    return [Path(output_dir) / item.get("subfolder", "") / item["filename"]
            for item in output_entries(entry) if item.get("type", "output") == "output"]
