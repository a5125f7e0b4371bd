#!/usr/bin/env python3
"""Batch client for ComfyUI's HTTP API: queue a sweep of an API-format workflow and collect every output file.

    python scripts/animdiff_batch.py txt2vid.api.json --set KSampler.inputs.seed=1..20
    python scripts/animdiff_batch.py txt2vid.api.json --set 7.inputs.cfg=6,7.5 --set 7.inputs.steps=20,30   # 4 items
    python scripts/animdiff_batch.py txt2vid.api.json --prompts prompts.txt --set KSampler.inputs.seed=1..3 --zip
    python scripts/animdiff_batch.py txt2vid.api.json --set 'Positive.inputs.text="a cat, running"' --dry-run

The workflow is ComfyUI's API format (Workflow > Export (API)); a UI-format file is refused.

Overrides, ``--set NODE.inputs.NAME=VALUE``: NODE is a node id, a unique node title or a unique
class_type; VALUE is a JSON scalar (``7``, ``7.5``, ``true``, ``euler``), a list ``a,b,c``, an
integer range ``1..20`` or ``1..20:2`` (inclusive, with a step), or any JSON value (``"a, b"`` is one
string, ``[1, 2]`` a list). Several lists make one item per combination (their product), or with
``--zip`` one item per position (single values repeat). ``--prompts FILE`` adds one item per line
(blank lines and ``#`` comments skipped) for the text input ``--prompt-input NODE.inputs.NAME``;
by default the ``text`` input of the one node linked to a ``positive`` input. Unknown nodes and inputs
are errors before anything is queued.

Items go to ``--server`` (default http://127.0.0.1:8188), at most ``--max-queued`` at a time;
progress comes over ``/ws`` (websocket-client), or by polling ``/history`` without it. Every file of
every output (images, animated images, videos, ...) is downloaded through ``/view`` into ``--out``,
keeping its subfolder. The JSON-lines report (``--report``, default OUT/report.jsonl) gets one line per
item: index, prompt_id, prompt_hash, parameters, status (success/error), outputs, seconds,
execution_seconds and error. Connection failures, timeouts and HTTP 5xx are retried with backoff
(``--retries``); validation errors (HTTP 400) are not: their node, input and value are printed.

Resuming is the default: rerunning the same command skips items the report has as successful (same
resolved prompt) and collects the prompts an interrupted run left queued (REPORT.queued.json) instead of
queueing them again; ``--fresh`` starts a new report. Exit status: 0 all items succeeded, 1 some
failed, 2 bad arguments or the server unreachable (rerun to resume), 130 interrupted.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import http.client
import itertools
import json
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

try:
    import websocket  # websocket-client
except ImportError:
    websocket = None

RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)(?::(\d+))?$")


class UsageError(Exception):
    """A problem with the command line or the workflow, found before anything is queued."""


class ServerUnavailable(Exception):
    """Transient failures outlasted the retries; the run stops and can be resumed."""


class HTTPStatusError(Exception):
    """The server answered with an HTTP error status; ``body`` is its JSON (or its text)."""

    def __init__(self, url: str, status: int, body):
        super().__init__(f"{url} answered {status}: {json.dumps(body)[:2000]}")
        self.status = status
        self.body = body


# --- HTTP ---------------------------------------------------------------------------------------

def request(url: str, payload: dict | None = None, timeout: float = 30):
    """The open response to a GET (or a POST of ``payload`` as JSON); HTTP errors raise :class:`HTTPStatusError`."""
    data = None if payload is None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"} if data else {}
    try:
        return urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        raise HTTPStatusError(url, err.code, body) from None


def request_json(url: str, payload: dict | None = None, timeout: float = 30):
    with request(url, payload, timeout) as response:
        body = response.read()
    return json.loads(body) if body else {}


def is_transient(err: Exception) -> bool:
    """Worth retrying: refused or reset connections, timeouts, broken responses, HTTP 5xx."""
    if isinstance(err, HTTPStatusError):
        return err.status >= 500
    return isinstance(err, (OSError, http.client.HTTPException))


def retrying(call, retries: int, what: str):
    """``call()``, retried with exponential backoff (1, 2, 4, ... 30 s) while its failures are transient."""
    for attempt in range(retries + 1):
        try:
            return call()
        except (OSError, http.client.HTTPException, HTTPStatusError) as err:
            if not is_transient(err):
                raise
            if attempt == retries:
                raise ServerUnavailable(f"{what}: {err} (gave up after {retries} retries)") from err
            delay = min(2**attempt, 30)
            print(f"  {what}: {err}; retry {attempt + 1}/{retries} in {delay} s")
            time.sleep(delay)


def output_entries(history_entry: dict) -> list[dict]:
    """Every file a finished prompt wrote: the entries carrying ``filename`` in any list of any node's
    output (``images``, ``gifs``, ``videos``, ...; SaveAnimatedWEBP's ``animated`` list holds booleans)."""
    return [entry for node_output in history_entry.get("outputs", {}).values() for values in node_output.values()
            if isinstance(values, list) for entry in values if isinstance(entry, dict) and "filename" in entry]


# --- workflow and overrides ---------------------------------------------------------------------

def load_workflow(path: Path) -> dict:
    try:
        workflow = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read the workflow {path}: {err}") from None
    if isinstance(workflow, dict) and "nodes" in workflow and "links" in workflow:
        raise UsageError(f'{path} is a UI-format workflow (it has "nodes" and "links"); the API takes the API format: '
                         'open it in ComfyUI and use Workflow > Export (API)')
    if not workflow or not isinstance(workflow, dict) or not all(isinstance(n, dict) and "class_type" in n for n in workflow.values()):
        raise UsageError(f"{path} is not an API-format workflow (an object of nodes, each with class_type and inputs)")
    return workflow


def is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def node_label(node_id: str, prompt: dict, class_type: str | None = None) -> str:
    """``node 7 (KSampler, "Title")``: id, class_type and title where it says more than the class_type."""
    node = prompt.get(str(node_id), {})
    class_type = node.get("class_type", class_type)
    title = node.get("_meta", {}).get("title")
    return f"node {node_id} ({class_type}" + (f', "{title}"' if title and title != class_type else "") + ")"


def find_node(workflow: dict, ref: str) -> str:
    """The id of the node that ``ref`` names: an id, else a unique title, else a unique class_type."""
    if ref in workflow:
        return ref
    for key in (lambda node: node.get("_meta", {}).get("title"), lambda node: node["class_type"]):
        matches = [node_id for node_id, node in workflow.items() if key(node) == ref]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UsageError(f'"{ref}" names several nodes ({", ".join(node_label(i, workflow) for i in matches)}); use a node id')
    known = "; ".join(node_label(node_id, workflow) for node_id in workflow)
    raise UsageError(f'no node "{ref}" in the workflow (give a node id, a unique title or a unique class_type): {known}')


@dataclass(frozen=True)
class Target:
    """One input of one node: ``node`` is the node id."""

    node: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.node}.inputs.{self.name}"


