"""The frontend's AnimateDiff-Evolved converter (web/ade_convert.js) in headless Chromium, as tests/test_browser.py
drives the shipped workflows: loading an ADE workflow offers the conversion, which rewrites the graph in place
through the pack's route and shows the report; the menu command does the same on the open workflow."""

from __future__ import annotations

from ade_workflows import gen1_ui, ui_node
from test_browser import frontend, wait_for  # noqa: F401 - the fixture
from weights import SPARSECTRL

DIALOG = "const d = document.getElementById('animdiff-ade-dialog'); return d && d.innerText"
REPORT = "const d = document.getElementById('animdiff-ade-dialog'); return d && d.innerText.includes('approximated') && d.innerText"
TYPES = "return window.app.graph.nodes.map(n => n.type)"


def test_loading_an_ade_workflow_offers_the_conversion(frontend, server):  # noqa: F811
    """With Advanced-ControlNet's SparseCtrl loader as well, which needs ADE: named apart, converted to ours."""
    workflow = gen1_ui()
    workflow["nodes"].append(ui_node(12, "ACN_SparseCtrlLoaderAdvanced", [SPARSECTRL["scribble"], True, 1.0, 1.0, "nearest_hint", 1.0, 1.0, 1.0],
                                     [("sparse_method", "SPARSE_METHOD", None), ("tk_optional", "TIMESTEP_KEYFRAME", None)],
                                     [("CONTROL_NET", None)]))
    workflow["last_node_id"] = 12
    frontend.execute_script("window.app.loadGraphData(arguments[0], true, true, 'ade_gen1'); return true", workflow)
    offer = wait_for(frontend, DIALOG, timeout=60)
    assert "ADE_AnimateDiffLoaderGen1" in offer and "ADE_CustomCFGSimple" in offer
    assert "work only with AnimateDiff-Evolved" in offer and "ACN_SparseCtrlLoaderAdvanced" in offer.split("work only with")[1]
    frontend.execute_script("document.querySelector('#animdiff-ade-dialog button[data-value=convert]').click()")
    report = wait_for(frontend, REPORT, timeout=60)
    assert "1 unsupported" in report and "ADE_CustomCFGSimple" in report
    types = frontend.execute_script(TYPES)
    assert {"AnimDiffLoadMotionModule", "AnimDiffMotionLoRA", "AnimDiffApplyMotionModule", "AnimDiffContextOptions"} <= set(types)
    assert [t for t in types if t.startswith("ADE_")] == ["ADE_CustomCFGSimple"]  # unsupported: stays, and is shown
    assert "AnimDiffLoadSparseCtrl" in types and "ACN_SparseCtrlLoaderAdvanced" not in types
    frontend.execute_script("document.querySelector('#animdiff-ade-dialog button').click()")
    exported = frontend.execute_script("return window.app.graphToPrompt().then(p => p.output)")
    apply = next(n for n in exported.values() if n["class_type"] == "AnimDiffApplyMotionModule")
    assert exported[apply["inputs"]["motion_module"][0]]["class_type"] == "AnimDiffMotionLoRA"
    assert exported[apply["inputs"]["context_options"][0]]["class_type"] == "AnimDiffContextOptions"


def test_menu_command_converts_the_open_workflow(frontend):  # noqa: F811
    workflow = gen1_ui()
    workflow["nodes"] = [n for n in workflow["nodes"] if n["type"] != "ADE_CustomCFGSimple"]
    frontend.execute_script("window.app.loadGraphData(arguments[0], true, true, 'ade_gen1_keep'); return true", workflow)
    wait_for(frontend, DIALOG, timeout=60)
    frontend.execute_script("document.querySelector('#animdiff-ade-dialog button[data-value=keep]').click()")
    assert "ADE_AnimateDiffLoaderGen1" in frontend.execute_script(TYPES)
    frontend.execute_script("window.app.extensionManager.command.execute('AnimDiff.ConvertADE'); return true")
    report = wait_for(frontend, REPORT, timeout=60)
    assert "0 unsupported" in report
    assert not [t for t in frontend.execute_script(TYPES) if t.startswith("ADE_")]
