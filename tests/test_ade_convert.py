"""AnimateDiff-Evolved workflows on AnimDiff: the mapping table, both formats, bad input, the command line, and
converted workflows running on a live server.

Opt-in: ``ANIMDIFF_ADE_DIR`` (an ADE checkout) checks the table against ADE's own ``NODE_CLASS_MAPPINGS``;
``ANIMDIFF_ADE_CORPUS`` (a folder of public ADE workflows, never committed) converts every file in it.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ade_workflows import CASES, MM, gen1_ui
from pack_import import PACK_DIR as ROOT
from pack_import import load_package
from workflow_ui import extra_widget_values, inputs_of, is_widget, ui_to_api

load_package("ade_convert", ROOT / "ade_convert")
from ade_convert import TABLE, ConvertError, ade_classes, convert  # noqa: E402
from ade_convert.table import NEEDS_ADE  # noqa: E402
from ade_convert.targets import TARGETS  # noqa: E402

CLI = [sys.executable, str(ROOT / "scripts" / "convert_ade.py")]


def ade_node_ids(ade_dir: Path) -> set[str]:
    """The keys of ADE's NODE_CLASS_MAPPINGS, read from its source (``Class.NodeID`` keys resolved in its modules)."""
    package = ade_dir / "animatediff"
    tree = ast.parse((package / "nodes.py").read_text())
    node_ids = {}
    for path in package.glob("*.py"):
        for cls in ast.walk(ast.parse(path.read_text())):
            if isinstance(cls, ast.ClassDef):
                for stmt in cls.body:
                    if isinstance(stmt, ast.Assign) and any(getattr(t, "id", None) == "NodeID" for t in stmt.targets):
                        node_ids[cls.name] = ast.literal_eval(stmt.value)
    (mapping,) = [n.value for n in ast.walk(tree) if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "NODE_CLASS_MAPPINGS"]
    return {ast.literal_eval(k) if isinstance(k, ast.Constant) else node_ids[k.value.id] for k in mapping.keys}


def test_mapping_table_is_well_formed():
    for ade_id, entry in TABLE.items():
        assert (entry.rule is None) == bool(entry.reason), ade_id
        if entry.rule is None:
            assert "issue #" in entry.reason or "equivalent" in entry.reason or "ComfyUI" in entry.reason or "AnimDiff" in entry.reason, ade_id
            continue
        names = [i.name for i in entry.inputs]
        assert len(names) == len(set(names)), ade_id
        assert entry.outputs and entry.maps_to, ade_id
        for target in ("AnimDiff" + word for word in entry.maps_to.split("AnimDiff")[1:]):
            assert target.split()[0].rstrip(",()") in TARGETS, (ade_id, target)


@pytest.mark.skipif(not os.environ.get("ANIMDIFF_ADE_DIR"), reason="set ANIMDIFF_ADE_DIR to an AnimateDiff-Evolved checkout")
def test_mapping_table_has_every_ade_node_id():
    ids = ade_node_ids(Path(os.environ["ANIMDIFF_ADE_DIR"]))
    assert len(ids) > 100
    assert sorted(ids - set(TABLE)) == []
    assert sorted(set(TABLE) - ids) == sorted(NEEDS_ADE)  # and the other packs' nodes that need ADE


def test_every_supported_node_has_a_test_workflow():
    covered = {node["class_type"] for case in CASES.values() for node in case().values()}
    assert {ade_id for ade_id, entry in TABLE.items() if entry.rule} <= covered


def test_targets_are_the_servers_nodes(server):
    """Widget order and sockets as the frontend lays them out (scripts/workflow_ui.py's rules)."""
    info = server.get("/object_info")
    for cls, target in TARGETS.items():
        declared = [(name, is_widget(spec), optional, tuple(extra_widget_values(name, spec))) for name, spec, optional in inputs_of(info[cls])]
        assert declared == [(i.name, i.widget, i.optional, i.extra) for i in target.inputs], cls
        assert list(zip(info[cls]["output_name"], info[cls]["output"], strict=True)) == list(target.outputs), cls