def parse_target(text: str, workflow: dict) -> Target:
    ref, sep, name = text.rpartition(".inputs.")
    if not (sep and ref and name):
        raise UsageError(f'"{text}": expected NODE.inputs.NAME (NODE: a node id, title or class_type)')
    node_id = find_node(workflow, ref)
    inputs = workflow[node_id].get("inputs", {})
    if name not in inputs:
        raise UsageError(f'{node_label(node_id, workflow)} has no input "{name}"; its inputs: {", ".join(inputs)}')
    if is_link(inputs[name]):
        raise UsageError(f'input "{name}" of {node_label(node_id, workflow)} is a link from node {inputs[name][0]}; only values can be set')
    return Target(node_id, name)


def scalar(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_values(text: str) -> list:
    """``1..20`` / ``1..20:2``: an inclusive integer range; a JSON list or string as is; else a comma list of scalars."""
    stripped = text.strip()
    match = RANGE.match(stripped)
    if match:
        start, stop, step = int(match[1]), int(match[2]), int(match[3] or 1)
        if step == 0:
            raise UsageError(f'"{text}": the step of a range must be at least 1')
        direction = 1 if stop >= start else -1
        return list(range(start, stop + direction, step * direction))
    if stripped.startswith(("[", '"')):
        try:
            value = json.loads(stripped)
        except ValueError as err:
            raise UsageError(f'"{text}" is not valid JSON: {err}') from None
        return value if isinstance(value, list) else [value]
    return [scalar(part.strip()) for part in text.split(",")]


def read_prompts(path: Path) -> list[str]:
    try:
        lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    except OSError as err:
        raise UsageError(f"cannot read the prompts file: {err}") from None
    prompts = [line for line in lines if line and not line.startswith("#")]
    if not prompts:
        raise UsageError(f"{path} has no prompts (one a line; blank lines and # comments are skipped)")
    return prompts


def default_prompt_input(workflow: dict) -> Target:
    """The ``text`` input of the one node linked to a ``positive`` input (samplers, ControlNet apply, guiders)."""
    sources = {str(value[0]) for node in workflow.values() for name, value in node.get("inputs", {}).items()
               if name == "positive" and is_link(value)}
    texts = sorted(s for s in sources if isinstance(workflow.get(s, {}).get("inputs", {}).get("text"), str))
    if len(texts) != 1:
        found = f"several text nodes feed a positive input: {', '.join(texts)}" if texts else "no text node feeds a positive input"
        raise UsageError(f"--prompts: {found}; name the input with --prompt-input NODE.inputs.NAME")
    return Target(texts[0], "text")


@dataclass
class Sweep:
    """The values one input takes across the batch; ``label`` is how the user named it."""

    target: Target
    label: str
    values: list


@dataclass(eq=False)
class Item:
    index: int
    parameters: dict  # "7.inputs.seed" -> value
    label: str
    prompt: dict
    hash: str


def build_sweeps(workflow: dict, sets: list[str], prompts_file: Path | None = None, prompt_input: str | None = None) -> list[Sweep]:
    sweeps = []
    for text in sets:
        target_text, sep, value_text = text.partition("=")
        if not sep:
            raise UsageError(f'--set "{text}": expected NODE.inputs.NAME=VALUE')
        values = parse_values(value_text)
        if not values:
            raise UsageError(f'--set "{text}": no values')
        sweeps.append(Sweep(parse_target(target_text, workflow), target_text.replace(".inputs.", "."), values))
    if prompts_file:
        target = parse_target(prompt_input, workflow) if prompt_input else default_prompt_input(workflow)
        sweeps.append(Sweep(target, "prompt", read_prompts(prompts_file)))
    repeated = [key for key, count in Counter(s.target.key for s in sweeps).items() if count > 1]
    if repeated:
        raise UsageError(f"{', '.join(repeated)} is set more than once")
    return sweeps


def combinations(value_lists: list[list], zipped: bool) -> list[tuple]:
    """The product of the lists, or with ``zipped`` their positions side by side (single values repeat)."""
    if not zipped:
        return list(itertools.product(*value_lists))
    longest = max((len(values) for values in value_lists), default=1)
    if any(len(values) not in (1, longest) for values in value_lists):
        raise UsageError(f"--zip needs lists of one length (or single values); got lengths {[len(v) for v in value_lists]}")
    return [tuple(values[min(i, len(values) - 1)] for values in value_lists) for i in range(longest)]


def prompt_hash(prompt: dict) -> str:
    return hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()[:16]


def short(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def expand(workflow: dict, sweeps: list[Sweep], zipped: bool = False) -> list[Item]:
    items = []
    for index, values in enumerate(combinations([sweep.values for sweep in sweeps], zipped)):
        pairs = list(zip(sweeps, values, strict=True))
        prompt = copy.deepcopy(workflow)
        for sweep, value in pairs:
            prompt[sweep.target.node]["inputs"][sweep.target.name] = value
        label = " ".join(f"{sweep.label}={short(value)}" for sweep, value in pairs)
        parameters = {sweep.target.key: value for sweep, value in pairs}
        items.append(Item(index, parameters, label, prompt, prompt_hash(prompt)))
    return items


# --- server errors, as people read them ---------------------------------------------------------

def validation_failure(body, prompt: dict) -> dict:
    """``node 7 (KSampler) input "steps" = -1: Value -1 smaller than min of 1`` for each of /prompt's node_errors."""
    if not isinstance(body, dict):
        return {"message": f"the server refused the prompt: {str(body)[:500]}", "details": body}
    lines = []
    for node_id, info in (body.get("node_errors") or {}).items():
        for error in info.get("errors", []):
            extra = error.get("extra_info") or {}
            name = extra.get("input_name")
            where = node_label(node_id, prompt, info.get("class_type")) + (f' input "{name}"' if name else "")
            if "received_value" in extra:
                where += f" = {json.dumps(extra['received_value'], default=str)}"
            details = error.get("details")
            lines.append(f"{where}: {error.get('message', '')}" + (f" ({details})" if details and details != name else ""))
    if not lines:
        error = body.get("error")
        lines.append(f"{error.get('message', '')}: {error.get('details', '')}" if isinstance(error, dict) else str(error or body))
    return {"message": "; ".join(lines), "details": body}


def execution_failure(status: dict, prompt: dict) -> dict:
    """What the history's status messages say went wrong: the failing node and its exception, or an interruption."""
    for event, data in status.get("messages", []):
        if event == "execution_error":
            where = node_label(data.get("node_id"), prompt, data.get("node_type"))
            kind = str(data.get("exception_type")).rsplit(".", 1)[-1]  # custom nodes' types carry their file path
            return {"message": f"{where} raised {kind}: {str(data.get('exception_message', '')).strip()}",
                    "details": {key: data.get(key) for key in ("node_id", "node_type", "exception_type", "exception_message", "traceback")}}
        if event == "execution_interrupted":
            return {"message": f"interrupted at {node_label(data.get('node_id'), prompt, data.get('node_type'))}", "details": data}
    return {"message": "execution failed", "details": status}


def execution_seconds(status: dict) -> float | None:
    """Server-side time from execution_start to its end, from the history's message timestamps (ms)."""
    stamps = {event: data.get("timestamp") for event, data in status.get("messages", []) if isinstance(data, dict)}
    end = next((stamps[e] for e in ("execution_success", "execution_error", "execution_interrupted") if stamps.get(e)), None)
    return round((end - stamps["execution_start"]) / 1000, 3) if end and stamps.get("execution_start") else None


# --- run state on disk --------------------------------------------------------------------------

def read_report(path: Path) -> list[dict]:
    """The report's complete lines; a last line cut short by a crash is left out."""
    lines = []
    for raw in (path.read_bytes() if path.exists() else b"").split(b"\n")[:-1]:
        try:
            lines.append(json.loads(raw))
        except ValueError:
            print(f"report {path}: skipping a line that is not JSON: {raw[:80]!r}")
    return lines


def successes(lines: list[dict]) -> Counter:
    """How many successful items a report has per prompt hash."""
    return Counter(line.get("prompt_hash") for line in lines if line.get("status") == "success")


class Report:
    """The JSON-lines report, each line written whole, flushed and fsynced, and beside it ``REPORT.queued.json``:
    the prompts queued and not yet reported (prompt_id -> prompt hash), so that a killed run's prompts are collected."""

    def __init__(self, path: Path, fresh: bool):
        self.path = Path(path)
        self.queued_path = self.path.with_name(self.path.name + ".queued.json")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fresh:
            self.path.unlink(missing_ok=True)
            self.queued_path.unlink(missing_ok=True)
        self.lines = read_report(self.path)
        self.file = open(self.path, "ab", buffering=0)
        self.file.truncate(self.path.read_bytes().rfind(b"\n") + 1)  # a line cut short by a crash would glue onto the next
        self.queued = self._read_queued()

    def _read_queued(self) -> dict:
        try:
            return json.loads(self.queued_path.read_text())
        except (OSError, ValueError):
            return {}

    def mark_queued(self, prompt_id: str, item_hash: str):
        self.queued[prompt_id] = item_hash
        self._write_queued()

    def forget(self, prompt_id: str):
        if self.queued.pop(prompt_id, None):
            self._write_queued()

    def _write_queued(self):
        temporary = self.queued_path.with_name(self.queued_path.name + ".tmp")
        with open(temporary, "w") as file:
            json.dump(self.queued, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.queued_path)

    def record(self, line: dict):
        self.file.write((json.dumps(line, default=str) + "\n").encode())
        os.fsync(self.file.fileno())
        self.lines.append(line)
        self.forget(line.get("prompt_id"))

    def close(self):
        self.file.close()


# --- the server ---------------------------------------------------------------------------------

def local_path(out_dir: Path, output: dict) -> Path:
    """Where a server file goes under ``out_dir``: its subfolder kept (never above ``out_dir``); temp files under ``temp/``."""
    subfolder = PurePosixPath(str(output.get("subfolder", "")).replace("\\", "/"))
    parts = [part for part in subfolder.parts if part not in ("/", "..", ".")]
    kind = output.get("type", "output")
    return Path(out_dir).joinpath(*([] if kind == "output" else [kind]), *parts, PurePosixPath(output["filename"]).name)


def unique_path(path: Path) -> Path:
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
    return candidate


class Server:
    """ComfyUI's HTTP API at ``url``, each call retried on transient failures."""

    def __init__(self, url: str, retries: int):
        self.url = url.rstrip("/")
        self.retries = retries

    def get(self, path: str, what: str):
        return retrying(lambda: request_json(self.url + path), self.retries, what)

    def queued_ids(self) -> set[str]:
        queue = self.get("/queue", "reading the queue")
        return {entry[1] for entry in queue.get("queue_running", []) + queue.get("queue_pending", [])}

    def history(self, prompt_id: str) -> dict | None:
        return self.get(f"/history/{prompt_id}", "reading the history").get(prompt_id)

    def submit(self, prompt: dict, prompt_id: str, client_id: str) -> str:
        """Queue ``prompt`` as ``prompt_id``; a retry first asks whether the lost answer's prompt was queued."""
        payload = {"prompt": prompt, "client_id": client_id, "prompt_id": prompt_id}
        tries = itertools.count()

        def post():
            if next(tries) and (prompt_id in self.queued_ids() or self.history(prompt_id)):
                return {"prompt_id": prompt_id}
            return request_json(self.url + "/prompt", payload)

        return retrying(post, self.retries, "queueing")["prompt_id"]

    def download(self, output: dict, out_dir: Path) -> Path:
        destination = unique_path(local_path(out_dir, output))
        destination.parent.mkdir(parents=True, exist_ok=True)
        query = urllib.parse.urlencode({"filename": output["filename"], "subfolder": output.get("subfolder", ""),
                                        "type": output.get("type", "output")})
        partial = destination.with_name(destination.name + ".part")

        def fetch():
            with request(f"{self.url}/view?{query}") as response, open(partial, "wb") as file:
                shutil.copyfileobj(response, file)
            os.replace(partial, destination)

        retrying(fetch, self.retries, f"downloading {output['filename']}")
        return destination


class Listener:
    """The server's events for our client id over ``/ws``. Without websocket-client, with ``--no-websocket`` or once
    the socket fails, ``receive`` only waits and the batch learns everything by polling ``/history``."""

    def __init__(self, server_url: str, client_id: str, enabled: bool = True):
        self.ws = None
        if not enabled:
            reason = "--no-websocket"
        elif not hasattr(websocket, "create_connection"):
            reason = "websocket-client is not installed"
        else:
            ws_url = re.sub(r"^http", "ws", server_url.rstrip("/")) + f"/ws?clientId={client_id}"
            try:
                self.ws = websocket.create_connection(ws_url, timeout=30)
                return
            except (websocket.WebSocketException, OSError) as err:
                reason = f"/ws failed: {err}"
        print(f"progress: polling /history ({reason})")

    @property
    def check_every(self) -> float:
        """Seconds between looks at /queue and /history (with a socket, only a safety net)."""
        return 5.0 if self.ws else 1.0

    def receive(self, timeout: float) -> dict | None:
        if self.ws is None:
            time.sleep(timeout)
            return None
        self.ws.settimeout(timeout)
        try:
            raw = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            return None
        except (websocket.WebSocketException, OSError) as err:
            print(f"progress: /ws closed ({err or type(err).__name__}); polling /history from now on")
            self.close()
            return None
        return json.loads(raw) if isinstance(raw, str) and raw else None  # bytes: a preview image

    def close(self):
        if self.ws is not None:
            self.ws.close()
            self.ws = None


# --- the batch ----------------------------------------------------------------------------------

@dataclass
class Running:
    item: Item
    prompt_id: str
    started: float = field(default_factory=time.monotonic)


class Batch:
    """Keeps up to ``max_queued`` items queued, follows them, and reports each as it finishes."""

    def __init__(self, server: Server, listener: Listener | None, report: Report, out_dir: Path, max_queued: int, total: int,
                 client_id: str):
        self.server, self.listener, self.report = server, listener, report
        self.out_dir, self.max_queued, self.total, self.client_id = Path(out_dir), max_queued, total, client_id
        self.running: dict[str, Running] = {}
        self.todo: deque[Item] = deque()
        self.lost = Counter()  # item index -> times the server lost its prompt
        self.failed = self.succeeded = 0
        self.next_check = 0.0

    def tag(self, item: Item) -> str:
        return f"[{item.index + 1:>{len(str(self.total))}}/{self.total}]"

    def run(self, items: list[Item]) -> None:
        self.todo.extend(items)
        self.adopt()
        while self.todo or self.running:
            while self.todo and len(self.running) < self.max_queued:
                self.submit(self.todo.popleft())
            if self.running:
                self.wait()

    def adopt(self):
        """Follow the prompts an interrupted run queued (REPORT.queued.json) instead of queueing them again."""
        for prompt_id, item_hash in list(self.report.queued.items()):
            item = next((item for item in self.todo if item.hash == item_hash), None)
            if item is None:
                self.report.forget(prompt_id)
                continue
            self.todo.remove(item)
            self.running[prompt_id] = Running(item, prompt_id)
            print(f"{self.tag(item)} following {prompt_id}, queued by an earlier run")

    def submit(self, item: Item):
        prompt_id = str(uuid.uuid4())
        self.report.mark_queued(prompt_id, item.hash)  # before the POST: a kill right after it still knows the id
        try:
            queued_as = self.server.submit(item.prompt, prompt_id, self.client_id)
        except HTTPStatusError as err:
            self.report.forget(prompt_id)
            self.record(Running(item, None), status="error", error=validation_failure(err.body, item.prompt))
            return
        if queued_as != prompt_id:  # a server that does not take the client's prompt_id
            self.report.forget(prompt_id)
            self.report.mark_queued(queued_as, item.hash)
        self.running[queued_as] = Running(item, queued_as)
        print(f"{self.tag(item)} queued {queued_as} {item.label}".rstrip())

    def wait(self):
        message = self.listener.receive(max(0.05, self.next_check - time.monotonic()))
        if (message and self.show(message)) or time.monotonic() >= self.next_check:
            self.check()
            self.next_check = time.monotonic() + self.listener.check_every

    def show(self, message: dict) -> bool:
        """Print progress of our prompts; True when one of them has finished."""
        kind, data = message.get("type"), message.get("data") or {}
        run = self.running.get(data.get("prompt_id"))
        if run is None:
            return False
        if kind == "execution_start":
            print(f"{self.tag(run.item)} running")
        elif kind == "progress":
            print(f"{self.tag(run.item)} step {data.get('value')}/{data.get('max')} of {node_label(data.get('node'), run.item.prompt)}")
        return kind == "executing" and data.get("node") is None

    def check(self):
        """Collect our prompts that left the queue; queue again those the server lost (restarted, queue cleared)."""
        queued = self.server.queued_ids()  # read before /history: a prompt leaves the queue and enters the history at once
        for run in [run for run in self.running.values() if run.prompt_id not in queued]:
            entry = self.server.history(run.prompt_id)
            if entry is not None:
                self.finish(run, entry)
            else:
                self.requeue(run)

    def requeue(self, run: Running):
        del self.running[run.prompt_id]
        self.report.forget(run.prompt_id)
        self.lost[run.item.index] += 1
        if self.lost[run.item.index] > self.server.retries:
            self.record(run, status="error", error={"message": f"the server lost prompt {run.prompt_id} {self.lost[run.item.index]} times"})
            return
        print(f"{self.tag(run.item)} {run.prompt_id} is neither queued nor in the history (server restarted?); queueing it again")
        self.todo.appendleft(run.item)

    def finish(self, run: Running, entry: dict):
        del self.running[run.prompt_id]
        status = entry.get("status") or {}
        seconds = execution_seconds(status)
        if status.get("status_str") == "error" or status.get("completed") is False:
            self.record(run, status="error", error=execution_failure(status, run.item.prompt), execution_seconds=seconds)
            return
        try:
            outputs = [str(self.server.download(output, self.out_dir).resolve()) for output in output_entries(entry)]
        except HTTPStatusError as err:
            self.record(run, status="error", error={"message": f"downloading an output failed: {err}"}, execution_seconds=seconds)
            return
        self.record(run, status="success", outputs=outputs, execution_seconds=seconds)

    def record(self, run: Running, status: str, outputs=(), error: dict | None = None, execution_seconds: float | None = None):
        item = run.item
        line = {"index": item.index, "prompt_id": run.prompt_id, "prompt_hash": item.hash, "parameters": item.parameters,
                "status": status, "outputs": list(outputs), "seconds": round(time.monotonic() - run.started, 3),
                "execution_seconds": execution_seconds}
        if error:
            line["error"] = error
        self.report.record(line)
        if status == "success":
            self.succeeded += 1
            files = ", ".join(outputs) if len(outputs) <= 3 else f"{len(outputs)} files in {self.out_dir}"
            print(f"{self.tag(item)} success in {line['seconds']:.1f} s: {files or 'no output files'}")
        else:
            self.failed += 1
            print(f"{self.tag(item)} error ({item.label or 'no overrides'}): {error['message']}")


# --- command line -------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workflow", type=Path, help="API-format workflow (.json)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="NODE.inputs.NAME=VALUE",
                        help="override an input: a value, a list a,b,c or a range 1..20[:step]; repeat to sweep")
    parser.add_argument("--zip", action="store_true", help="pair the lists position by position instead of taking their product")
    parser.add_argument("--prompts", type=Path, metavar="FILE", help="one prompt a line, one item each")
    parser.add_argument("--prompt-input", metavar="NODE.inputs.NAME", help="the input --prompts replaces (default: the text node linked to positive)")
    parser.add_argument("--server", default="http://127.0.0.1:8188", help="ComfyUI's address (default %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("batch-output"), help="where output files go (default %(default)s)")
    parser.add_argument("--report", type=Path, help="the JSON-lines report (default OUT/report.jsonl)")
    parser.add_argument("--retries", type=int, default=5, help="retries of a transient failure (default %(default)s)")
    parser.add_argument("--max-queued", type=int, default=2, help="our prompts queued or running at once (default %(default)s)")
    parser.add_argument("--fresh", action="store_true", help="start a new report instead of resuming the one there")
    parser.add_argument("--no-websocket", action="store_true", help="poll /history instead of following /ws")
    parser.add_argument("--dry-run", action="store_true", help="print the items and exit")
    args = parser.parse_args(argv)
    if args.max_queued < 1 or args.retries < 0:
        parser.error("--max-queued must be at least 1 and --retries at least 0")
    args.report = args.report or args.out / "report.jsonl"
    return args


def plan(args: argparse.Namespace) -> list[Item]:
    workflow = load_workflow(args.workflow)
    return expand(workflow, build_sweeps(workflow, args.sets, args.prompts, args.prompt_input), args.zip)


def still_to_do(items: list[Item], done: Counter) -> list[Item]:
    """The items without a successful line in the report (identical prompts count once per line)."""
    done, todo = done.copy(), []
    for item in items:
        if done[item.hash] > 0:
            done[item.hash] -= 1
        else:
            todo.append(item)
    return todo


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        items = plan(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        todo = {item.index for item in still_to_do(items, Counter() if args.fresh else successes(read_report(args.report)))}
        for item in items:
            print(f"[{item.index + 1}/{len(items)}] {item.label or '(the workflow as it is)'}" + ("" if item.index in todo else "  (done)"))
        print(f"{len(items)} items, {len(todo)} to run")
        return 0

    report = Report(args.report, args.fresh)
    todo = still_to_do(items, successes(report.lines))
    if len(todo) < len(items):
        print(f"resuming {args.report}: skipping {len(items) - len(todo)} done, {len(todo)} to run")
    client_id = uuid.uuid4().hex
    listener = Listener(args.server, client_id, not args.no_websocket) if todo else None
    batch = Batch(Server(args.server, args.retries), listener, report, args.out, args.max_queued, len(items), client_id)
    try:
        batch.run(todo)
    except ServerUnavailable as err:
        print(f"error: {err}\nthe server at {args.server} is unreachable; run the same command again to resume", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume (prompts still queued are collected)", file=sys.stderr)
        return 130
    finally:
        report.close()
        if listener:
            listener.close()
    print(f"{batch.succeeded} succeeded, {batch.failed} failed, {len(items) - len(todo)} skipped as done; report: {args.report}")
    return 1 if batch.failed else 0


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    sys.exit(main())
