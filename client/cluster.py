"""One batch on a Ray cluster: one actor per worker owns a ComfyUI server on its node.

Ray does what a scheduler of our own would imitate: placement (``num_gpus=1`` per actor, Ray sets its
``CUDA_VISIBLE_DEVICES``), restarts (``max_restarts``), failure detection (a worker process or a whole node gone
surfaces as ``RayActorError`` on the driver), log forwarding, the dashboard. A :class:`ComfyWorker` actor starts
ComfyUI on a free loopback port of its node (its own output and temp folders), runs one item at a time through
``/prompt``, ``/ws``, ``/history`` and ``/view``, yields the item's progress and then its files' bytes. A ComfyUI that
exits, stops answering or sends nothing about the running prompt for ``hang_seconds`` kills the actor (an unexpected
exit), so Ray restarts it (a new ComfyUI) and the driver counts a loss for the item; ComfyUI dies with its actor
(``PR_SET_PDEATHSIG``), so no server outlives its worker.

The driver (:class:`ClusterBatch`) alone writes: an item's files at fixed paths (:func:`client.report.item_files`,
each written to a ``.part`` and renamed), then its report line (fsynced). A killed driver loses at most the items in
flight (its actors die with its job); the rerun does them again over the same paths. Validation and execution errors
are the item's result, recorded once; only a lost worker costs an item one of its ``retries``.

This module imports Ray: the command line imports it only with ``--ray``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import ray
from ray.exceptions import ActorDiedError, GetTimeoutError, RayActorError

from .api import (
    TRANSIENT,
    ComfyAPI,
    Events,
    HTTPStatusError,
    Notify,
    ServerUnavailable,
    execution_failure,
    execution_seconds,
    failed,
    finished,
    ignore,
    is_transient,
    output_entries,
    request,
    validation_failure,
)
from .report import Report, item_files, write_atomically
from .workflow import Item, missing_on, node_label

PR_SET_PDEATHSIG = 1
log = logging.getLogger("animdiff.batch")  # in a worker: its stderr, which Ray forwards to the driver


class Incomplete(Exception):
    """Workers lack node classes or files the workflow needs; nothing was queued."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent():
    """In the child before exec: SIGKILL it when its parent (the actor's process) dies, however it dies."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class ComfyWorker:
    """A Ray actor owning one ComfyUI server on its node (started in ``__init__``: a restart starts a new one)."""

    def __init__(self, comfy_dir: str, python: str, comfy_args: list[str], start_timeout: float, hang_seconds: float):
        self.hang_seconds = hang_seconds
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.work = Path(tempfile.mkdtemp(prefix=f"animdiff-worker-{self.port}-"))
        self.log_path = self.work / "comfyui.log"
        python = python if Path(python).is_file() else sys.executable  # the driver's runtime Python, else this node's
        cmd = [python, "main.py", "--listen", "127.0.0.1", "--port", str(self.port), "--disable-auto-launch",
               "--output-directory", str(self.work / "output"), "--temp-directory", str(self.work), *comfy_args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("PYTHONSAFEPATH", None)  # main.py imports its own folder's modules
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(cmd, cwd=comfy_dir, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            preexec_fn=die_with_parent)
        self.api = ComfyAPI(self.url, timeout=30)
        self.client_id = uuid.uuid4().hex
        deadline = time.monotonic() + start_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode} at start ({comfy_dir}):\n{self.log_tail()}")
            try:
                self.api.get("/system_stats")
                break
            except TRANSIENT:
                if time.monotonic() > deadline:
                    self.process.kill()
                    raise RuntimeError(f"ComfyUI did not answer within {start_timeout:.0f} s:\n{self.log_tail()}") from None
                time.sleep(0.3)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def where(self) -> dict:
        """Where this worker runs: its node, its ComfyUI (URL on the node, pid) and its GPUs."""
        return {"node": ray.util.get_node_ip_address(), "node_id": ray.get_runtime_context().get_node_id(),
                "port": self.port, "pid": self.process.pid, "gpus": [str(g) for g in ray.get_gpu_ids()]}

    def object_info(self) -> dict:
        return self.api.object_info()

    def die(self, why: str):
        """An unexpected exit: Ray restarts the actor (a new ComfyUI) and the driver counts a loss for the item."""
        log.error("ComfyUI %s (pid %s): %s; the worker exits for Ray to restart it", self.url, self.process.pid, why)  # Ray forwards it
        self.process.kill()
        os.kill(os.getpid(), signal.SIGKILL)  # not an exit Ray was asked for: it restarts the actor

    def run(self, prompt: dict):
        """Run one prompt (a Ray streaming generator): yield ``{"type": "queued"|"running"|"progress", ...}`` events, then
        ``{"type": "result", "status": "success"|"error", ...}`` with each output's entry and bytes."""
        if self.process.poll() is not None:
            self.die(f"exited with {self.process.returncode} between items")
        prompt_id = str(uuid.uuid4())
        events = Events(self.url, self.client_id)  # before /prompt: its first messages come at once
        try:
            try:
                self.api.submit(prompt, prompt_id, self.client_id)
            except HTTPStatusError as err:
                if is_transient(err):
                    self.die(f"/prompt answered {err.status}")
                yield {"type": "result", "status": "error", "prompt_id": None, "error": validation_failure(err.body, prompt)}
                return
            except TRANSIENT as err:
                self.die(f"/prompt failed: {err}")
            yield {"type": "queued", "prompt_id": prompt_id}
            yield from self.follow(prompt_id, events)
            entry = self.history(prompt_id)
        finally:
            events.close()
        status = entry.get("status") or {}
        seconds = execution_seconds(status)
        if failed(entry):
            yield {"type": "result", "status": "error", "prompt_id": prompt_id, "error": execution_failure(status, prompt),
                   "execution_seconds": seconds}
            return
        files = [{"output": output, "data": self.fetch(output)} for output in output_entries(entry)]
        shutil.rmtree(self.work / "output", ignore_errors=True)  # the driver has them now
        yield {"type": "result", "status": "success", "prompt_id": prompt_id, "files": files, "execution_seconds": seconds}

    def follow(self, prompt_id: str, events: Events):
        """Yield the prompt's progress until ComfyUI says it finished (over ``/ws``, or ``/history`` polled)."""
        last_news = last_poll = time.monotonic()
        while True:
            message = events.receive(1.0)
            now = time.monotonic()
            if message and (message.get("data") or {}).get("prompt_id") == prompt_id:
                last_news = now
                kind, data = message["type"], message["data"]
                if kind == "execution_start":
                    yield {"type": "running"}
                elif kind == "progress":
                    yield {"type": "progress", "value": data.get("value"), "max": data.get("max"), "node": data.get("node")}
                if finished(message):
                    return
            if self.process.poll() is not None:
                self.die(f"exited with {self.process.returncode} during the item")
            if now - last_poll >= (5.0 if events.ws is not None else 1.0):
                last_poll = now
                if self.history(prompt_id, allow_missing=True) is not None:
                    return
                last_news = now if events.ws is None and self.running(prompt_id) else last_news
            if now - last_news > self.hang_seconds:
                self.die(f"nothing about prompt {prompt_id} for {self.hang_seconds:.0f} s")

    def running(self, prompt_id: str) -> bool:
        try:
            running, pending = self.api.queue()
        except TRANSIENT as err:
            self.die(f"/queue failed: {err}")
        return prompt_id in running | pending

    def history(self, prompt_id: str, allow_missing: bool = False) -> dict | None:
        """The prompt's ``/history`` entry; unless ``allow_missing``, waited for (ComfyUI announces the end on ``/ws`` a
        moment before the entry is there) up to 30 s."""
        deadline = time.monotonic() + (0 if allow_missing else 30)
        while True:
            try:
                entry = self.api.history(prompt_id)
            except TRANSIENT as err:
                self.die(f"/history failed: {err}")
            if entry is not None or allow_missing:
                return entry
            if self.process.poll() is not None:
                self.die(f"exited with {self.process.returncode} at the end of the item")
            if time.monotonic() > deadline:
                self.die(f"prompt {prompt_id} finished but is not in /history")
            time.sleep(0.05)

    def fetch(self, output: dict) -> bytes:
        query = urllib.parse.urlencode({"filename": output["filename"], "subfolder": output.get("subfolder", ""),
                                        "type": output.get("type", "output")})
        try:
            with request(f"{self.url}/view?{query}", timeout=60) as response:
                return response.read()
        except TRANSIENT as err:
            self.die(f"/view of {output['filename']} failed: {err}")