# The most used ADE loaders run in the default tier; the other cases (about 10 s each on two cores) in the slow one.
DEFAULT_TIER = {"ADE_AnimateDiffLoaderGen1", "ADE_UseEvolvedSampling", "ADE_AnimateDiffLoaderWithContext"}


@pytest.mark.parametrize("ade_id", [pytest.param(i, marks=() if i in DEFAULT_TIER else pytest.mark.slow) for i in sorted(CASES)])
def test_converted_ade_workflow_runs(server, ade_id):
    workflow = CASES[ade_id]()
    converted, report = convert(workflow, ade_id)
    assert report.unsupported == []
    assert ade_id in {item["ade_class"] for item in report.converted + report.approximated}
    assert ade_classes(converted) == []
    for node in converted.values():
        for value in node["inputs"].values():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                assert value[0] in converted, (node, value)
    entry = server.run(converted, timeout=600)
    assert entry["status"]["status_str"] == "success"


# --- UI format ---------------------------------------------------------------------------------------------------

def links_are_valid(ui: dict) -> None:
    nodes = {n["id"]: n for n in ui["nodes"]}
    for link_id, src, src_slot, dst, dst_slot, _ in ui["links"]:
        assert link_id in (nodes[src]["outputs"][src_slot]["links"] or []), link_id
        assert nodes[dst]["inputs"][dst_slot]["link"] == link_id, link_id
    ids = {link[0] for link in ui["links"]}
    assert {s["link"] for n in ui["nodes"] for s in n.get("inputs", []) if s["link"] is not None} == ids
    assert {i for n in ui["nodes"] for o in n.get("outputs", []) for i in o["links"] or []} == ids


def animdiff_nodes(prompt: dict) -> set:
    """Our nodes with their inputs, a link written as its source's class and slot (ids differ between formats)."""
    def value(v):
        return [prompt[v[0]]["class_type"], v[1]] if isinstance(v, list) and len(v) == 2 and v[0] in prompt else v
    return {(n["class_type"], json.dumps({k: value(v) for k, v in n["inputs"].items()}, sort_keys=True))
            for n in prompt.values() if n["class_type"].startswith("AnimDiff")}


def test_ui_conversion_keeps_the_layout_and_matches_the_api_conversion(server):
    ui = gen1_ui()
    converted, report = convert(ui, "gen1.json")
    links_are_valid(converted)
    assert converted["groups"] == ui["groups"]
    by_id = {n["id"]: n for n in converted["nodes"]}
    assert by_id[5]["type"] == "AnimDiffContextOptions" and by_id[5]["title"] == "my context" and by_id[5]["color"] == "#223"
    assert by_id[5]["pos"] == [500, 50]
    assert by_id[6]["type"] == "AnimDiffLoadMotionModule" and "title" not in by_id[6]  # ADE's display name is not kept
    assert by_id[11]["type"] == "ADE_CustomCFGSimple"  # unsupported: stays, reported
    assert [u["node"] for u in report.unsupported] == ["11"]
    assert 4 not in by_id  # the LoRA loader is folded into AnimDiffMotionLoRA
    assert converted["last_node_id"] == max(by_id)
    info = server.get("/object_info")
    as_api = ui_to_api({**converted, "nodes": [n for n in converted["nodes"] if n["type"] in info]}, info)
    twin = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ui["nodes"][0]["widgets_values"][0]}},
        "4": {"class_type": "ADE_AnimateDiffLoRALoader", "inputs": {"name": "v2_lora_ZoomIn_random.safetensors", "strength": 0.5}},
        "5": {"class_type": "ADE_LoopedUniformContextOptions", "inputs": {
            "context_length": 4, "context_stride": 1, "context_overlap": 1, "closed_loop": False, "fuse_method": "pyramid",
            "use_on_equal_length": False, "start_percent": 0, "guarantee_steps": 1}},
        "6": {"class_type": "ADE_AnimateDiffLoaderGen1", "inputs": {
            "model": ["1", 0], "model_name": MM, "beta_schedule": "sqrt_linear (AnimateDiff)", "context_options": ["5", 0],
            "motion_lora": ["4", 0]}},
    }
    api, _ = convert(twin)
    assert animdiff_nodes(as_api) == animdiff_nodes(api)
    runnable = {k: v for k, v in as_api.items() if v["class_type"] != "ADE_CustomCFGSimple"}
    assert server.run(runnable, timeout=600)["status"]["status_str"] == "success"


