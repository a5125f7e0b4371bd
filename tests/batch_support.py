"""Running the batch CLI (scripts/animdiff_batch.py) in tests, the cheap graphs it runs, and reading what it left."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from PIL import Image

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "animdiff_batch.py"


def write_json(path: Path, graph: dict) -> Path:
    path.write_text(json.dumps(graph))
    return path


def batch_command(*args) -> list[str]:
    return [sys.executable, str(SCRIPT), *map(str, args)]


def run_batch(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(batch_command(*args), capture_output=True, text=True, timeout=timeout)


def killed_after(lines: int, args: list, report: Path, log: Path) -> list[dict]:
    """Run the batch with ``args``, SIGKILL it once ``report`` has ``lines`` lines, and return the lines it left."""
    with open(log, "w") as out:
        run = subprocess.Popen(batch_command(*args), stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 120
            while len(report_lines(report)) < lines and run.poll() is None and time.time() < deadline:
                time.sleep(0.01)
        finally:
            run.send_signal(signal.SIGKILL)
            run.wait()
    return report_lines(report)


def core_graph(prefix: str, size: int = 16, *between: tuple[str, dict]) -> dict:
    """Two frames (``a`` black, ``b`` blue) -> the ``between`` nodes -> SaveAnimatedWEBP: core nodes, no model."""
    empty = lambda color: {"class_type": "EmptyImage", "inputs": {"width": size, "height": size, "batch_size": 1, "color": color}}
    graph = {"a": empty(0), "b": empty(255), "frames": {"class_type": "ImageBatch", "inputs": {"image1": ["a", 0], "image2": ["b", 0]}}}
    last = "frames"
    for node_id, node in between:
        graph[node_id] = {**node, "inputs": {**node["inputs"], "image": [last, 0]}}
        last = node_id
    graph["save"] = {"class_type": "SaveAnimatedWEBP", "inputs": {"images": [last, 0], "filename_prefix": prefix, "fps": 4.0,
                                                                  "lossless": True, "quality": 80, "method": "default"}}
    return graph


def report_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def rerun_finishes(args: list, report: Path, before: list[dict], left_queued: dict, total: int) -> list[dict]:
    """Rerun a killed batch: it skips the ``before`` items done, collects the ``left_queued`` prompts instead of
    queueing them again, and ends with ``total`` successes; returns the report's lines."""
    second = run_batch(*args)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"skipping {len(before)} done, {total - len(before)} to run" in second.stdout
    assert second.stdout.count("queued by an earlier run") == len(left_queued)
    after = report_lines(report)
    assert after[:len(before)] == before and all(line["status"] == "success" for line in after)
    assert sorted(line["parameters"]["a.inputs.color"] for line in after) == list(range(total))
    return after


def history_ids(server, prefix: str) -> set[str]:
    """Ids of the prompts the server has run that save under ``prefix``."""
    return {prompt_id for prompt_id, entry in server.get("/history").items()
            if any(node["inputs"].get("filename_prefix") == prefix for node in entry["prompt"][2].values())}


def assert_animated(paths, frames: int):
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "WEBP" and image.n_frames == frames, path




class Forwarder:
    """A TCP forwarder from ``port`` to ``upstream`` on 127.0.0.1 that the test can cut (connections refused, open ones
    closed: a server gone from the network, its queue intact) and open again; ``delay`` s before each chunk it passes
    on to the server (a slow link)."""

    def __init__(self, port: int, upstream: int, delay: float = 0.0):
        self.port, self.upstream, self.delay = port, upstream, delay
        self.listener, self.sockets, self.lock = None, [], threading.Lock()

    def open(self) -> Forwarder:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()
        return self

    def cut(self):
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self.sockets.clear()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            remote = socket.create_connection(("127.0.0.1", self.upstream))
            with self.lock:
                self.sockets += [client, remote]
            threading.Thread(target=self._pump, args=(client, remote, self.delay), daemon=True).start()
            threading.Thread(target=self._pump, args=(remote, client, 0.0), daemon=True).start()

    @staticmethod
    def _pump(source, target, delay: float):
        try:
            while data := source.recv(65536):
                time.sleep(delay)
                target.sendall(data)
        except OSError:
            pass  # the other direction closed both
        finally:
            source.close()
            target.close()


# --- the batch on Ray (tests/test_batch_ray*.py) ---------------------------------------------------

HOLD_NODE = '''"""A test-only custom node for the batch's Ray tests: holds its image for a while, with progress steps, or kills its
own ComfyUI (a poison item)."""
import os
import signal
import time

import comfy.utils


class BatchTestHold:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "seconds": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 60.0}),
                             "steps": ("INT", {"default": 2, "min": 1, "max": 100}), "crash": ("BOOLEAN", {"default": False})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "hold"
    CATEGORY = "testing"

    def hold(self, image, seconds, steps, crash):
        if crash:
            os.kill(os.getpid(), signal.SIGKILL)
        bar = comfy.utils.ProgressBar(steps)
        for _ in range(steps):
            time.sleep(seconds / steps)
            bar.update(1)
        return (image,)


NODE_CLASS_MAPPINGS = {"BatchTestHold": BatchTestHold}
'''
WORKER_MARK = "animdiff-worker-"  # in every command line of a worker's ComfyUI (its output folder)


def worker_comfy_args(folder: Path) -> str:
    """``--comfy-args`` for the workers' CPU ComfyUIs: core nodes and :data:`HOLD_NODE` only, models from an empty folder."""
    (folder / "nodes").mkdir(parents=True, exist_ok=True)
    (folder / "nodes" / "batch_test_nodes.py").write_text(HOLD_NODE)
    (folder / "models" / "checkpoints").mkdir(parents=True, exist_ok=True)
    yaml = folder / "paths.yaml"
    yaml.write_text(f"batch_test:\n    base_path: {folder / 'models'}\n    checkpoints: checkpoints\n    custom_nodes: {folder / 'nodes'}\n")
    return f"--cpu --cache-none --disable-all-custom-nodes --whitelist-custom-nodes batch_test_nodes.py --extra-model-paths-config {yaml}"


def hold_graph(prefix: str, seconds: float = 0.0) -> dict:
    """:func:`core_graph` with a :data:`HOLD_NODE` (``hold``) before the saver: ``seconds`` in two progress steps."""
    return core_graph(prefix, 16, ("hold", {"class_type": "BatchTestHold", "inputs": {"seconds": seconds, "steps": 2, "crash": False}}))


def processes(mark: str) -> list[str]:
    """``PID COMMAND`` of each live process whose command line holds ``mark`` (this test's own ps aside)."""
    out = subprocess.run(["ps", "-eo", "pid=,stat=,args="], capture_output=True, text=True).stdout
    found = []
    for line in out.splitlines():
        pid, stat, args = (line.split(None, 2) + ["", ""])[:3]
        if mark in args and not stat.startswith("Z"):  # a zombie is gone, only not yet reaped
            found.append(f"{pid} {args}")
    return found


def gone(mark: str, timeout: float = 60) -> list[str]:
    """Waits until no process holds ``mark``; what is still there after ``timeout``."""
    deadline = time.time() + timeout
    while (left := processes(mark)) and time.time() < deadline:
        time.sleep(0.5)
    return left
