#!/usr/bin/env python3
"""Batch client for ComfyUI's HTTP API: queue a sweep of an API-format workflow on one or many servers and collect every output file.

    python scripts/animdiff_batch.py txt2vid.api.json --set KSampler.inputs.seed=1..20
    python scripts/animdiff_batch.py txt2vid.api.json --set 7.inputs.cfg=6,7.5 --set 7.inputs.steps=20,30   # 4 items
    python scripts/animdiff_batch.py txt2vid.api.json --prompts prompts.txt --set KSampler.inputs.seed=1..3 --zip
    python scripts/animdiff_batch.py txt2vid.api.json --set 'Positive.inputs.text="a cat, running"' --dry-run
    python scripts/animdiff_batch.py txt2vid.api.json --set KSampler.inputs.seed=1..200 --server http://gpu0:8188 --server http://gpu1:8188

The workflow is ComfyUI's API format (Workflow > Export (API)); a UI-format file is refused.

Overrides, ``--set NODE.inputs.NAME=VALUE``: NODE is a node id, a unique node title or a unique
class_type; VALUE is a JSON scalar (``7``, ``7.5``, ``true``, ``euler``), a list ``a,b,c``, an
integer range ``1..20`` or ``1..20:2`` (inclusive, with a step), or any JSON value (``"a, b"`` is one
string, ``[1, 2]`` a list). Several lists make one item per combination (their product), or with
``--zip`` one item per position (single values repeat). ``--prompts FILE`` adds one item per line
(blank lines and ``#`` comments skipped) for the text input ``--prompt-input NODE.inputs.NAME``;
by default the ``text`` input of the one node linked to a ``positive`` input. Unknown nodes and inputs
are errors before anything is queued.

Servers: ``--server URL`` (repeatable; default http://127.0.0.1:8188) and ``--servers FILE`` (one URL a
line, optionally followed by that server's own max-queued). Before anything is queued every server must
answer and its /object_info must have each node class and model (or other list) value the items use;
otherwise the run stops naming the server and what it lacks (``--skip-incomplete``: leave such servers
out). Each server holds at most ``--max-queued`` of our prompts; the next item goes to whichever has room,
so a faster server gets more. Progress comes over ``/ws`` (websocket-client), or by polling ``/history``
without it. Every file of every output (images, animated images, videos, ...) is downloaded through
``/view`` into ``--out``, keeping its subfolder. The JSON-lines report (``--report``, default
OUT/report.jsonl) gets one line per item: index, prompt_id, prompt_hash, parameters, server, status
(success/error), outputs, seconds, execution_seconds and error. Connection failures, timeouts and HTTP 5xx
are retried with backoff (``--retries``) without holding up the other servers; a server whose failures
outlast them is down: its queued and running items go to the others (each item may be lost ``--retries``
times), and it gets items again once it answers. Validation errors (HTTP 400) are not retried: their
node, input and value are printed.

Resuming is the default: rerunning the same command skips items the report has as successful (same
resolved prompt) and collects the prompts an interrupted run left queued on any server
(REPORT.queued.json) instead of queueing them again; ``--fresh`` starts a new report. Exit status: 0 all
items succeeded, 1 some failed, 2 bad arguments, servers lacking what the workflow needs, or no server
reachable (rerun to resume), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run with PYTHONSAFEPATH: add only scripts/
from pack_import import import_client  # noqa: E402

import_client()
from client.api import ServerUnavailable  # noqa: E402
from client.report import Report, read_report, still_to_do, successes  # noqa: E402
from client.scheduler import Batch, Incomplete, Server  # noqa: E402
from client.workflow import Item, UsageError, build_sweeps, expand, load_workflow, read_lines  # noqa: E402

DEFAULT_SERVER = "http://127.0.0.1:8188"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workflow", type=Path, help="API-format workflow (.json)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="NODE.inputs.NAME=VALUE",
                        help="override an input: a value, a list a,b,c or a range 1..20[:step]; repeat to sweep")
    parser.add_argument("--zip", action="store_true", help="pair the lists position by position instead of taking their product")
    parser.add_argument("--prompts", type=Path, metavar="FILE", help="one prompt a line, one item each")
    parser.add_argument("--prompt-input", metavar="NODE.inputs.NAME", help="the input --prompts replaces (default: the text node linked to positive)")
    parser.add_argument("--server", dest="server_urls", action="append", default=[], metavar="URL",
                        help=f"a ComfyUI server; repeat for several (default {DEFAULT_SERVER})")
    parser.add_argument("--servers", type=Path, metavar="FILE", help="more servers: one URL a line, optionally followed by its max-queued")
    parser.add_argument("--skip-incomplete", action="store_true",
                        help="leave out servers lacking a node class or model the workflow needs (and use those not answering once they do)")
    parser.add_argument("--out", type=Path, default=Path("batch-output"), help="where output files go (default %(default)s)")
    parser.add_argument("--report", type=Path, help="the JSON-lines report (default OUT/report.jsonl)")
    parser.add_argument("--retries", type=int, default=5, help="retries of a transient failure, and losses of an item (default %(default)s)")
    parser.add_argument("--max-queued", type=int, default=2, help="our prompts queued or running at once on each server (default %(default)s)")
    parser.add_argument("--fresh", action="store_true", help="start a new report instead of resuming the one there")
    parser.add_argument("--no-websocket", action="store_true", help="poll /history instead of following /ws")
    parser.add_argument("--dry-run", action="store_true", help="print the items and exit")
    parser.add_argument("--convert-ade", action="store_true",
                        help="first convert AnimateDiff-Evolved nodes to AnimDiff's (ade_convert; unsupported ones stay and are named)")
    args = parser.parse_args(argv)
    if args.max_queued < 1 or args.retries < 0:
        parser.error("--max-queued must be at least 1 and --retries at least 0")
    args.report = args.report or args.out / "report.jsonl"
    return args


def servers_of(args: argparse.Namespace) -> list[Server]:
    """``--server`` URLs, then the ``--servers`` file's lines (``URL [MAX_QUEUED]``), each once."""
    entries = [(url, args.max_queued) for url in args.server_urls]
    for line in read_lines(args.servers, "servers") if args.servers else []:
        url, *rest = line.split()
        if len(rest) > 1 or (rest and not (rest[0].isdigit() and int(rest[0]) > 0)):
            raise UsageError(f'{args.servers}: "{line}": expected a URL, optionally followed by its max-queued (a positive integer)')
        entries.append((url, int(rest[0]) if rest else args.max_queued))
    servers = {}
    for url, max_queued in entries or [(DEFAULT_SERVER, args.max_queued)]:
        server = Server(url, max_queued)
        servers.setdefault(server.url, server)
    return list(servers.values())


