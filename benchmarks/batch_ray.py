"""The batch on Ray with 1, 2 and 4 CPU workers: items per minute and the driver's overhead per item, on a core-node
graph (two EmptyImage frames -> ImageBatch -> SaveAnimatedWEBP; no model), beside one plain server (``--server``).

    PYTHONSAFEPATH=1 .cache/venv-test/bin/python benchmarks/batch_ray.py --items 24 --size 256

Ray is started here with as many logical GPUs as workers (each worker's ComfyUI runs ``--cpu``), so all of them are
placed however few cores the machine has; the timed span starts once every worker's ComfyUI answers. Overhead per
item: the driver's time for the item (handed out to written) minus ComfyUI's own execution time of it (from its
``/history`` timestamps): queueing, ``/ws``, ``/history``, ``/view``, the object store and the write. Figures are
this machine's (printed, never asserted); the ratios say what adding workers buys.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from pack_import import COMFYUI_DIR, PACK_DIR, RUNTIME_PYTHON, import_client  # noqa: E402

import_client()
from client.report import Report  # noqa: E402
from client.workflow import build_sweeps, expand  # noqa: E402

COMFY_ARGS = "--cpu --cache-none --disable-all-custom-nodes"


def graph(size: int) -> dict:
    empty = lambda color: {"class_type": "EmptyImage", "inputs": {"width": size, "height": size, "batch_size": 1, "color": color}}
    return {"a": empty(0), "b": empty(255), "frames": {"class_type": "ImageBatch", "inputs": {"image1": ["a", 0], "image2": ["b", 0]}},
            "save": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["frames", 0], "filename_prefix": "bench/frames", "fps": 4.0,
                                                                  "lossless": True, "quality": 80, "method": "default"}}}


def items(count: int, size: int):
    workflow = graph(size)
    return expand(workflow, build_sweeps(workflow, [f"a.inputs.color=0..{count - 1}"]))


def summary(lines: list[dict], seconds: float) -> dict:
    overheads = [line["seconds"] - line["execution_seconds"] for line in lines if line.get("execution_seconds") is not None]
    return {"per_minute": 60 * len(lines) / seconds, "overhead_ms": 1000 * statistics.median(overheads),
            "execution_ms": 1000 * statistics.median(line["execution_seconds"] for line in lines)}


def on_ray(workers: int, todo, out: Path) -> dict:
    import ray

    from client import cluster

    temp = tempfile.mkdtemp(prefix="/tmp/ray-bench-")
    ray.init(num_cpus=workers, num_gpus=workers, include_dashboard=False, _temp_dir=temp, runtime_env={"py_modules": [str(PACK_DIR / "client")]},
             log_to_driver=False)
    report = Report(out / "report.jsonl", fresh=True)
    batch = None
    try:
        handles = cluster.start_workers(workers, True, COMFYUI_DIR, RUNTIME_PYTHON, shlex.split(COMFY_ARGS), 600, 600)
        batch = cluster.ClusterBatch(handles, report, out, len(todo), retries=0)
        batch.preflight(todo)
        start = time.perf_counter()
        batch.run(todo)
        seconds = time.perf_counter() - start
    finally:
        if batch:
            batch.close()
        report.close()
        ray.shutdown()
    return summary(report.lines, seconds)


def on_one_server(todo, out: Path) -> dict:
    from comfy_server import ComfyServer

    from client.scheduler import Batch

    with ComfyServer(COMFYUI_DIR, shlex.split(COMFY_ARGS) + ["--output-directory", str(out / "server")], out / "comfyui.log") as server:
        report = Report(out / "report.jsonl", fresh=True)
        batch = Batch(server.url, report, out, len(todo), retries=0, max_queued=1)
        try:
            batch.preflight(todo)
            start = time.perf_counter()
            batch.run(todo)
            seconds = time.perf_counter() - start
        finally:
            batch.close()
            report.close()
    return summary(report.lines, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=24)
    parser.add_argument("--size", type=int, default=256, help="frame width and height")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    todo = items(args.items, args.size)
    with tempfile.TemporaryDirectory() as tmp:
        results = {"one server (--server, max-queued 1)": on_one_server(todo, Path(tmp) / "server")}
        for workers in args.workers:
            results[f"Ray, {workers} worker{'s' * (workers > 1)}"] = on_ray(workers, todo, Path(tmp) / f"ray{workers}")
    base = next(iter(r for name, r in results.items() if name.startswith("Ray, 1 ")), None) or next(iter(results.values()))
    print(f"{args.items} items of a {args.size}x{args.size} two-frame core graph, CPU ComfyUIs")
    print(f"{'':38} {'items/min':>9} {'x 1 worker':>10} {'overhead/item':>14} {'ComfyUI/item':>13}")
    for name, r in results.items():
        print(f"{name:38} {r['per_minute']:9.1f} {r['per_minute'] / base['per_minute']:10.2f} "
              f"{r['overhead_ms']:11.0f} ms {r['execution_ms']:10.0f} ms")


if __name__ == "__main__":
    main()
