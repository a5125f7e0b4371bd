"""One batch over several real ComfyUI servers on 127.0.0.1 (scripts/animdiff_batch.py on client/scheduler.py).

Three light servers (``--cpu``, no custom nodes) run a two-frame core-node animation, so no checkpoint is
loaded. The first two list a checkpoint file in their models folder, the third does not: a workflow that
names it is incomplete there.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from batch_support import Forwarder, assert_animated, batch_command, core_graph, history_ids, killed_after, report_lines, rerun_finishes, run_batch, write_json
from comfy_server import ComfyServer, free_port
from pack_import import COMFYUI_DIR

CHECKPOINT = "tiny_listed_only.safetensors"  # listed by /object_info; never loaded (the node is not wired to an output)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("servers")
    started = []
    for n in range(3):
        models = tmp / f"models{n}"
        (models / "checkpoints").mkdir(parents=True)
        if n < 2:
            (models / "checkpoints" / CHECKPOINT).write_bytes(b"")
        yaml = tmp / f"models{n}.yaml"
        yaml.write_text(f"batch_test:\n    base_path: {models}\n    checkpoints: checkpoints\n")
        args = ["--cpu", "--disable-all-custom-nodes", "--cache-none", "--extra-model-paths-config", str(yaml),
                "--output-directory", str(tmp / f"output{n}"), "--input-directory", str(tmp / f"input{n}")]
        started.append(ComfyServer(COMFYUI_DIR, args, tmp / f"comfyui{n}.log").start())
    try:
        yield [server.ready() for server in started]
    finally:
        for server in started:
            server.stop()


def servers_args(servers) -> list[str]:
    return [arg for server in servers for arg in ("--server", server.url)]


def by_server(lines: list[dict]) -> dict[str, set[str]]:
    ids = {}
    for line in lines:
        ids.setdefault(line["server"], set()).add(line["prompt_id"])
    return ids


def test_three_servers_share_a_sweep_each_item_once(servers, tmp_path):
    prefix = f"spread_{tmp_path.name}/frames"
    out = tmp_path / "out"
    result = run_batch(write_json(tmp_path / "frames.api.json", core_graph(prefix, 256)), "--set", "a.inputs.color=0..8",
                       *servers_args(servers), "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = report_lines(out / "report.jsonl")
    assert sorted(line["parameters"]["a.inputs.color"] for line in lines) == list(range(9))
    assert all(line["status"] == "success" for line in lines)
    ran = by_server(lines)
    assert set(ran) == {server.url for server in servers}  # each server used
    for server in servers:  # what each server ran is exactly what the report credits it with
        assert history_ids(server, prefix) == ran[server.url]
    files = {Path(path) for line in lines for path in line["outputs"]}
    assert len(files) == 9  # same file names from different servers are kept apart
    assert_animated(files, frames=2)
    for server in servers:
        assert f"{server.url.removeprefix('http://')}: {len(ran[server.url])} items, 0 failed, " in result.stdout


def test_client_killed_mid_run_and_rerun_queues_nothing_twice_on_any_server(servers, tmp_path):
    prefix = f"spread_resume_{tmp_path.name}/frames"
    out = tmp_path / "out"
    args = [write_json(tmp_path / "frames.api.json", core_graph(prefix, 1024)), "--set", "a.inputs.color=0..11",
            *servers_args(servers), "--out", out]
    report = out / "report.jsonl"
    before = killed_after(2, args, report, tmp_path / "first.log")
    queued = json.loads((out / "report.jsonl.queued.json").read_text())
    left_queued = set(queued) - {line["prompt_id"] for line in before}
    assert 2 <= len(before) < 12, (tmp_path / "first.log").read_text()
    assert {entry["server"] for entry in queued.values()} <= {server.url for server in servers}

    after = rerun_finishes(args, report, before, left_queued, 12)
    ran = by_server(after)
    for server in servers:  # every item ran once, on the server the report names: nothing queued twice, nothing lost
        assert history_ids(server, prefix) == ran.get(server.url, set())


def checkpoint_graph(prefix: str) -> dict:
    """The core animation beside a checkpoint loader wired to nothing: the workflow names the file, nothing loads it."""
    return {**core_graph(prefix), "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}}}


def test_a_server_missing_a_model_stops_the_run_before_anything_is_queued(servers, tmp_path):
    prefix = f"missing_{tmp_path.name}/frames"
    workflow = write_json(tmp_path / "ckpt.api.json", checkpoint_graph(prefix))
    result = run_batch(workflow, "--set", "a.inputs.color=1,2", *servers_args(servers), "--out", tmp_path / "out")
    assert result.returncode == 2
    assert (f'{servers[2].url} lacks node ckpt (CheckpointLoaderSimple) input "ckpt_name": no "{CHECKPOINT}"') in result.stderr
    assert servers[0].url not in result.stderr and "--skip-incomplete" in result.stderr
    assert report_lines(tmp_path / "out" / "report.jsonl") == [] and not (tmp_path / "out" / "report.jsonl.queued.json").exists()
    assert all(history_ids(server, prefix) == set() for server in servers)

    skipped = run_batch(workflow, "--set", "a.inputs.color=1..4", *servers_args(servers), "--out", tmp_path / "out", "--skip-incomplete")
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert f"leaving out {servers[2].url} lacks" in skipped.stdout
    lines = report_lines(tmp_path / "out" / "report.jsonl")
    assert len(lines) == 4 and {line["server"] for line in lines} <= {servers[0].url, servers[1].url}
    assert history_ids(servers[2], prefix) == set()


@pytest.mark.parametrize("reader", ["websocket-client", "none"])
def test_the_server_helper_follows_a_prompt_over_ws(servers, tmp_path, monkeypatch, reader):
    """What the main job shows its progress from: the prompt's own /ws messages, node by node, through websocket-client;
    without it (the runtime venv, a user's ComfyUI) the prompt still completes, followed by polling /history."""
    import client.api

    if reader == "none":
        monkeypatch.setattr(client.api, "websocket", None)
        events = client.api.Events(servers[0].url, "probe")
        assert events.ws is None and "requirements-batch.txt" in events.failure
    seen = []
    entry = servers[0].run(core_graph(f"ws_{tmp_path.name}/frames"), progress=seen.append)
    if reader == "none":
        assert seen == [] and entry["status"]["completed"]
        return
    assert {message["data"]["prompt_id"] for message in seen} == {entry["prompt"][1]}
    assert {"a", "b", "frames", "save"} <= {message["data"]["node"] for message in seen if message["type"] == "executing"}


def wait_until(condition, run: subprocess.Popen, log: Path, timeout: float = 120):
    deadline = time.time() + timeout
    while not condition():
        assert run.poll() is None and time.time() < deadline, log.read_text()
        time.sleep(0.01)


def test_a_server_cut_off_is_down_then_gets_items_again_once_it_answers(servers, tmp_path):
    """servers[1] behind a link the test cuts and restores; servers[0] behind a slow link (0.2 s a request), so the
    sweep outlasts the outage."""
    prefix = f"revived_{tmp_path.name}/frames"
    out, log = tmp_path / "out", tmp_path / "run.log"
    slow = Forwarder(free_port(), servers[0].port, delay=0.2).open()
    cut = Forwarder(free_port(), servers[1].port).open()
    slow_url, cut_url = (f"http://127.0.0.1:{forwarder.port}" for forwarder in (slow, cut))
    cut_name = cut_url.removeprefix("http://")
    args = [write_json(tmp_path / "frames.api.json", core_graph(prefix, 64)), "--set", "a.inputs.color=0..19",
            "--server", slow_url, "--server", cut_url, "--out", out, "--retries", 1, "--max-queued", 1]
    with open(log, "w") as log_file:
        run = subprocess.Popen(batch_command(*args), stdout=log_file, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: any(line["server"] == cut_url for line in report_lines(out / "report.jsonl")), run, log)
            cut.cut()
            wait_until(lambda: f"{cut_name} is down" in log.read_text(), run, log)
            cut.open()
            assert run.wait(timeout=300) == 0, log.read_text()
        finally:
            if run.poll() is None:
                run.kill()
            slow.cut()
            cut.cut()
    stdout = log.read_text()
    back = stdout.index(f"{cut_name} answers again")
    assert f" on {cut_name}: " in stdout[back:], stdout  # items finished there after it came back
    lines = report_lines(out / "report.jsonl")
    assert all(line["status"] == "success" for line in lines)
    assert sorted(line["parameters"]["a.inputs.color"] for line in lines) == list(range(20))  # each item reported once
    ran = by_server(lines)
    assert history_ids(servers[0], prefix) == ran[slow_url]
    # Cut off, servers[1] kept running the one prompt it had (max-queued 1), which also went to servers[0].
    assert ran[cut_url] <= history_ids(servers[1], prefix) and len(history_ids(servers[1], prefix) - ran[cut_url]) <= 1


def test_a_server_killed_after_its_first_item_its_items_go_elsewhere_and_its_finished_item_is_kept(servers, tmp_path):
    """Runs last: it kills the third server."""
    prefix = f"killed_{tmp_path.name}/frames"
    out, victim = tmp_path / "out", servers[2]
    args = [write_json(tmp_path / "frames.api.json", core_graph(prefix, 1024)), "--set", "a.inputs.color=0..11",
            *servers_args(servers), "--out", out, "--retries", 2]
    with open(tmp_path / "run.log", "w") as log:
        run = subprocess.Popen(batch_command(*args), stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 120
            while not any(line["server"] == victim.url for line in report_lines(out / "report.jsonl")) and time.time() < deadline:
                assert run.poll() is None, (tmp_path / "run.log").read_text()
                time.sleep(0.01)
            victim.process.send_signal(signal.SIGKILL)
            assert run.wait(timeout=300) == 0, (tmp_path / "run.log").read_text()
        finally:
            if run.poll() is None:
                run.kill()
    stdout = (tmp_path / "run.log").read_text()
    assert f"{victim.url.removeprefix('http://')} is down" in stdout and "queueing it again" in stdout
    lines = report_lines(out / "report.jsonl")
    assert all(line["status"] == "success" for line in lines)
    assert sorted(line["parameters"]["a.inputs.color"] for line in lines) == list(range(12))  # every item once
    ran = by_server(lines)
    assert ran[victim.url]  # its finished items were kept ...
    for server in servers[:2]:  # ... and not run again: the others ran exactly what the report credits them with
        assert history_ids(server, prefix) == ran.get(server.url, set())
    assert_animated({path for line in lines for path in line["outputs"]}, frames=2)
