"""The batch's run state on disk: the JSON-lines report and the prompts queued and not yet reported."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path, PurePosixPath

from .api import Notify, ignore


def read_report(path: Path, notify: Notify = ignore) -> list[dict]:
    """The report's complete lines; a last line cut short by a crash is left out, other broken lines are told to ``notify``."""
    lines = []
    for raw in (path.read_bytes() if path.exists() else b"").split(b"\n")[:-1]:
        try:
            lines.append(json.loads(raw))
        except ValueError:
            notify(f"report {path}: skipping a line that is not JSON: {raw[:80]!r}")
    return lines


def successes(lines: list[dict]) -> Counter:
    """How many successful items a report has per prompt hash."""
    return Counter(line.get("prompt_hash") for line in lines if line.get("status") == "success")


def still_to_do(items: list, done: Counter) -> list:
    """The items without a successful line in the report (identical prompts count once per line)."""
    done, todo = done.copy(), []
    for item in items:
        if done[item.hash] > 0:
            done[item.hash] -= 1
        else:
            todo.append(item)
    return todo


COUNTER = re.compile(r"_\d+_?$")  # what ComfyUI's savers append to the prefix: frames_00001_.webp


def item_files(out_dir: Path, index: int, total: int, outputs: list[dict]) -> list[Path]:
    """Where an item's output files go, the same on every run of the item whichever server made them:
    ``OUT/[TYPE/]SUBFOLDER/PREFIX_item0007.EXT`` (``-2``, ``-3``, ... for more files of one prefix), PREFIX being the
    server's file name without its counter; ``TYPE`` for temp files only (outside ``output``)."""
    width, seen, paths = max(4, len(str(total))), Counter(), []
    for output in outputs:
        name = PurePosixPath(str(output["filename"]).replace("\\", "/")).name
        stem, suffix = os.path.splitext(name)
        subfolder = [part for part in PurePosixPath(str(output.get("subfolder", "")).replace("\\", "/")).parts if part not in ("/", "..", ".")]
        kind = output.get("type", "output")
        base = Path(out_dir).joinpath(*([] if kind == "output" else [kind]), *subfolder, f"{COUNTER.sub('', stem) or 'file'}_item{index + 1:0{width}d}")
        seen[(base, suffix)] += 1
        n = seen[(base, suffix)]
        paths.append(base.with_name(base.name + (f"-{n}" if n > 1 else "") + suffix))
    return paths


def write_atomically(path: Path, data: bytes):
    """``data`` in ``path``, whole or not at all (a ``.part`` beside it, fsynced, then renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    with open(partial, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)


class Report:
    """The JSON-lines report, each line written whole, flushed and fsynced, and beside it ``REPORT.queued.json``:
    the prompts queued and not yet reported (prompt_id -> {"hash", "server"}), so that a killed run's prompts are
    collected from the server that has them."""

    def __init__(self, path: Path, fresh: bool, notify: Notify = ignore):
        self.path = Path(path)
        self.queued_path = self.path.with_name(self.path.name + ".queued.json")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fresh:
            self.path.unlink(missing_ok=True)
            self.queued_path.unlink(missing_ok=True)
        self.lines = read_report(self.path, notify)
        self.file = open(self.path, "ab", buffering=0)
        self.file.truncate(self.path.read_bytes().rfind(b"\n") + 1)  # a line cut short by a crash would glue onto the next
        self.queued = self._read_queued()

    def _read_queued(self) -> dict:
        try:
            queued = json.loads(self.queued_path.read_text())
        except (OSError, ValueError):
            return {}
        # Files from before several servers: prompt_id -> hash.
        return {prompt_id: entry if isinstance(entry, dict) else {"hash": entry, "server": None} for prompt_id, entry in queued.items()}

    def mark_queued(self, prompt_id: str, item_hash: str, server: str):
        self.queued[prompt_id] = {"hash": item_hash, "server": server}
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