@dataclass(eq=False)
class Worker:
    """The driver's view of one actor: its handle, where it runs now and what it did."""

    number: int
    handle: object
    where: dict = field(default_factory=dict)
    items: int = 0
    failed: int = 0
    lost: int = 0
    dead: str | None = None

    @property
    def name(self) -> str:
        return f"worker {self.number}"

    @property
    def server(self) -> str:
        return f"{self.where.get('node', '?')}:{self.where.get('port', '?')}"


def connect(address: str, dashboard: bool, client_dir: Path, notify: Notify = ignore):
    """``ray.init`` for ``--ray``: ``local`` starts Ray here (its dashboard only with ``dashboard``), ``auto`` joins the
    cluster this machine belongs to, anything else is a cluster's address. The ``client`` package travels to the
    workers as a ``py_modules`` entry of the job's runtime environment."""
    options = {"runtime_env": {"py_modules": [str(client_dir)]}, "log_to_driver": True}
    if address == "local":
        context = ray.init(include_dashboard=dashboard, **options)
    else:
        context = ray.init(address=address, **options)
    if dashboard:
        url = getattr(context, "dashboard_url", None)
        notify(f"Ray dashboard: http://{url}" if url else 'Ray dashboard: none (pip install "ray[default]==2.60.0" where the head runs)')
    return context