def test_subgraph_definitions_are_converted():
    inner = gen1_ui()
    subgraph = {"id": "5f0c2a3e-1111-4222-8333-944445555666", "name": "animate", "nodes": [n for n in inner["nodes"] if n["id"] in (4, 5, 6)],
                "links": [{"id": 9, "origin_id": 4, "origin_slot": 0, "target_id": 6, "target_slot": 2, "type": "MOTION_LORA"},
                          {"id": 10, "origin_id": 5, "origin_slot": 0, "target_id": 6, "target_slot": 1, "type": "CONTEXT_OPTIONS"},
                          {"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 6, "target_slot": 0, "type": "MODEL"},
                          {"id": 6, "origin_id": 6, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "MODEL"}]}
    workflow = {"nodes": [], "links": [], "definitions": {"subgraphs": [subgraph]}, "version": 0.4}
    converted, report = convert(workflow)
    (out,) = converted["definitions"]["subgraphs"]
    assert ade_classes(converted) == []
    assert {n["type"] for n in out["nodes"]} == {"AnimDiffContextOptions", "AnimDiffLoadMotionModule", "AnimDiffMotionLoRA",
                                                 "AnimDiffApplyMotionModule"}
    apply_id = next(n["id"] for n in out["nodes"] if n["type"] == "AnimDiffApplyMotionModule")
    assert {(link["origin_id"], link["target_id"]) for link in out["links"]} >= {(-10, apply_id), (apply_id, -20)}
    assert all(item["node"].startswith("subgraph ") for item in report.converted + report.approximated)


# --- bad input ---------------------------------------------------------------------------------------------------

def test_bad_workflows_are_clear_errors():
    with pytest.raises(ConvertError, match="neither a UI-format"):
        convert({"hello": 1})
    with pytest.raises(ConvertError, match="neither"):
        convert([1, 2])
    body, report = convert({"prompt": CASES["ADE_AnimateDiffLoaderGen1"](), "client_id": "x"})  # a /prompt request body
    assert body["client_id"] == "x" and ade_classes(body["prompt"]) == [] and report.complete
    cycle = {"1": {"class_type": "ADE_MultivalDynamic", "inputs": {"mask_optional": ["2", 0]}},
             "2": {"class_type": "GrowMask", "inputs": {"mask": ["1", 0]}}}
    with pytest.raises(ConvertError, match="cycle through nodes"):
        convert(cycle)
    with pytest.raises(ConvertError, match="links to node 9"):
        convert({"1": {"class_type": "ADE_UseEvolvedSampling", "inputs": {"model": ["9", 0]}}})
    ui = gen1_ui()
    ui["links"].append([13, 42, 0, 8, 0, "MODEL"])
    with pytest.raises(ConvertError, match="node 42"):
        convert(ui)


def test_unknown_ade_node_and_unconverted_consumer_stay_reported():
    workflow = copy.deepcopy(CASES["ADE_UseEvolvedSampling"]())
    workflow["new"] = {"class_type": "ADE_SomethingNewer", "inputs": {"m": ["load", 0]}}
    converted, report = convert(workflow)
    assert converted["new"] == workflow["new"]
    reasons = {u["node"]: u["reason"] for u in report.unsupported}
    assert "newer ADE" in reasons["new"]
    assert "kept as it is for node new" in reasons["load"]  # its MOTION_MODEL_ADE feeds a node that stays
    assert converted["load"]["class_type"] == "ADE_LoadAnimateDiffModel"
    assert any(n["class_type"] == "AnimDiffLoadMotionModule" for n in converted.values())


def test_command_line_writes_files_report_and_exit_codes(tmp_path):
    good, partial, bad = tmp_path / "good.json", tmp_path / "partial.json", tmp_path / "bad.json"
    good.write_text(json.dumps(CASES["ADE_AnimateDiffLoaderGen1"]()))
    partial.write_text(json.dumps(gen1_ui()))
    bad.write_text("{not json")
    out, report = tmp_path / "out", tmp_path / "report.json"
    run = subprocess.run([*CLI, str(good), "--out", str(out), "--report", str(report)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(report.read_text())[0]["converted"][0]["ade_class"] == "ADE_AnimateDiffLoaderGen1"
    run = subprocess.run([*CLI, str(good), str(partial), "--out", str(out), "--report", str(report)], capture_output=True, text=True)
    assert run.returncode == 3, run.stderr
    (first, second) = json.loads(report.read_text())
    assert set(second) == {"file", "converted", "approximated", "unsupported"} and second["file"] == "partial.json"
    assert second["unsupported"] == [{"node": "11", "ade_class": "ADE_CustomCFGSimple", "reason": TABLE["ADE_CustomCFGSimple"].reason}]
    assert all(set(i) == {"node", "ade_class", "became", "differs"} for i in second["approximated"])
    assert (out / "partial.json").is_file() and (out / "good.json").is_file()
    run = subprocess.run([*CLI, str(bad), "--out", str(out)], capture_output=True, text=True)
    assert run.returncode == 2 and "bad.json" in run.stderr and not (out / "bad.json").exists()
    assert [p.name for p in out.iterdir()] == sorted(["good.json", "partial.json"]) or sorted(p.name for p in out.iterdir()) == ["good.json", "partial.json"]


# --- public ADE workflows (opt-in) ----------------------------------------------------------------------------------

@pytest.mark.skipif(not os.environ.get("ANIMDIFF_ADE_CORPUS"), reason="set ANIMDIFF_ADE_CORPUS to a folder of ADE workflow files")
def test_public_ade_workflows_convert_with_valid_links():
    files = sorted(Path(os.environ["ANIMDIFF_ADE_CORPUS"]).rglob("*.json"))
    assert files
    for path in files:
        workflow = json.loads(path.read_text(encoding="utf-8"))
        try:
            converted, report = convert(workflow, path.name)
        except ConvertError as err:  # a broken file: a clear error naming it, never a crash
            assert str(err).startswith("AnimDiff: ")
            continue
        if "nodes" in converted:
            for graph in [converted, *((converted.get("definitions") or {}).get("subgraphs") or [])]:
                if graph["links"] and isinstance(graph["links"][0], list):
                    links_are_valid(graph)
        assert {u["node"] for u in report.unsupported} | {i["node"] for i in report.converted + report.approximated}


def test_readme_table_is_the_mapping_table():
    from ade_convert.table import markdown

    text = (ROOT / "docs" / "ade-workflows.md").read_text()
    start = text.index("<!-- ade-table")
    table = text[text.index("\n", start) + 1:text.index("<!-- /ade-table -->")].strip()
    assert table == markdown()


def test_batch_client_converts_an_ade_workflow_behind_a_flag(server, tmp_path):
    workflow = tmp_path / "ade.json"
    workflow.write_text(json.dumps(CASES["ADE_AnimateDiffLoaderGen1"]()))
    batch = [sys.executable, str(ROOT / "scripts" / "animdiff_batch.py"), str(workflow), "--server", server.url, "--fresh"]
    refused = subprocess.run([*batch, "--out", str(tmp_path / "plain")], capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "ADE_AnimateDiffLoaderGen1" in refused.stdout + refused.stderr  # off by default
    run = subprocess.run([*batch, "--convert-ade", "--out", str(tmp_path / "converted")], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ADE_AnimateDiffLoaderGen1 -> " in run.stdout


@pytest.mark.parametrize("value", [None, "text", 3.5, True, [], {"a": 1}])
def test_odd_values_never_crash(value):
    """Every ADE node id with every input set to an odd value (API format) or odd widget values (UI format): a
    converted or unsupported entry for each, never an exception other than ConvertError."""
    for ade_id, entry in TABLE.items():
        inputs = {i.name: value for i in entry.inputs}
        _, report = convert({"1": {"class_type": ade_id, "inputs": inputs}})
        assert len(report.converted + report.approximated + report.unsupported) == 1, ade_id
        ui = {"nodes": [{"id": 1, "type": ade_id, "inputs": [], "outputs": [], "widgets_values": value}], "links": []}
        _, report = convert(ui)
        assert len(report.converted + report.approximated + report.unsupported) == 1, ade_id
