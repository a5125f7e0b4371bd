"""The shipped UI-format workflows: each is its API twin's graph, and carries where its nodes come from."""

from __future__ import annotations

import pytest
from graphs import UI_WORKFLOWS, WORKFLOWS, shipped
from workflow_ui import pack_properties, ui_to_api


def test_every_api_workflow_has_a_ui_twin_and_back():
    assert {name.removesuffix(".json") for name in UI_WORKFLOWS} == {p.name.removesuffix(".api.json") for p in WORKFLOWS.glob("*.api.json")}


@pytest.mark.parametrize("name", UI_WORKFLOWS)
def test_ui_workflow_is_the_api_workflows_graph(server, name):
    ui = shipped(name)
    api = shipped(name.replace(".json", ".api.json"))
    assert ui_to_api(ui, server.get("/object_info")) == api
    link_ids = {link[0] for link in ui["links"]}
    assert {s["link"] for n in ui["nodes"] for s in n["inputs"] if s["link"] is not None} == link_ids
    assert {i for n in ui["nodes"] for o in n["outputs"] for i in o["links"] or []} == link_ids


def version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


# Core nodes carry the version of the ComfyUI the UI files were made with (scripts/workflow_ui.py): one for all files.
MADE_WITH = {node["properties"]["ver"] for name in UI_WORKFLOWS for node in shipped(name)["nodes"]
             if not node["type"].startswith("AnimDiff")}


@pytest.mark.parametrize("name", UI_WORKFLOWS)
def test_ui_nodes_carry_their_source_and_version(server, name):
    """Core nodes: ``comfy-core`` at the version the files were made with, which is no newer than the running
    ComfyUI (a newer one loads them as they are); pack nodes: the pack's name and version."""
    info, running = server.get("/object_info"), server.get("/system_stats")["system"]["comfyui_version"]
    (made_with,) = MADE_WITH
    assert version(made_with) <= version(running)
    for node in shipped(name)["nodes"]:
        expected = pack_properties() if node["type"].startswith("AnimDiff") else {"cnr_id": "comfy-core", "ver": made_with}
        assert {k: node["properties"][k] for k in ("cnr_id", "ver")} == expected, node["type"]
        assert info[node["type"]]["python_module"].startswith("custom_nodes.") == node["type"].startswith("AnimDiff")


def test_every_pack_workflow_has_a_ui_twin():
    """workflows/packs/ (workflows that need other packs; run by tests/test_packs.py when ANIMDIFF_PACKS_DIR is set)."""
    folder = WORKFLOWS / "packs"
    assert {p.name.removesuffix(".api.json") for p in folder.glob("*.api.json")} == \
        {p.name.removesuffix(".json") for p in folder.glob("*.json") if not p.name.endswith(".api.json")}
