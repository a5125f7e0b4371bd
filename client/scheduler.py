"""One batch on one ComfyUI server (``--server URL``); several servers, GPUs or machines: ``--ray`` (client/cluster.py).

ComfyUI's own server is the engine (its queue, ``/prompt``, ``/ws``, ``/history``, ``/view``); the batch keeps up to
``max_queued`` of our prompts on it. Before anything is queued, its ``/object_info`` must have the node classes and
the files (models, images) the prompts use. Connection failures, timeouts and HTTP 5xx are retried with backoff
(``retries``); once they outlast the retries the run stops (rerun to resume: the prompts left queued are collected,
not queued again). A prompt the server lost (neither queued nor in ``/history``: it restarted) is queued again, each
item within a budget of ``retries`` losses. An item whose outputs were listed in ``/history`` and fetched is never
queued again.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

from .api import (
    TRANSIENT,
    ComfyAPI,
    Events,
    HTTPStatusError,
    Notify,
    ServerUnavailable,
    backoff,
    execution_failure,
    execution_seconds,
    failed,
    finished,
    ignore,
    is_transient,
    output_entries,
    retrying,
    validation_failure,
)
from .report import Report
from .workflow import Item, missing_on, node_label

CLOSED = "animdiff.ws_closed"  # the Listener's last message


class Incomplete(Exception):
    """The server lacks node classes or files the workflow needs; nothing was queued."""


@dataclass(eq=False)
class Running:
    """One of our prompts on the server. ``confirmed``: the server acknowledged it; ``fetched``: outputs downloaded so far."""

    item: Item
    prompt_id: str | None
    started: float = field(default_factory=time.monotonic)
    confirmed: bool = True
    fetched: dict = field(default_factory=dict)


class Listener(threading.Thread):
    """Reads the server's ``/ws`` into the batch's inbox; a closed socket ends it with CLOSED."""

    def __init__(self, url: str, client_id: str, enabled: bool, inbox: queue.Queue):
        super().__init__(daemon=True, name="ws")
        self.inbox, self.stopped = inbox, threading.Event()
        self.events = Events(url, client_id, enabled)
        if self.events.ws is not None:
            self.start()

    def run(self):
        while not self.stopped.is_set() and self.events.ws is not None:
            message = self.events.receive(1.0)
            if message:
                self.inbox.put(message)
        if not self.stopped.is_set():
            self.inbox.put({"type": CLOSED, "data": {"reason": self.events.failure}})
        self.events.close()

    def stop(self):
        self.stopped.set()


def refused(err: Exception) -> bool:
    """The connection was refused: a POST that certainly never arrived."""
    return isinstance(getattr(err, "reason", err), ConnectionRefusedError)


class Batch:
    """Runs items on the server at ``url`` and reports each as it finishes (``report``), downloading outputs into
    ``out_dir``; tells what it does, a line at a time, to ``notify`` (it prints nothing itself)."""

    def __init__(self, url: str, report: Report, out_dir: Path, total: int, retries: int, max_queued: int = 2,
                 websocket: bool = True, notify: Notify = ignore):
        self.api = ComfyAPI(url)  # single tries: the loop retries, with backoff
        self.url, self.name = self.api.url, self.api.name
        self.report, self.out_dir, self.total, self.notify = report, Path(out_dir), total, notify
        self.retries, self.max_queued, self.websocket = retries, max_queued, websocket
        self.client_id = uuid.uuid4().hex
        self.inbox: queue.Queue = queue.Queue()
        self.listener: Listener | None = None
        self.todo: deque[Item] = deque()
        self.running: dict[str, Running] = {}
        self.lost = Counter()  # item index -> times the server lost its prompt
        self.failures = 0
        self.next_check = 0.0
        self.failed = self.succeeded = 0
        self.started = time.monotonic()

    def tag(self, item: Item) -> str:
        return f"[{item.index + 1:>{len(str(self.total))}}/{self.total}]"

    # --- before queueing ---

    def listen(self):
        self.listener = Listener(self.url, self.client_id, self.websocket, self.inbox)
        if self.listener.events.ws is None:
            self.notify(f"progress: polling /history ({self.listener.events.failure})")
            self.listener = None

    def preflight(self, items: list[Item]):
        """The server answers (retried with backoff) and has what the items need; else stop, naming what it lacks."""
        self.listen()
        info = retrying(self.api.object_info, self.retries, f"reading /object_info of {self.name}", self.notify)
        lacks = missing_on([item.prompt for item in items], info)
        if lacks:
            raise Incomplete(f"nothing was queued: {self.url} lacks " + "; ".join(lacks))

    def adopt(self):
        """Follow the prompts an interrupted run queued (REPORT.queued.json) instead of queueing them again."""
        for prompt_id, entry in list(self.report.queued.items()):
            item = next((item for item in self.todo if item.hash == entry["hash"]), None)
            self.report.forget(prompt_id)
            if item is None:
                continue
            self.todo.remove(item)
            self.report.mark_queued(prompt_id, item.hash, self.url)
            self.running[prompt_id] = Running(item, prompt_id)
            self.notify(f"{self.tag(item)} following {prompt_id}, queued by an earlier run")

    # --- the loop ---

    def run(self, items: list[Item]) -> None:
        self.todo.extend(items)
        self.adopt()
        while self.todo or self.running:
            if time.monotonic() >= self.next_check:
                self.check()
            while self.todo and not self.failures and len(self.running) < self.max_queued:
                self.submit(self.todo.popleft())
            self.wait()

    def wait(self):
        try:
            message = self.inbox.get(timeout=min(1.0, max(0.05, self.next_check - time.monotonic())))
        except queue.Empty:
            return
        self.show(message)

    def show(self, message: dict):
        """Print progress of our prompts; a finished one, or a closed socket, makes the server due for a check."""
        kind, data = message.get("type"), message.get("data") or {}
        if kind == CLOSED:
            self.notify(f"progress: {data.get('reason')}; polling /history from now on")
            self.listener, self.next_check = None, 0.0
            return
        run = self.running.get(data.get("prompt_id"))
        if run is None:
            return
        if kind == "execution_start":
            self.notify(f"{self.tag(run.item)} running")
        elif kind == "progress":
            self.notify(f"{self.tag(run.item)} step {data.get('value')}/{data.get('max')} of {node_label(data.get('node'), run.item.prompt)}")
        if finished(message):
            self.next_check = 0.0

    def check(self):
        """Collect our prompts that left the queue; queue again those the server lost."""
        what = "reading the queue"
        try:
            running, pending = self.api.queue()  # before /history: a prompt leaves the queue and enters the history at once
            for run in [run for run in self.running.values() if run.prompt_id not in running | pending]:
                what = "reading the history"
                entry = self.api.history(run.prompt_id)
                what = "downloading outputs"
                self.finish(run, entry) if entry is not None else self.lost_prompt(run)
        except TRANSIENT as err:
            if not is_transient(err):
                raise
            self.failing(err, what)
            return
        self.failures = 0
        self.next_check = time.monotonic() + (5.0 if self.listener else 1.0)

    def failing(self, err: Exception, what: str):
        """A transient failure: the next check after a backoff; past the retries, the run stops."""
        self.failures += 1
        if self.failures > self.retries:
            raise ServerUnavailable(f"{what}: {err} (gave up after {self.retries} retries)")
        delay = backoff(self.failures - 1)
        self.notify(f"  {what}: {err}; retry {self.failures}/{self.retries} in {delay} s")
        self.next_check = time.monotonic() + delay

    def submit(self, item: Item):
        prompt_id = str(uuid.uuid4())
        self.report.mark_queued(prompt_id, item.hash, self.url)  # before the POST: a kill right after it still knows the id
        run = Running(item, prompt_id)
        try:
            queued_as = self.api.submit(item.prompt, prompt_id, self.client_id)
        except HTTPStatusError as err:
            if is_transient(err):
                return self.submit_failed(run, err)
            self.report.forget(prompt_id)
            run.prompt_id = None
            self.record(run, status="error", error=validation_failure(err.body, item.prompt))
            return
        except TRANSIENT as err:
            return self.submit_failed(run, err)
        if queued_as != prompt_id:  # a server that does not take the client's prompt_id
            self.report.forget(prompt_id)
            self.report.mark_queued(queued_as, item.hash, self.url)
            run.prompt_id = queued_as
        self.running[queued_as] = run
        self.notify(f"{self.tag(item)} queued {queued_as} {item.label}".rstrip())

    def submit_failed(self, run: Running, err: Exception):
        """Refused: back to the queue. Otherwise the server may have it: the next check finds it, or queues it again."""
        if refused(err):
            self.report.forget(run.prompt_id)
            self.todo.appendleft(run.item)
        else:
            run.confirmed = False
            self.running[run.prompt_id] = run
        self.failing(err, "queueing")

    def lost_prompt(self, run: Running):
        del self.running[run.prompt_id]
        self.report.forget(run.prompt_id)
        self.lost[run.item.index] += 1
        why = f"{run.prompt_id} is neither queued nor in the history" + (" (server restarted?)" if run.confirmed else "")
        if self.lost[run.item.index] > self.retries:
            self.record(run, status="error", error={"message": f"{why}: lost {self.lost[run.item.index]} times, giving up"})
            return
        self.notify(f"{self.tag(run.item)} {why}; queueing it again")
        self.todo.appendleft(run.item)

    def finish(self, run: Running, entry: dict):
        """Record a prompt that is in the history, fetching its outputs (a transient failure leaves it for the next check)."""
        seconds = execution_seconds(entry.get("status") or {})
        if failed(entry):
            del self.running[run.prompt_id]
            self.record(run, status="error", error=execution_failure(entry.get("status") or {}, run.item.prompt), execution_seconds=seconds)
            return
        try:
            for output in output_entries(entry):
                key = (output.get("type"), output.get("subfolder"), output["filename"])
                if key not in run.fetched:
                    run.fetched[key] = str(self.api.download(output, self.out_dir).resolve())
        except HTTPStatusError as err:
            if is_transient(err):
                raise
            del self.running[run.prompt_id]
            self.record(run, status="error", error={"message": f"downloading an output failed: {err}"}, execution_seconds=seconds)
            return
        del self.running[run.prompt_id]
        self.record(run, status="success", outputs=list(run.fetched.values()), execution_seconds=seconds)

    def record(self, run: Running, status: str, outputs=(), error: dict | None = None, execution_seconds: float | None = None):
        item = run.item
        line = {"index": item.index, "prompt_id": run.prompt_id, "prompt_hash": item.hash, "parameters": item.parameters,
                "server": self.url, "status": status, "outputs": list(outputs),
                "seconds": round(time.monotonic() - run.started, 3), "execution_seconds": execution_seconds}
        if error:
            line["error"] = error
        self.report.record(line)
        if status == "success":
            self.succeeded += 1
            files = ", ".join(outputs) if len(outputs) <= 3 else f"{len(outputs)} files in {self.out_dir}"
            self.notify(f"{self.tag(item)} success in {line['seconds']:.1f} s: {files or 'no output files'}")
        else:
            self.failed += 1
            self.notify(f"{self.tag(item)} error ({item.label or 'no overrides'}): {error['message']}")

    def summary(self) -> str:
        minutes = max(time.monotonic() - self.started, 1e-9) / 60
        return f"{self.name}: {self.succeeded + self.failed} items, {self.failed} failed, {(self.succeeded + self.failed) / minutes:.1f} items/minute"

    def close(self):
        if self.listener:
            self.listener.stop()