def converted_from_ade(workflow: dict, name: str) -> dict:
    from pack_import import PACK_DIR, load_package

    ade_convert = load_package("ade_convert", PACK_DIR / "ade_convert")
    try:
        converted, report = ade_convert.convert(workflow, name)
    except ade_convert.ConvertError as err:
        raise UsageError(str(err)) from None
    print(report.summary())
    return converted


def plan(args: argparse.Namespace) -> list[Item]:
    workflow = load_workflow(args.workflow)
    if args.convert_ade:
        workflow = converted_from_ade(workflow, args.workflow.name)
    return expand(workflow, build_sweeps(workflow, args.sets, args.prompts, args.prompt_input), args.zip)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        items, servers = plan(args), servers_of(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        todo = {item.index for item in still_to_do(items, Counter() if args.fresh else successes(read_report(args.report, print)))}
        for item in items:
            print(f"[{item.index + 1}/{len(items)}] {item.label or '(the workflow as it is)'}" + ("" if item.index in todo else "  (done)"))
        print(f"{len(items)} items, {len(todo)} to run")
        return 0

    report = Report(args.report, args.fresh, print)
    todo = still_to_do(items, successes(report.lines))
    if len(todo) < len(items):
        print(f"resuming {args.report}: skipping {len(items) - len(todo)} done, {len(todo)} to run")
    batch = Batch(servers, report, args.out, len(items), args.retries, not args.no_websocket, notify=print)
    try:
        if todo:
            batch.preflight(todo, args.skip_incomplete)
            batch.run(todo)
    except Incomplete as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ServerUnavailable as err:
        where = f"the server at {servers[0].url} is unreachable" if len(servers) == 1 else "no server is reachable"
        print(f"error: {err}\n{where}; run the same command again to resume", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume (prompts still queued are collected)", file=sys.stderr)
        return 130
    finally:
        report.close()
        batch.close()
    print(f"{batch.succeeded} succeeded, {batch.failed} failed, {len(items) - len(todo)} skipped as done; report: {args.report}")
    if todo:
        print("per server:\n" + "\n".join(batch.summary()))
    return 1 if batch.failed else 0


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    sys.exit(main())