def default_workers() -> tuple[int, bool]:
    """One worker per GPU of the cluster; without GPUs, one CPU worker per node (a CPU ComfyUI uses all its node's cores)."""
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus:
        return gpus, True
    return max(1, sum(1 for node in ray.nodes() if node.get("Alive"))), False


def start_workers(count: int, gpu: bool, comfy_dir: Path, python: str, comfy_args: list[str], start_timeout: float,
                  hang_seconds: float) -> list[Worker]:
    """``count`` actors, each with one GPU (or one CPU, spread over the nodes, ComfyUI then run with ``--cpu``),
    restarted by Ray whenever they die (``max_restarts=-1``; an item's loss budget bounds what that costs)."""
    resources = {"num_gpus": 1, "num_cpus": 0} if gpu else {"num_cpus": 1, "scheduling_strategy": "SPREAD"}
    args = comfy_args if gpu or "--cpu" in comfy_args else ["--cpu", *comfy_args]
    actor = ray.remote(ComfyWorker).options(max_restarts=-1, max_task_retries=0, **resources)
    return [Worker(n + 1, actor.remote(str(comfy_dir), python, args, start_timeout, hang_seconds)) for n in range(count)]


class ClusterBatch:
    """Hands ``items`` to ``workers`` (the next item to whichever worker is free), writes what comes back (files under
    ``out_dir``, a line each in ``report``) and tells what happens to ``notify``."""

    def __init__(self, workers: list[Worker], report: Report, out_dir: Path, total: int, retries: int,
                 start_timeout: float = 600, notify: Notify = ignore):
        self.workers, self.report, self.out_dir, self.total = workers, report, Path(out_dir), total
        self.retries, self.start_timeout, self.notify = retries, start_timeout, notify
        self.todo: queue.Queue = queue.Queue()
        self.inbox: queue.Queue = queue.Queue()
        self.stopping = threading.Event()
        self.lost = Counter()
        self.started_at: dict[int, float] = {}
        self.failed = self.succeeded = 0
        self.started = time.monotonic()

    def tag(self, item: Item) -> str:
        return f"[{item.index + 1:>{len(str(self.total))}}/{self.total}]"

    # --- before queueing ---

    def preflight(self, items: list[Item]):
        """Every worker started its ComfyUI and its ``/object_info`` has what the items need; else stop, naming them."""
        prompts = [item.prompt for item in items]
        infos = [(worker, worker.handle.object_info.remote()) for worker in self.workers]
        wheres = ray.get([worker.handle.where.remote() for worker in self.workers], timeout=self.start_timeout)
        incomplete = []
        for (worker, info), where in zip(infos, wheres, strict=True):
            worker.where = where
            gpus = f", GPU {','.join(where['gpus'])}" if where["gpus"] else ""
            self.notify(f"{worker.name}: ComfyUI {worker.server} (pid {where['pid']}{gpus})")
            lacks = missing_on(prompts, ray.get(info, timeout=self.start_timeout))
            if lacks:
                incomplete.append(f"{worker.name} ({worker.server}) lacks " + "; ".join(lacks))
        if incomplete:
            raise Incomplete("nothing was queued: " + "\n".join(incomplete) + "\n(install what is missing on those nodes)")

    # --- the loop ---

    def run(self, items: list[Item]):
        for item in items:
            self.todo.put(item)
        left = len(items)
        feeders = [threading.Thread(target=self.feed, args=(worker,), daemon=True, name=worker.name) for worker in self.workers]
        for feeder in feeders:
            feeder.start()
        try:
            while left:
                if all(worker.dead for worker in self.workers):
                    raise ServerUnavailable("every worker died: " + "; ".join(f"{w.name}: {w.dead}" for w in self.workers))
                try:
                    kind, worker, item, data = self.inbox.get(timeout=1.0)
                except queue.Empty:
                    continue
                left -= self.handle(kind, worker, item, data)
        finally:
            self.stopping.set()
            for feeder in feeders:
                feeder.join(timeout=5)

    def feed(self, worker: Worker):
        """One worker's thread: wait until its actor is up (holding no item meanwhile), give it the next item, pass on
        what it yields; a lost actor hands the item back."""
        while not self.stopping.is_set():
            try:
                where = ray.get(worker.handle.where.remote(), timeout=1.0)
            except GetTimeoutError:
                continue  # starting, restarting or waiting for a node with room: the items go to the others meanwhile
            except ActorDiedError as err:
                self.inbox.put(("dead", worker, None, str(err).splitlines()[0]))
                return
            except RayActorError:
                continue
            try:
                item = self.todo.get(timeout=0.2)
            except queue.Empty:
                continue
            self.inbox.put(("start", worker, item, where))
            try:
                for ref in worker.handle.run.remote(item.prompt):
                    self.inbox.put(("event", worker, item, ray.get(ref)))
            except RayActorError as err:
                self.inbox.put(("lost", worker, item, str(err).splitlines()[0]))

    def handle(self, kind: str, worker: Worker, item: Item | None, data) -> int:
        """Act on one message from a feeder; 1 when an item is settled."""
        if kind == "dead":
            worker.dead = data
            self.notify(f"{worker.name} is gone for good: {data}")
            return 0
        if kind == "start":
            if data != worker.where:
                if worker.where:
                    self.notify(f"{worker.name}: ComfyUI {data['node']}:{data['port']} (pid {data['pid']}), restarted by Ray")
                worker.where = data
            self.started_at[item.index] = time.monotonic()
            return 0
        if kind == "lost":
            worker.lost += 1
            self.lost[item.index] += 1
            why = f"{worker.name} ({worker.server}) was lost: {data}"
            if self.lost[item.index] > self.retries:
                self.record(worker, item, {"status": "error", "prompt_id": None,
                                           "error": {"message": f"{why}; lost {self.lost[item.index]} times, giving up"}})
                return 1
            self.notify(f"{self.tag(item)} {why}; queueing it again ({self.lost[item.index]}/{self.retries})")
            self.todo.put(item)
            return 0
        event = data
        on = f" on {worker.name}"
        if event["type"] == "queued":
            self.notify(f"{self.tag(item)} queued {event['prompt_id']}{on} {item.label}".rstrip())
        elif event["type"] == "running":
            self.notify(f"{self.tag(item)} running{on}")
        elif event["type"] == "progress":
            self.notify(f"{self.tag(item)} step {event['value']}/{event['max']} of {node_label(event['node'], item.prompt)}{on}")
        elif event["type"] == "result":
            self.record(worker, item, event)
            return 1
        return 0

    def record(self, worker: Worker, item: Item, result: dict):
        """Write the item's files (fixed paths, atomically), then its report line (fsynced)."""
        outputs = []
        if result["status"] == "success":
            for path, file in zip(item_files(self.out_dir, item.index, self.total, [f["output"] for f in result["files"]]),
                                  result["files"], strict=True):
                write_atomically(path, file["data"])
                outputs.append(str(path.resolve()))
        line = {"index": item.index, "prompt_id": result.get("prompt_id"), "prompt_hash": item.hash, "parameters": item.parameters,
                "worker": worker.number, "server": worker.server, "node": worker.where.get("node_id"), "status": result["status"],
                "outputs": outputs, "seconds": round(time.monotonic() - self.started_at.get(item.index, time.monotonic()), 3),
                "execution_seconds": result.get("execution_seconds"), "lost": self.lost[item.index]}
        if result.get("error"):
            line["error"] = result["error"]
        self.report.record(line)
        worker.items += 1
        if result["status"] == "success":
            self.succeeded += 1
            files = ", ".join(outputs) if len(outputs) <= 3 else f"{len(outputs)} files in {self.out_dir}"
            self.notify(f"{self.tag(item)} success in {line['seconds']:.1f} s on {worker.name}: {files or 'no output files'}")
        else:
            self.failed += 1
            worker.failed += 1
            self.notify(f"{self.tag(item)} error ({item.label or 'no overrides'}) on {worker.name}: {result['error']['message']}")

    def summary(self) -> list[str]:
        minutes = max(time.monotonic() - self.started, 1e-9) / 60
        return [f"  {w.name} ({w.server}): {w.items} items, {w.failed} failed, {w.lost} lost, {w.items / minutes:.1f} items/minute"
                + (f" (gone: {w.dead})" if w.dead else "") for w in self.workers]

    def close(self):
        """Stop every actor (its ComfyUI dies with it) and leave Ray."""
        self.stopping.set()
        for worker in self.workers:
            try:
                ray.kill(worker.handle, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
