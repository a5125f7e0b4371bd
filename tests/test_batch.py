"""The batch client (scripts/animdiff_batch.py on client/): override parsing without a server, then sweeps against the live one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import animdiff_batch as batch
import pytest
from batch_support import SCRIPT, Forwarder, assert_animated, core_graph, history_ids, killed_after, report_lines, rerun_finishes, run_batch, write_json
from comfy_server import free_port
from graphs import small_txt2vid
from PIL import Image

import client.report as reports
import client.workflow as workflow

WORKFLOW = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
    "4": {"class_type": "CLIPTextEncode", "_meta": {"title": "Positive"}, "inputs": {"clip": ["1", 1], "text": "a cat"}},
    "5": {"class_type": "CLIPTextEncode", "_meta": {"title": "Negative"}, "inputs": {"clip": ["1", 1], "text": "blurry"}},
    "6": {"class_type": "ControlNetApplyAdvanced", "inputs": {"positive": ["4", 0], "negative": ["5", 0], "strength": 0.8}},
    "7": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["6", 0], "negative": ["6", 1], "seed": 0, "cfg": 7.0,
                                               "sampler_name": "euler"}},
}


def sweep(*sets, zipped=False, prompts=None, prompt_input=None):
    return workflow.expand(WORKFLOW, workflow.build_sweeps(WORKFLOW, list(sets), prompts, prompt_input), zipped)


# --- without a server ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, values", [
    ("1..5", [1, 2, 3, 4, 5]), ("1..10:3", [1, 4, 7, 10]), ("3..1", [3, 2, 1]), ("-2..0", [-2, -1, 0]),
    ("7", [7]), ("1, 2.5,true,euler", [1, 2.5, True, "euler"]), ('"a cat, running"', ["a cat, running"]),
    ("[1, 2]", [1, 2]), ("", [""]),
])
def test_values_ranges_lists_and_json(text, values):
    assert workflow.parse_values(text) == values


def test_sweeps_are_a_product_or_zipped():
    items = sweep("KSampler.inputs.seed=1..3", "7.inputs.cfg=6,7.5")
    assert [item.parameters for item in items] == [{"7.inputs.seed": s, "7.inputs.cfg": c} for s in (1, 2, 3) for c in (6, 7.5)]
    assert [item.prompt["7"]["inputs"]["seed"] for item in items] == [1, 1, 2, 2, 3, 3]
    assert WORKFLOW["7"]["inputs"]["seed"] == 0 and len({item.hash for item in items}) == 6
    zipped = sweep("KSampler.inputs.seed=1..3", "7.inputs.cfg=6,7,8", "Negative.inputs.text=ugly", zipped=True)
    assert [(i.parameters["7.inputs.seed"], i.parameters["7.inputs.cfg"], i.parameters["5.inputs.text"]) for i in zipped] == [
        (1, 6, "ugly"), (2, 7, "ugly"), (3, 8, "ugly")]
    with pytest.raises(workflow.UsageError, match="one length"):
        sweep("KSampler.inputs.seed=1..3", "7.inputs.cfg=6,7", zipped=True)
    assert [item.parameters for item in sweep()] == [{}]
    with pytest.raises(workflow.UsageError, match="7.inputs.seed is set more than once"):
        sweep("KSampler.inputs.seed=1", "7.inputs.seed=2")


def test_prompts_file_replaces_the_positive_text(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# a comment\na lighthouse, at dusk\n\n  a red fox  \n")
    items = sweep("KSampler.inputs.seed=1,2", prompts=prompts)  # positive reached through ControlNetApplyAdvanced
    assert [(i.prompt["4"]["inputs"]["text"], i.prompt["7"]["inputs"]["seed"]) for i in items] == [
        ("a lighthouse, at dusk", 1), ("a red fox", 1), ("a lighthouse, at dusk", 2), ("a red fox", 2)]
    assert items[0].label == "KSampler.seed=1 prompt=a lighthouse, at dusk"
    items = sweep(prompts=prompts, prompt_input="Negative.inputs.text")
    assert [i.prompt["5"]["inputs"]["text"] for i in items] == ["a lighthouse, at dusk", "a red fox"]
    prompts.write_text("# nothing\n\n")
    with pytest.raises(workflow.UsageError, match="no prompts"):
        sweep(prompts=prompts)


@pytest.mark.parametrize("override, message", [
    ("Sampler.inputs.seed=1", r'no node "Sampler" .*node 7 \(KSampler\)'),
    ("CLIPTextEncode.inputs.text=x", r'"CLIPTextEncode" names several nodes .*node 4 \(CLIPTextEncode, "Positive"\)'),
    ("KSampler.inputs.sed=1", r'node 7 \(KSampler\) has no input "sed"; its inputs: model, positive'),
    ("KSampler.inputs.model=1", r'input "model" of node 7 \(KSampler\) is a link from node 1'),
    ("KSampler.seed=1", r"expected NODE.inputs.NAME"),
    ("KSampler.inputs.seed", r"expected NODE.inputs.NAME=VALUE"),
    ("KSampler.inputs.seed=1..5:0", r"step of a range"),
    ("KSampler.inputs.seed=[]", r"no values"),
])
def test_unknown_nodes_and_inputs_are_refused(override, message):
    with pytest.raises(workflow.UsageError, match=message):
        sweep(override)


def test_cli_refuses_ui_format_and_dry_run_lists_items(tmp_path, capsys):
    ui = tmp_path / "ui.json"
    ui.write_text(json.dumps({"nodes": [], "links": [], "version": 0.4}))
    assert batch.main([str(ui)]) == 2
    err = capsys.readouterr().err
    assert "is a UI-format workflow" in err and "Workflow > Export (API)" in err
    api = write_json(tmp_path / "api.json", WORKFLOW)
    assert batch.main([str(api), "--set", "Positive.inputs.text=a,b", "--set", "7.inputs.seed=1..2", "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "[4/4] Positive.text=b 7.seed=2" in out and "4 items, 4 to run" in out
    assert not (tmp_path / "out").exists()


def test_one_server_and_ray_exclude_each_other_and_ray_is_imported_only_with_ray(tmp_path, capsys):
    assert batch.parse_args(["w.json"]).server == "http://127.0.0.1:8188"
    with pytest.raises(SystemExit):
        batch.parse_args(["w.json", "--ray", "auto", "--server", "http://10.0.0.12:8188"])
    assert "--ray starts its own ComfyUI servers" in capsys.readouterr().err
    api = write_json(tmp_path / "api.json", WORKFLOW)
    probe = (f"import sys; sys.argv = ['animdiff_batch', {str(api)!r}, '--dry-run', '--out', {str(tmp_path / 'out')!r}]; "
             "import animdiff_batch; code = animdiff_batch.main(); assert code == 0 and 'ray' not in sys.modules, sorted(sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=SCRIPT.parent,
                            env={**os.environ, "PYTHONPATH": str(SCRIPT.parent)})
    assert result.returncode == 0, result.stderr


def test_item_files_are_fixed_per_item_whatever_the_server_named_them(tmp_path):
    outputs = [{"filename": "frames_00007_.webp", "subfolder": "sweep", "type": "output"},
               {"filename": "frames_00008_.webp", "subfolder": "sweep", "type": "output"},
               {"filename": "clip_00001.mp4", "subfolder": "../../etc", "type": "output"},
               {"filename": "ComfyUI_temp_abcde_00003_.png", "subfolder": "", "type": "temp"}]
    paths = reports.item_files(tmp_path, 6, 12, outputs)
    assert paths == [tmp_path / "sweep" / "frames_item0007.webp", tmp_path / "sweep" / "frames_item0007-2.webp",
                     tmp_path / "etc" / "clip_item0007.mp4", tmp_path / "temp" / "ComfyUI_temp_abcde_item0007.png"]
    renamed = [{**outputs[0], "filename": "frames_00042_.webp"}]  # another server, another counter: the same path
    assert reports.item_files(tmp_path, 6, 12, renamed) == paths[:1]
    assert reports.item_files(tmp_path, 6, 12345, outputs[:1]) == [tmp_path / "sweep" / "frames_item00007.webp"]
    reports.write_atomically(paths[0], b"one")
    reports.write_atomically(paths[0], b"two")
    assert paths[0].read_bytes() == b"two" and sorted(p.name for p in paths[0].parent.iterdir()) == ["frames_item0007.webp"]


def test_report_drops_a_line_cut_by_a_crash_and_resume_skips_done(tmp_path, capsys):
    items = sweep("KSampler.inputs.seed=1,1,2")  # two identical prompts: each needs its own line
    path = tmp_path / "report.jsonl"
    path.write_text(json.dumps({"index": 0, "prompt_hash": items[0].hash, "status": "success"}) + "\n" + '{"index": 1, "prompt_ha')
    report = reports.Report(path, fresh=False)
    report.record({"index": 2, "prompt_id": "p", "prompt_hash": items[2].hash, "status": "error"})
    report.close()
    assert [json.loads(line)["index"] for line in path.read_text().splitlines()] == [0, 2]
    assert [item.index for item in reports.still_to_do(items, reports.successes(reports.read_report(path)))] == [1, 2]
    api = write_json(tmp_path / "api.json", WORKFLOW)
    assert batch.main([str(api), "--set", "KSampler.inputs.seed=1,1,2", "--report", str(path), "--dry-run"]) == 0
    assert "[1/3] KSampler.seed=1  (done)\n[2/3] KSampler.seed=1\n[3/3] KSampler.seed=2\n3 items, 2 to run" in capsys.readouterr().out
    reports.Report(path, fresh=True).close()
    assert path.read_text() == ""


# --- against the live server --------------------------------------------------------------------

def test_seed_sweep_of_the_txt2vid_workflow_collects_the_animations(server, tmp_path):
    """The shipped workflow at its cheapest (each item reloads the checkpoint: the test server caches nothing)."""
    prompt = small_txt2vid("mm_v3_random.safetensors", frames=2, size=32, steps=1)
    prompt["7"]["inputs"]["cfg"] = 1.0
    prompt["9"]["inputs"]["filename_prefix"] = "batch_sweep/clip"
    out = tmp_path / "out"
    result = run_batch(write_json(tmp_path / "txt2vid.api.json", prompt), "--set", "KSampler.inputs.seed=1..3", "--server", server.url, "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[3/3] step 1/1 of node 7 (KSampler)" in result.stdout  # progress over /ws
    lines = report_lines(out / "report.jsonl")
    assert [(line["index"], line["status"], line["parameters"]) for line in lines] == [(i, "success", {"7.inputs.seed": i + 1}) for i in range(3)]
    assert all(line["seconds"] >= line["execution_seconds"] > 0 for line in lines)
    files = [Path(path) for line in lines for path in line["outputs"]]
    assert len(set(files)) == 3 and all(path.parent == out / "batch_sweep" for path in files)
    assert_animated(files, frames=2)


def test_ten_item_sweep_killed_half_way_restarts_where_it_stopped_without_queueing_twice(server, tmp_path):
    prefix = f"batch_resume_{tmp_path.name}/frames"  # unique: the history is the session server's
    out = tmp_path / "out"
    args = [write_json(tmp_path / "frames.api.json", core_graph(prefix, size=1024)), "--set", "a.inputs.color=0..9",
            "--server", server.url, "--out", out]
    report = out / "report.jsonl"
    before = killed_after(2, args, report, tmp_path / "first.log")
    left_queued = set(json.loads((out / "report.jsonl.queued.json").read_text())) - {line["prompt_id"] for line in before}
    assert 2 <= len(before) < 10, (tmp_path / "first.log").read_text()

    after = rerun_finishes(args, report, before, left_queued, 10)
    # Every item ran once: what the killed run had queued was collected, not queued again.
    assert history_ids(server, prefix) == {line["prompt_id"] for line in after} and len(after) == 10
    assert_animated({path for line in after for path in line["outputs"]}, frames=2)


def test_bad_override_reports_node_input_value_and_runs_nothing(server, tmp_path):
    prompt = small_txt2vid("mm_v3_random.safetensors", frames=2, size=32, steps=1)
    ran_before = len(server.get("/history"))
    result = run_batch(write_json(tmp_path / "bad.api.json", prompt), "--set", "KSampler.inputs.steps=-1",
                       "--set", "KSampler.inputs.sampler_name=euler,no_such_sampler", "--server", server.url, "--out", tmp_path / "out")
    assert result.returncode == 1 and "retry" not in result.stdout  # a validation error is final
    assert ('[1/2] error (KSampler.steps=-1 KSampler.sampler_name=euler): '
            'node 7 (KSampler) input "steps" = -1: Value -1 smaller than min of 1') in result.stdout
    assert 'node 7 (KSampler) input "sampler_name" = "no_such_sampler": Value not in list' in result.stdout
    lines = report_lines(tmp_path / "out" / "report.jsonl")
    assert [(line["status"], line["prompt_id"]) for line in lines] == [("error", None), ("error", None)]
    assert lines[1]["error"]["details"]["node_errors"]["7"]["class_type"] == "KSampler"
    assert len(server.get("/history")) == ran_before
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["report.jsonl", "report.jsonl.queued.json"]


def test_execution_error_names_the_node_and_the_exception(server, tmp_path):
    scale = {"class_type": "ImageScaleBy", "_meta": {"title": "Shrink"}, "inputs": {"upscale_method": "nearest-exact", "scale_by": 1.0}}
    workflow = write_json(tmp_path / "scale.api.json", core_graph("batch_error/frames", 16, ("scale", scale)))
    result = run_batch(workflow, "--set", "Shrink.inputs.scale_by=0.01,0.5", "--server", server.url, "--out", tmp_path / "out")
    assert result.returncode == 1  # one item of two failed
    assert '[1/2] error (Shrink.scale_by=0.01): node scale (ImageScaleBy, "Shrink") raised RuntimeError: Input and output sizes' in result.stdout
    failed, done = report_lines(tmp_path / "out" / "report.jsonl")
    assert failed["status"] == "error" and failed["error"]["details"]["node_id"] == "scale" and failed["prompt_id"]
    assert done["status"] == "success" and done["parameters"] == {"scale.inputs.scale_by": 0.5}
    with Image.open(done["outputs"][0]) as image:
        assert image.size == (8, 8) and image.n_frames == 2


def test_unreachable_server_is_retried_then_the_run_stops(tmp_path):
    workflow = write_json(tmp_path / "api.json", WORKFLOW)
    result = run_batch(workflow, "--server", f"http://127.0.0.1:{free_port()}", "--out", tmp_path / "out", "--retries", 1, timeout=60)
    assert result.returncode == 2
    assert "retry 1/1 in 1 s" in result.stdout and "gave up after 1 retries" in result.stderr
    assert "run the same command again to resume" in result.stderr


def forward_later(port: int, upstream: int, delay: float):
    """After ``delay`` s, a TCP forwarder from ``port`` to ``upstream``: a server that comes up late."""
    timer = threading.Timer(delay, Forwarder(port, upstream).open)
    timer.daemon = True
    timer.start()


def test_server_coming_up_late_is_waited_for_and_polled(server, tmp_path):
    """Connection refused at first: /ws falls back to polling /history, the check of the server is retried until it answers."""
    workflow = write_json(tmp_path / "late.api.json", core_graph("batch_late/frames"))
    port = free_port()
    forward_later(port, int(server.url.rsplit(":", 1)[1]), delay=1.5)
    result = run_batch(workflow, "--set", "b.inputs.color=65280,16711680", "--server", f"http://127.0.0.1:{port}", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "progress: polling /history (/ws failed" in result.stdout  # the socket was refused too
    assert "reading /object_info of 127.0.0.1:" in result.stdout and "retry 1/5 in 1 s" in result.stdout  # waited for the server
    lines = report_lines(tmp_path / "out" / "report.jsonl")
    assert [line["status"] for line in lines] == ["success", "success"]
    assert_animated([line["outputs"][0] for line in lines], frames=2)


@pytest.mark.parametrize("reader", ["websocket-client", "none"])
def test_the_server_helper_follows_a_prompt_over_ws(server, tmp_path, monkeypatch, reader):
    """What the main job shows its progress from: the prompt's own /ws messages, node by node, through websocket-client;
    without it (the runtime venv, a user's ComfyUI) the prompt still completes, followed by polling /history."""
    import client.api

    if reader == "none":
        monkeypatch.setattr(client.api, "websocket", None)
        events = client.api.Events(server.url, "probe")
        assert events.ws is None and "requirements-batch.txt" in events.failure
    seen = []
    entry = server.run(core_graph(f"ws_{tmp_path.name}/frames"), progress=seen.append)
    if reader == "none":
        assert seen == [] and entry["status"]["completed"]
        return
    assert {message["data"]["prompt_id"] for message in seen} == {entry["prompt"][1]}
    assert {"a", "b", "frames", "save"} <= {message["data"]["node"] for message in seen if message["type"] == "executing"}
