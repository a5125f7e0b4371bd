"""One batch over many ComfyUI servers.

ComfyUI's own server is the engine (its queue, ``/prompt``, ``/ws``, ``/history``, ``/view``); the batch only
keeps each server fed: up to its ``max_queued`` of our prompts on it at once, the next item to whichever server
has room first (so a faster server gets more). Before anything is queued, every server's ``/object_info`` must
have the node classes and the combo values (model, image, sampler names) the prompts use. A server that stops
answering is retried with backoff without holding up the others; once its failures outlast the retries it is
*down*: its prompts are queued on the others (each item has a budget of ``retries`` losses), and it is asked again
at the longest backoff (30 s by default): when it answers, it is checked again, the prompts it still holds that went elsewhere are taken off its
queue, and it gets items again. An item whose outputs were listed in ``/history`` and fetched is never queued again.
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

CLOSED = "animdiff.ws_closed"  # a Listener's last message


class Incomplete(Exception):
    """Servers lack node classes or files the workflow needs; nothing was queued."""


@dataclass(eq=False)
class Running:
    """One of our prompts on a server. ``confirmed``: the server acknowledged it; ``fetched``: outputs downloaded so far."""

    item: Item
    prompt_id: str | None
    server: Server
    started: float = field(default_factory=time.monotonic)
    confirmed: bool = True
    fetched: dict = field(default_factory=dict)


class Server:
    """One ComfyUI of the batch: its API (single tries: the batch retries without blocking the other servers), its
    ``/ws`` listener, its health, our prompts on it and what it did."""

    def __init__(self, url: str, max_queued: int):
        self.api = ComfyAPI(url)
        self.url, self.name, self.max_queued = self.api.url, self.api.name, max_queued
        self.running: dict[str, Running] = {}
        self.listener: Listener | None = None
        self.failures = 0
        self.next_check = 0.0
        self.checked = False  # /object_info has what the workflow needs
        self.down = False
        self.excluded: str | None = None
        self.abandoned: set[str] = set()  # our prompts on it that went to other servers when it was down
        self.items = self.failed = 0

    @property
    def usable(self) -> bool:
        return self.checked and not (self.excluded or self.down or self.failures)


class Listener(threading.Thread):
    """Reads one server's ``/ws`` into the batch's inbox as ``(server, message)``; a closed socket ends it with CLOSED."""

    def __init__(self, server: Server, client_id: str, enabled: bool, inbox: queue.Queue):
        super().__init__(daemon=True, name=f"ws {server.name}")
        self.server, self.inbox, self.stopped = server, inbox, threading.Event()
        self.events = Events(server.url, client_id, enabled)
        if self.events.ws is not None:
            self.start()

    def run(self):
        while not self.stopped.is_set() and self.events.ws is not None:
            message = self.events.receive(1.0)
            if message:
                self.inbox.put((self.server, message))
        if not self.stopped.is_set():
            self.inbox.put((self.server, {"type": CLOSED, "data": {"reason": self.events.failure}}))
        self.events.close()

    def stop(self):
        self.stopped.set()


def refused(err: Exception) -> bool:
    """The connection was refused: a POST that certainly never arrived."""
    return isinstance(getattr(err, "reason", err), ConnectionRefusedError)


class Batch:
    """Spreads items over ``servers`` and reports each as it finishes (``report``), downloading outputs into ``out_dir``;
    tells what it does, a line at a time, to ``notify`` (it prints nothing itself)."""

    def __init__(self, servers: list[Server], report: Report, out_dir: Path, total: int, retries: int, websocket: bool = True,
                 notify: Notify = ignore):
        self.servers, self.report, self.out_dir, self.total = servers, report, Path(out_dir), total
        self.notify = notify  # what the batch does, a line each (the command line prints them)
        self.retries, self.websocket = retries, websocket
        self.client_id = uuid.uuid4().hex
        self.inbox: queue.Queue = queue.Queue()
        self.todo: deque[Item] = deque()
        self.prompts: list[dict] = []
        self.lost = Counter()  # item index -> times a server lost its prompt
        self.failed = self.succeeded = 0
        self.started = time.monotonic()
        self.last_error = ""

    @property
    def down_check_every(self) -> float:
        """Seconds between asking a down server again: the longest backoff of the retries."""
        return float(backoff(self.retries))

    def tag(self, item: Item) -> str:
        return f"[{item.index + 1:>{len(str(self.total))}}/{self.total}]"

    def on(self, server: Server) -> str:
        return f" on {server.name}" if len(self.servers) > 1 else ""

    # --- before queueing ---

    def listen(self, server: Server):
        server.listener = Listener(server, self.client_id, self.websocket, self.inbox)
        if server.listener.events.ws is None:
            self.notify(f"progress: polling /history ({server.listener.events.failure}){self.on(server)}")
            server.listener = None

    def preflight(self, items: list[Item], skip_incomplete: bool):
        """Every server answers and has what the items need; else stop naming the servers (or, with ``skip_incomplete``,
        leave out those lacking something and use those not answering once they do)."""
        self.prompts = [item.prompt for item in items]
        unreachable, incomplete = [], []
        for server in self.servers:
            self.listen(server)
            try:
                info = retrying(server.api.object_info, self.retries, f"reading /object_info of {server.name}", self.notify)
            except ServerUnavailable as err:
                if not skip_incomplete:
                    unreachable.append(str(err))
                    continue
                self.notify(f"{server.name} does not answer ({err}); it gets items once it does")
                self.mark_down(server)
                continue
            self.check_info(server, info, incomplete if not skip_incomplete else None)
        if unreachable:
            raise ServerUnavailable("\n".join(unreachable))
        if incomplete:
            raise Incomplete("nothing was queued: " + "\n".join(incomplete) +
                             "\n(install what is missing there, or leave those servers out with --skip-incomplete)")
        if all(server.excluded for server in self.servers):
            raise Incomplete("no server has everything the workflow needs")

    def check_info(self, server: Server, object_info: dict, problems: list | None) -> bool:
        lacks = missing_on(self.prompts, object_info)
        if not lacks:
            server.checked = True
            return True
        text = f"{server.url} lacks " + "; ".join(lacks)
        if problems is not None:
            problems.append(text)
        else:
            server.excluded = text
            self.notify(f"leaving out {text}")
        return False

    def adopt(self):
        """Follow the prompts an interrupted run queued (REPORT.queued.json) on the server that has them."""
        by_url = {server.url: server for server in self.servers}
        for prompt_id, entry in list(self.report.queued.items()):
            item = next((item for item in self.todo if item.hash == entry["hash"]), None)
            server = by_url.get(entry["server"]) if entry["server"] else (self.servers[0] if len(self.servers) == 1 else None)
            self.report.forget(prompt_id)
            if item is None or server is None or server.excluded:
                continue
            if server.down:  # queued again elsewhere; taken off that server when it answers
                server.abandoned.add(prompt_id)
                continue
            self.todo.remove(item)
            self.report.mark_queued(prompt_id, item.hash, server.url)
            server.running[prompt_id] = Running(item, prompt_id, server)
            self.notify(f"{self.tag(item)} following {prompt_id}{self.on(server)}, queued by an earlier run")

    # --- the loop ---

    def run(self, items: list[Item]) -> None:
        self.todo.extend(items)
        self.adopt()
        while self.todo or any(server.running for server in self.servers):
            for server in self.servers:
                if not server.excluded and time.monotonic() >= server.next_check:
                    self.check(server)
            if all(server.excluded or server.down for server in self.servers):
                raise ServerUnavailable(self.last_error or "no server left")
            while self.todo and (server := self.pick()):
                self.submit(server, self.todo.popleft())
            self.wait()

    def pick(self) -> Server | None:
        """The usable server with the most room (the emptiest, then the one that got fewest items)."""
        ready = [server for server in self.servers if server.usable and len(server.running) < server.max_queued]
        return min(ready, key=lambda s: (len(s.running) / s.max_queued, s.items + len(s.running)), default=None)

    def wait(self):
        due = min((s.next_check for s in self.servers if not s.excluded), default=time.monotonic() + 1)
        try:
            server, message = self.inbox.get(timeout=min(1.0, max(0.05, due - time.monotonic())))
        except queue.Empty:
            return
        self.show(server, message)

    def show(self, server: Server, message: dict):
        """Print progress of our prompts; a finished one, or a closed socket, makes its server due for a check."""
        kind, data = message.get("type"), message.get("data") or {}
        if kind == CLOSED:
            if server.listener is not None:
                self.notify(f"progress: {data.get('reason')}{self.on(server)}; polling /history from now on")
                server.listener = None
            server.next_check = 0.0
            return
        run = server.running.get(data.get("prompt_id"))
        if run is None:
            return
        if kind == "execution_start":
            self.notify(f"{self.tag(run.item)} running{self.on(server)}")
        elif kind == "progress":
            self.notify(f"{self.tag(run.item)} step {data.get('value')}/{data.get('max')} of {node_label(data.get('node'), run.item.prompt)}{self.on(server)}")
        if finished(message):
            server.next_check = 0.0

    def check(self, server: Server):
        """Collect our prompts that left the server's queue; queue again those it lost; note its health."""
        what = "reading the queue"
        try:
            if not server.checked:  # back from down: it may have changed
                what = f"reading /object_info of {server.name}"
                if not self.check_info(server, server.api.object_info(), None):
                    return
            what = "reading the queue"
            running, pending = server.api.queue()  # before /history: a prompt leaves the queue and enters the history at once
            if server.down or server.failures:
                self.revived(server, running | pending)
            for run in [run for run in server.running.values() if run.prompt_id not in running | pending]:
                what = "reading the history"
                entry = server.api.history(run.prompt_id)
                what = "downloading outputs"
                self.finish(run, entry) if entry is not None else self.lost_prompt(run)
        except TRANSIENT as err:
            if not is_transient(err):
                raise
            self.failing(server, err, what)
            return
        server.next_check = time.monotonic() + (5.0 if server.listener else 1.0)

    def failing(self, server: Server, err: Exception, what: str):
        server.failures += 1
        name = f"{server.name}: " if len(self.servers) > 1 else ""
        if server.failures <= self.retries:
            delay = backoff(server.failures - 1)
            self.notify(f"  {name}{what}: {err}; retry {server.failures}/{self.retries} in {delay} s")
            server.next_check = time.monotonic() + delay
            return
        self.last_error = f"{name}{what}: {err} (gave up after {self.retries} retries)"
        if not server.down:
            others = "the other servers" if len(self.servers) > 1 else "it when it answers"
            self.notify(f"{server.name} is down ({self.last_error}); its {len(server.running)} prompts go to {others}; "
                  f"asking it again every {self.down_check_every:.0f} s")
            self.mark_down(server)
        server.next_check = time.monotonic() + self.down_check_every

    def mark_down(self, server: Server):
        server.down, server.checked = True, False
        server.failures = max(server.failures, self.retries + 1)
        server.next_check = time.monotonic() + self.down_check_every
        if server.listener:
            server.listener.stop()
            server.listener = None
        for run in list(server.running.values()):
            del server.running[run.prompt_id]
            self.report.forget(run.prompt_id)
            server.abandoned.add(run.prompt_id)
            self.requeue(run, f"{server.name} is down")

    def revived(self, server: Server, queued: set[str]):
        if server.down:
            self.notify(f"{server.name} answers again: giving it items again")
            if server.abandoned & queued:
                taken = server.api.cancel(server.abandoned)
                self.notify(f"  took {len(taken)} prompts that went to other servers off {server.name}'s queue")
            if server.listener is None:
                self.listen(server)
        server.abandoned.clear()
        server.down, server.failures = False, 0

    def submit(self, server: Server, item: Item):
        prompt_id = str(uuid.uuid4())
        self.report.mark_queued(prompt_id, item.hash, server.url)  # before the POST: a kill right after it still knows the id
        run = Running(item, prompt_id, server)
        try:
            queued_as = server.api.submit(item.prompt, prompt_id, self.client_id)
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
            self.report.mark_queued(queued_as, item.hash, server.url)
            run.prompt_id = queued_as
        server.running[queued_as] = run
        self.notify(f"{self.tag(item)} queued {queued_as}{self.on(server)} {item.label}".rstrip())

    def submit_failed(self, run: Running, err: Exception):
        """Refused: back to the queue. Otherwise the server may have it: its next check finds it, or queues it again."""
        if refused(err):
            self.report.forget(run.prompt_id)
            self.todo.appendleft(run.item)
        else:
            run.confirmed = False
            run.server.running[run.prompt_id] = run
        self.failing(run.server, err, "queueing")

    def lost_prompt(self, run: Running):
        del run.server.running[run.prompt_id]
        self.report.forget(run.prompt_id)
        why = f"{run.prompt_id} is neither queued nor in the history" + (" (server restarted?)" if run.confirmed else "")
        self.requeue(run, why)

    def requeue(self, run: Running, why: str):
        self.lost[run.item.index] += 1
        if self.lost[run.item.index] > self.retries:
            self.record(run, status="error", error={"message": f"{why}: lost {self.lost[run.item.index]} times, giving up"})
            return
        self.notify(f"{self.tag(run.item)} {why}; queueing it again")
        self.todo.appendleft(run.item)

    def finish(self, run: Running, entry: dict):
        """Record a prompt that is in the history, fetching its outputs (a transient failure leaves it for the next check)."""
        server, seconds = run.server, execution_seconds(entry.get("status") or {})
        if failed(entry):
            del server.running[run.prompt_id]
            self.record(run, status="error", error=execution_failure(entry.get("status") or {}, run.item.prompt), execution_seconds=seconds)
            return
        try:
            for output in output_entries(entry):
                key = (output.get("type"), output.get("subfolder"), output["filename"])
                if key not in run.fetched:
                    run.fetched[key] = str(server.api.download(output, self.out_dir).resolve())
        except HTTPStatusError as err:
            if is_transient(err):
                raise
            del server.running[run.prompt_id]
            self.record(run, status="error", error={"message": f"downloading an output failed: {err}"}, execution_seconds=seconds)
            return
        del server.running[run.prompt_id]
        self.record(run, status="success", outputs=list(run.fetched.values()), execution_seconds=seconds)

    def record(self, run: Running, status: str, outputs=(), error: dict | None = None, execution_seconds: float | None = None):
        item, server = run.item, run.server
        line = {"index": item.index, "prompt_id": run.prompt_id, "prompt_hash": item.hash, "parameters": item.parameters,
                "server": server.url, "status": status, "outputs": list(outputs),
                "seconds": round(time.monotonic() - run.started, 3), "execution_seconds": execution_seconds}
        if error:
            line["error"] = error
        self.report.record(line)
        server.items += 1
        if status == "success":
            self.succeeded += 1
            files = ", ".join(outputs) if len(outputs) <= 3 else f"{len(outputs)} files in {self.out_dir}"
            self.notify(f"{self.tag(item)} success in {line['seconds']:.1f} s{self.on(server)}: {files or 'no output files'}")
        else:
            self.failed += 1
            server.failed += 1
            self.notify(f"{self.tag(item)} error ({item.label or 'no overrides'}){self.on(server)}: {error['message']}")

    def summary(self) -> list[str]:
        """Per server: items, failures, items per minute of the run."""
        minutes = max(time.monotonic() - self.started, 1e-9) / 60
        return [f"  {server.name}: {server.items} items, {server.failed} failed, {server.items / minutes:.1f} items/minute"
                + (f" (left out: {server.excluded})" if server.excluded else "") + (" (down)" if server.down else "")
                for server in self.servers]

    def close(self):
        for server in self.servers:
            if server.listener:
                server.listener.stop()
