"""One ComfyUI server's HTTP API and its ``/ws`` events, and the server's errors worded as people read them."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from .workflow import node_label

try:
    import websocket  # websocket-client: the batch tools' one dependency (requirements-batch.txt)
except ImportError:  # the runtime venv (a user's ComfyUI) has none: callers learn everything by polling /history
    websocket = None

Notify = Callable[[str], None]  # where a library object tells what it is doing (a command line prints it)


def ignore(message: str) -> None:
    """The default :data:`Notify`: a library object used without a listener says nothing."""


class ServerUnavailable(Exception):
    """Transient failures outlasted the retries."""


class HTTPStatusError(Exception):
    """The server answered with an HTTP error status; ``body`` is its JSON (or its text)."""

    def __init__(self, url: str, status: int, body):
        super().__init__(f"{url} answered {status}: {json.dumps(body)[:2000]}")
        self.status = status
        self.body = body


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


TRANSIENT = (OSError, http.client.HTTPException, HTTPStatusError)


def is_transient(err: Exception) -> bool:
    """Worth retrying: refused or reset connections, timeouts, broken responses, HTTP 5xx."""
    if isinstance(err, HTTPStatusError):
        return err.status >= 500
    return isinstance(err, (OSError, http.client.HTTPException))


def backoff(attempt: int) -> int:
    """Seconds before retry ``attempt`` (0-based): 1, 2, 4, ... 30."""
    return min(2**attempt, 30)


def retrying(call, retries: int, what: str, notify: Notify = ignore):
    """``call()``, retried with :func:`backoff` while its failures are transient (each retry told to ``notify``); with no
    retries, its error as is."""
    for attempt in range(retries + 1):
        try:
            return call()
        except TRANSIENT as err:
            if not is_transient(err) or not retries:
                raise
            if attempt == retries:
                raise ServerUnavailable(f"{what}: {err} (gave up after {retries} retries)") from err
            notify(f"  {what}: {err}; retry {attempt + 1}/{retries} in {backoff(attempt)} s")
            time.sleep(backoff(attempt))


def output_entries(history_entry: dict) -> list[dict]:
    """Every file a finished prompt wrote: the entries carrying ``filename`` in any list of any node's
    output (``images``, ``gifs``, ``videos``, ...; SaveAnimatedWEBP's ``animated`` list holds booleans)."""
    return [entry for node_output in history_entry.get("outputs", {}).values() for values in node_output.values()
            if isinstance(values, list) for entry in values if isinstance(entry, dict) and "filename" in entry]


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


class ComfyAPI:
    """ComfyUI's HTTP API at ``url``; each call is tried ``retries + 1`` times while its failures are transient."""

    def __init__(self, url: str, retries: int = 0, timeout: float = 30, notify: Notify = ignore):
        self.url = url.rstrip("/")
        self.retries, self.timeout, self.notify = retries, timeout, notify

    @property
    def name(self) -> str:
        """``host:port``, for messages."""
        return urllib.parse.urlsplit(self.url).netloc or self.url

    def get(self, path: str, what: str | None = None):
        return retrying(lambda: request_json(self.url + path, timeout=self.timeout), self.retries, what or f"reading {path}", self.notify)

    def post(self, path: str, payload: dict, what: str | None = None):
        return retrying(lambda: request_json(self.url + path, payload, timeout=self.timeout), self.retries, what or f"posting {path}", self.notify)

    def object_info(self) -> dict:
        return self.get("/object_info")

    def queue(self) -> tuple[set[str], set[str]]:
        """The ids of the prompts running and pending."""
        queue = self.get("/queue", "reading the queue")
        return ({entry[1] for entry in queue.get("queue_running", [])}, {entry[1] for entry in queue.get("queue_pending", [])})

    def queued_ids(self) -> set[str]:
        running, pending = self.queue()
        return running | pending

    def history(self, prompt_id: str) -> dict | None:
        return self.get(f"/history/{prompt_id}", "reading the history").get(prompt_id)

    def submit(self, prompt: dict, prompt_id: str, client_id: str) -> str:
        """Queue ``prompt`` as ``prompt_id``; a retry first asks whether the lost answer's prompt was queued."""
        payload = {"prompt": prompt, "client_id": client_id, "prompt_id": prompt_id}
        tries = itertools.count()

        def post():
            if next(tries) and (prompt_id in self.queued_ids() or self.history(prompt_id)):
                return {"prompt_id": prompt_id}
            return request_json(self.url + "/prompt", payload, timeout=self.timeout)

        return retrying(post, self.retries, "queueing", self.notify)["prompt_id"]

    def cancel(self, prompt_ids: set[str]) -> set[str]:
        """Take ``prompt_ids`` off the queue, interrupting the one running; the ids that were there."""
        running, pending = self.queue()
        if pending & prompt_ids:
            self.post("/queue", {"delete": sorted(pending & prompt_ids)})
        for prompt_id in running & prompt_ids:
            self.post("/interrupt", {"prompt_id": prompt_id})
        return (running | pending) & prompt_ids

    def download(self, output: dict, out_dir: Path) -> Path:
        """Fetch one output file through ``/view`` into ``out_dir`` (its subfolder kept, never overwriting a file)."""
        destination = unique_path(local_path(out_dir, output))
        destination.parent.mkdir(parents=True, exist_ok=True)
        query = urllib.parse.urlencode({"filename": output["filename"], "subfolder": output.get("subfolder", ""),
                                        "type": output.get("type", "output")})
        partial = destination.with_name(destination.name + ".part")

        def fetch():
            with request(f"{self.url}/view?{query}", timeout=self.timeout) as response, open(partial, "wb") as file:
                shutil.copyfileobj(response, file)
            os.replace(partial, destination)

        retrying(fetch, self.retries, f"downloading {output['filename']}", self.notify)
        return destination


class Events:
    """The server's ``/ws`` messages for ``client_id`` (through websocket-client). ``ws`` is None without
    websocket-client, when disabled, or once the socket failed; ``failure`` then says why and callers learn everything
    by polling ``/history``."""

    def __init__(self, url: str, client_id: str, enabled: bool = True):
        self.ws, self.failure = None, None
        if not enabled:
            self.failure = "--no-websocket"
        elif websocket is None:
            self.failure = "websocket-client is not installed: pip install -r requirements-batch.txt"
        else:
            ws_url = re.sub(r"^http", "ws", url.rstrip("/")) + f"/ws?clientId={client_id}"
            try:
                self.ws = websocket.create_connection(ws_url, timeout=30)
            except (websocket.WebSocketException, OSError) as err:
                self.failure = f"/ws failed: {err}"

    def receive(self, timeout: float) -> dict | None:
        """The next JSON message within ``timeout`` s, else None (without a socket: after sleeping ``timeout``)."""
        if self.ws is None:
            time.sleep(timeout)
            return None
        self.ws.settimeout(timeout)
        try:
            raw = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            return None
        except (websocket.WebSocketException, OSError) as err:
            self.failure = f"/ws closed ({err or type(err).__name__})"
            self.close()
            return None
        return json.loads(raw) if isinstance(raw, str) and raw else None  # bytes: a preview image

    def close(self):
        if self.ws is not None:
            self.ws.close()
            self.ws = None


def finished(message: dict) -> str | None:
    """The prompt id a ``/ws`` message says has finished (successfully or not), else None."""
    kind, data = message.get("type"), message.get("data") or {}
    done = (kind == "executing" and data.get("node") is None) or kind in ("execution_success", "execution_error", "execution_interrupted")
    return data.get("prompt_id") if done else None


# --- the server's errors, as people read them -----------------------------------------------------

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


def failed(entry: dict) -> bool:
    """Whether a ``/history`` entry records a failed (or interrupted) execution."""
    status = entry.get("status") or {}
    return status.get("status_str") == "error" or status.get("completed") is False


def execution_seconds(status: dict) -> float | None:
    """Server-side time from execution_start to its end, from the history's message timestamps (ms)."""
    stamps = {event: data.get("timestamp") for event, data in status.get("messages", []) if isinstance(data, dict)}
    end = next((stamps[e] for e in ("execution_success", "execution_error", "execution_interrupted") if stamps.get(e)), None)
    return round((end - stamps["execution_start"]) / 1000, 3) if end and stamps.get("execution_start") else None
