#!/usr/bin/env python3
"""Batch client for ComfyUI's HTTP API: queue a sweep of an API-format workflow on one server, or on a Ray cluster, and collect every output file.

    python scripts/animdiff_batch.py txt2vid.api.json --set KSampler.inputs.seed=1..20
    python scripts/animdiff_batch.py txt2vid.api.json --set 7.inputs.cfg=6,7.5 --set 7.inputs.steps=20,30   # 4 items
    python scripts/animdiff_batch.py txt2vid.api.json --prompts prompts.txt --set KSampler.inputs.seed=1..3 --zip
    python scripts/animdiff_batch.py txt2vid.api.json --set 'Positive.inputs.text="a cat, running"' --dry-run
    python scripts/animdiff_batch.py txt2vid.api.json --set KSampler.inputs.seed=1..200 --ray auto   # one worker per GPU of the cluster

The workflow is ComfyUI's API format (Workflow > Export (API)); a UI-format file is refused.

Overrides, ``--set NODE.inputs.NAME=VALUE``: NODE is a node id, a unique node title or a unique
class_type; VALUE is a JSON scalar (``7``, ``7.5``, ``true``, ``euler``), a list ``a,b,c``, an
integer range ``1..20`` or ``1..20:2`` (inclusive, with a step), or any JSON value (``"a, b"`` is one
string, ``[1, 2]`` a list). Several lists make one item per combination (their product), or with
``--zip`` one item per position (single values repeat). ``--prompts FILE`` adds one item per line
(blank lines and ``#`` comments skipped) for the text input ``--prompt-input NODE.inputs.NAME``;
by default the ``text`` input of the one node linked to a ``positive`` input. Unknown nodes and inputs
are errors before anything is queued.

One server, ``--server URL`` (default http://127.0.0.1:8188): before anything is queued it must answer
and its /object_info must have each node class and file (model, image, ...) the items use; otherwise
the run stops naming what it lacks. It holds at most ``--max-queued`` of our prompts. Progress comes
over ``/ws`` (websocket-client), or by polling ``/history`` without it. Every file of every output
(images, animated images, videos, ...) is downloaded through ``/view`` into ``--out``, keeping its
subfolder. Connection failures, timeouts and HTTP 5xx are retried with backoff (``--retries``); past
that the run stops (rerun to resume). Validation errors (HTTP 400) are not retried: their node, input
and value are printed.

A Ray cluster, ``--ray auto|local|ADDRESS`` (pip install -r requirements-cluster.txt): one actor per
worker (``--workers``; default one per GPU of the cluster, or one CPU worker per node without GPUs)
starts ComfyUI on its node (``--comfy-dir``), is checked like a server above, and runs one item at a
time. Ray places the workers, restarts one whose ComfyUI died or hung (``--hang-timeout``), and
notices lost nodes; an item may be lost ``--retries`` times. Validation and execution errors are
recorded once, never retried. The files go to fixed per-item paths under ``--out``
(SUBFOLDER/PREFIX_item0007.EXT), written by this driver only. See docs/batch.md.

The JSON-lines report (``--report``, default OUT/report.jsonl) gets one line per item: index,
prompt_id, prompt_hash, parameters, server (with --ray also worker, node, lost), status
(success/error), outputs, seconds, execution_seconds and error. Resuming is the default: rerunning
the same command skips items the report has as successful (same resolved prompt); on one server it
also collects the prompts an interrupted run left queued (REPORT.queued.json) instead of queueing
them again. ``--fresh`` starts a new report. Exit status: 0 all items succeeded, 1 some failed, 2 bad
arguments, a server or worker lacking what the workflow needs, or none reachable (rerun to resume),
130 interrupted.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run with PYTHONSAFEPATH: add only scripts/
from pack_import import COMFYUI_DIR, PACK_DIR, RUNTIME_PYTHON, import_client  # noqa: E402

import_client()
from client.api import ServerUnavailable  # noqa: E402
from client.report import Report, read_report, still_to_do, successes  # noqa: E402
from client.scheduler import Batch, Incomplete  # noqa: E402
from client.workflow import Item, UsageError, build_sweeps, expand, load_workflow  # noqa: E402

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
    parser.add_argument("--server", metavar="URL", help=f"the ComfyUI server (default {DEFAULT_SERVER}); several: --ray")
    parser.add_argument("--out", type=Path, default=Path("batch-output"), help="where output files go (default %(default)s)")
    parser.add_argument("--report", type=Path, help="the JSON-lines report (default OUT/report.jsonl)")
    parser.add_argument("--retries", type=int, default=5, help="retries of a transient failure, and losses of an item (default %(default)s)")
    parser.add_argument("--max-queued", type=int, default=2, help="our prompts queued or running at once on the server (default %(default)s)")
    parser.add_argument("--fresh", action="store_true", help="start a new report instead of resuming the one there")
    parser.add_argument("--no-websocket", action="store_true", help="poll /history instead of following /ws")
    parser.add_argument("--dry-run", action="store_true", help="print the items and exit")
    cluster = parser.add_argument_group("on a Ray cluster (pip install -r requirements-cluster.txt; docs/batch.md)")
    cluster.add_argument("--ray", metavar="auto|local|ADDRESS",
                         help="run the sweep on Ray: one actor per worker owns a ComfyUI on its node (local: start Ray here; "
                              "auto: the cluster this machine is in; else the head's address, e.g. 10.0.0.1:6379)")
    cluster.add_argument("--workers", type=int, help="actors (default: one per GPU of the cluster; without GPUs one CPU worker per node)")
    cluster.add_argument("--comfy-dir", type=Path, default=COMFYUI_DIR, help="ComfyUI's folder on every node (default: the pack's bootstrap, %(default)s)")
    cluster.add_argument("--comfy-python", default=RUNTIME_PYTHON,
                         help="the Python that runs ComfyUI on the nodes (default %(default)s; where it is missing, the worker's own)")
    cluster.add_argument("--comfy-args", default="", metavar="ARGS", help='more arguments for each ComfyUI, e.g. "--highvram" (--cpu added without GPUs)')
    cluster.add_argument("--hang-timeout", type=float, default=600,
                         help="seconds without a word about the running item (or an answer) before its ComfyUI counts as hung (default %(default)s)")
    cluster.add_argument("--start-timeout", type=float, default=600, help="seconds for the workers to start ComfyUI (default %(default)s)")
    cluster.add_argument("--dashboard", action="store_true", help="print the Ray dashboard's address (with --ray local: start it)")
    parser.add_argument("--convert-ade", action="store_true",
                        help="first convert AnimateDiff-Evolved nodes to AnimDiff's (ade_convert; unsupported ones stay and are named)")
    args = parser.parse_args(argv)
    if args.max_queued < 1 or args.retries < 0:
        parser.error("--max-queued must be at least 1 and --retries at least 0")
    if args.ray and args.server:
        parser.error("--ray starts its own ComfyUI servers: leave out --server")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    args.report = args.report or args.out / "report.jsonl"
    args.server = args.server or DEFAULT_SERVER
    return args


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


def run_on_ray(args: argparse.Namespace, report: Report, items: list[Item], todo: list[Item]) -> int:
    """The sweep on Ray (imported here only); exit status as :func:`main`'s."""
    try:
        from client import cluster
    except ImportError as err:
        print(f"error: --ray needs Ray ({err}): pip install -r requirements-cluster.txt", file=sys.stderr)
        return 2
    cluster.connect(args.ray, args.dashboard, PACK_DIR / "client", notify=print)
    batch = None
    try:
        count, gpu = cluster.default_workers()
        count = args.workers or count
        print(f"Ray: {count} workers, one {'GPU' if gpu else 'CPU'} each; ComfyUI from {args.comfy_dir}")
        workers = cluster.start_workers(count, gpu, args.comfy_dir, args.comfy_python, shlex.split(args.comfy_args),
                                        args.start_timeout, args.hang_timeout)
        batch = cluster.ClusterBatch(workers, report, args.out, len(items), args.retries, args.start_timeout, notify=print)
        batch.preflight(todo)
        batch.run(todo)
    except cluster.Incomplete as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (ServerUnavailable, cluster.RayActorError, cluster.GetTimeoutError) as err:
        print(f"error: {err}\nrun the same command again to resume", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        if batch is not None:
            batch.close()
        cluster.ray.shutdown()
    print(f"{batch.succeeded} succeeded, {batch.failed} failed, {len(items) - len(todo)} skipped as done; report: {args.report}")
    print("per worker:\n" + "\n".join(batch.summary()))
    return 1 if batch.failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        items = plan(args)
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
    if args.ray:
        if not todo:
            report.close()
            print(f"0 succeeded, 0 failed, {len(items)} skipped as done; report: {args.report}")
            return 0
        try:
            return run_on_ray(args, report, items, todo)
        finally:
            report.close()
    batch = Batch(args.server, report, args.out, len(items), args.retries, args.max_queued, not args.no_websocket, notify=print)
    try:
        if todo:
            batch.preflight(todo)
            batch.run(todo)
    except Incomplete as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ServerUnavailable as err:
        print(f"error: {err}\nthe server at {batch.url} is unreachable; run the same command again to resume", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume (prompts still queued are collected)", file=sys.stderr)
        return 130
    finally:
        report.close()
        batch.close()
    print(f"{batch.succeeded} succeeded, {batch.failed} failed, {len(items) - len(todo)} skipped as done; report: {args.report}")
    if todo:
        print(batch.summary())
    return 1 if batch.failed else 0


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    sys.exit(main())
