"""The batch on a real Ray (scripts/animdiff_batch.py --ray on client/cluster.py): one box with two logical GPUs
(``ray.init(num_gpus=2)`` in this process; the CLI joins it by address), two CPU ComfyUI workers, core-node graphs
with a test-only node that holds an item for a while or kills its own ComfyUI. Each run starts its workers' ComfyUIs
anew (half a minute on two cores): the slow tier."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from batch_support import WORKER_MARK, assert_animated, batch_command, gone, hold_graph, report_lines, run_batch, worker_comfy_args, write_json

pytestmark = pytest.mark.slow

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_box():
    """A Ray of this machine with two logical GPUs; shut down after the module, leaving no process behind."""
    temp = tempfile.mkdtemp(prefix="/tmp/ray-batch-")  # short: Ray's socket paths must fit 107 characters
    context = ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, _temp_dir=temp)
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()
        assert gone(temp) == [] and gone(WORKER_MARK) == []


def ray_args(address: str, folder: Path, *more) -> list:
    return ["--ray", address, "--comfy-args", worker_comfy_args(folder), "--start-timeout", 300, *more]


def comfy_pids(stdout: str) -> dict[int, list[int]]:
    """Worker number -> the pids of the ComfyUIs it ran, in order (from the driver's lines)."""
    pids = {}
    for number, pid in re.findall(r"worker (\d+): ComfyUI \S+ \(pid (\d+)", stdout):
        pids.setdefault(int(number), []).append(int(pid))
    return pids


def wait_for(condition, run: subprocess.Popen, log: Path, timeout: float = 300):
    deadline = time.time() + timeout
    while not condition():
        assert run.poll() is None and time.time() < deadline, log.read_text()
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[-1][0] != "Z"


def files_under(out: Path) -> list[Path]:
    return sorted(path for path in out.rglob("*") if path.is_file() and path.name != "report.jsonl")


def test_two_workers_share_a_sweep_and_a_comfyui_killed_mid_item_is_restarted(ray_box, tmp_path):
    out, log = tmp_path / "out", tmp_path / "run.log"
    args = [write_json(tmp_path / "hold.api.json", hold_graph("ray_sweep/frames", seconds=1.0)), "--set", "a.inputs.color=0..15",
            *ray_args(ray_box, tmp_path), "--out", out]
    with open(log, "w") as log_file:
        run = subprocess.Popen(batch_command(*args), stdout=log_file, stderr=subprocess.STDOUT)
        try:  # worker 1 past its first item, holding its next one: its ComfyUI is SIGKILLed
            wait_for(lambda: len(re.findall(r"\] step 1/2 of node hold \(BatchTestHold\) on worker 1", log.read_text())) >= 2, run, log)
            victim = comfy_pids(log.read_text())[1][0]
            os.kill(victim, signal.SIGKILL)  # mid-item: worker 1's ComfyUI is holding an item
            assert run.wait(timeout=300) == 0, log.read_text()
        finally:
            if run.poll() is None:
                run.kill()
    stdout = log.read_text()
    lines = report_lines(out / "report.jsonl")
    assert sorted(line["parameters"]["a.inputs.color"] for line in lines) == list(range(16))  # every item once
    assert all(line["status"] == "success" for line in lines) and {line["worker"] for line in lines} == {1, 2}  # both used
    assert [line["lost"] for line in lines].count(1) == 1 and "was lost" in stdout and "restarted by Ray" in stdout
    assert "[ 1/16] step 2/2 of node hold (BatchTestHold) on worker" in stdout  # progress per step on the driver
    pids = comfy_pids(stdout)
    assert len(pids[1]) == 2 and pids[1][1] != victim and not alive(victim)  # a new ComfyUI, the old one gone
    assert any(line["worker"] == 1 and line["server"].endswith(f":{port}") for line in lines
               for port in re.findall(rf"worker 1: ComfyUI \S+:(\d+) \(pid {pids[1][1]}", stdout))  # the restarted worker ran items
    files = files_under(out)
    assert files == sorted({Path(path) for line in lines for path in line["outputs"]}) and len(files) == 16  # no extra files
    assert_animated(files, frames=2)
    assert gone(WORKER_MARK) == []  # no ComfyUI outlives its worker


def test_a_poison_item_is_lost_after_its_budget_and_the_rest_succeed(ray_box, tmp_path):
    out = tmp_path / "out"
    result = run_batch(write_json(tmp_path / "hold.api.json", hold_graph("ray_poison/frames")), "--set", "a.inputs.color=0..5",
                       "--set", "hold.inputs.crash=false,false,true,false,false,false", "--zip", "--retries", 1,
                       *ray_args(ray_box, tmp_path), "--out", out)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = {line["index"]: line for line in report_lines(out / "report.jsonl")}
    assert sorted(lines) == list(range(6))
    poison = lines.pop(2)
    assert poison["status"] == "error" and poison["lost"] == 2 and "lost 2 times, giving up" in poison["error"]["message"]
    assert all(line["status"] == "success" for line in lines.values())
    assert len(files_under(out)) == 5 and gone(WORKER_MARK) == []


def test_a_missing_model_stops_the_run_before_anything_is_queued(ray_box, tmp_path):
    graph = {**hold_graph("ray_missing/frames"), "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "absent.safetensors"}}}
    out = tmp_path / "out"
    result = run_batch(write_json(tmp_path / "ckpt.api.json", graph), "--set", "a.inputs.color=1,2", *ray_args(ray_box, tmp_path), "--out", out)
    assert result.returncode == 2, result.stdout + result.stderr
    assert re.search(r'worker 1 \(\S+\) lacks node ckpt \(CheckpointLoaderSimple\) input "ckpt_name": no "absent.safetensors"', result.stderr)
    assert "nothing was queued" in result.stderr and " queued " not in result.stdout
    assert report_lines(out / "report.jsonl") == [] and files_under(out) == [] and gone(WORKER_MARK) == []


def test_the_driver_killed_and_rerun_resumes_without_duplicate_lines_or_files(ray_box, tmp_path):
    out, log = tmp_path / "out", tmp_path / "first.log"
    args = [write_json(tmp_path / "hold.api.json", hold_graph("ray_resume/frames", seconds=0.5)), "--set", "a.inputs.color=0..9",
            *ray_args(ray_box, tmp_path), "--out", out]
    with open(log, "w") as log_file:
        run = subprocess.Popen(batch_command(*args), stdout=log_file, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: len(report_lines(out / "report.jsonl")) >= 3, run, log)
        finally:
            run.send_signal(signal.SIGKILL)
            run.wait()
    before = report_lines(out / "report.jsonl")
    assert 3 <= len(before) < 10, log.read_text()
    assert gone(WORKER_MARK) == []  # the killed driver's job ended: Ray stopped its actors, their ComfyUIs died with them

    second = run_batch(*args)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"skipping {len(before)} done, {10 - len(before)} to run" in second.stdout
    after = report_lines(out / "report.jsonl")
    assert after[:len(before)] == before and len(after) == 10  # no line twice
    assert sorted(line["parameters"]["a.inputs.color"] for line in after) == list(range(10))
    files = files_under(out)
    assert files == sorted({Path(path) for line in after for path in line["outputs"]}) and len(files) == 10  # no file twice, no .part
    assert_animated(files, frames=2)
    assert json.loads((out / "report.jsonl").read_text().splitlines()[0])["worker"] in (1, 2)
