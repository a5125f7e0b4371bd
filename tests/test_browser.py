"""The shipped UI workflows in the real ComfyUI frontend, driven by headless Chromium.

The live test server serves the frontend that ComfyUI's requirements install
(``comfyui-frontend-package``). Each UI workflow is loaded the way a drag and drop loads it; the
frontend must know every node, and its own API export must be our API twin. A screenshot per
workflow goes to ``$ANIMDIFF_SCREENSHOTS`` (the README's pictures) or the test's temporary folder.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from graphs import UI_WORKFLOWS, WORKFLOWS, shipped, validation_errors
from workflow_ui import pack_properties

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-extensions", "--no-first-run", "--window-size=1920,1080"]
# Quiet first-run UI, so that screenshots show the graph only.
SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False, "LiteGraph.Canvas.MinFontSizeForLOD": 0}
LOCAL_STORAGE = {"vueNodesBannerDismissed": "true"}
DIALOGS = "return [...document.querySelectorAll('.p-dialog')].map(d => d.innerText).join('\\n')"
MISSING_NODE_REPORT = """
    const dialogs = [...document.querySelectorAll('.p-dialog')].map(d => d.innerText).join('\\n');
    if (dialogs) return dialogs;
    const details = [...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'View details');
    if (details) details.click();
    return document.body.innerText.includes('Missing Node Packs') && document.body.innerText;
"""


def wait_for(driver, script: str, timeout: float = 180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if result := driver.execute_script(script):
            return result
        time.sleep(0.25)
    raise TimeoutError(f"frontend never satisfied: {script}")


def open_frontend(driver, url: str) -> None:
    """(Re)load the frontend and wait until every node definition is registered (a fresh page: no dialog open)."""
    driver.get(url)
    wait_for(driver, "return !!(window.app?.graph && window.LiteGraph?.registered_node_types['AnimDiffApplyMotionModule'])")


@pytest.fixture(scope="module")
def frontend(server):
    """A headless Chromium with the live server's frontend loaded and every node definition registered."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert Path(CHROMEDRIVER).is_file(), "chromium + chromium-driver are missing: `python3 scripts/bootstrap.py --dev` as root installs them"
    server.post("/settings", SETTINGS)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_script_timeout(120)
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": "".join(
            f"localStorage.setItem({json.dumps(k)}, {json.dumps(v)});" for k, v in LOCAL_STORAGE.items())})
        open_frontend(driver, server.url)
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("ANIMDIFF_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def graph_of(prompt: dict) -> dict:
    return {node_id: (node["class_type"], node["inputs"]) for node_id, node in prompt.items()}


def nodes_naming_missing_files(api: dict, object_info: dict) -> set[str]:
    """Nodes of an API workflow with a combo value the server does not list: the shipped workflows name the official
    model files, which the test server does not have."""
    return {error.split(".")[0] for error in validation_errors(api, object_info) if "is not one of the options" in error}


@pytest.mark.parametrize("name", UI_WORKFLOWS)
def test_frontend_loads_ui_workflow_and_exports_its_api_twin(frontend, server, screenshots, name):
    workflow = shipped(name)
    frontend.execute_script("return window.app.loadGraphData(arguments[0], true, true, arguments[1])", workflow, name)
    loaded = frontend.execute_script(
        "return window.app.graph.nodes.map(n => [String(n.id), n.type, !!LiteGraph.registered_node_types[n.type], !!n.has_errors])")
    assert sorted(node[:3] for node in loaded) == sorted([str(n["id"]), n["type"], True] for n in workflow["nodes"])
    # Newer frontends (1.49, ComfyUI 0.33) flag a node whose model file the server lacks; nothing else may be flagged.
    flagged = {node_id for node_id, _, _, has_errors in loaded if has_errors}
    assert flagged <= nodes_naming_missing_files(shipped(name.replace(".json", ".api.json")), server.get("/object_info"))
    assert any(node_type.startswith("AnimDiff") for _, node_type, _, _ in loaded)
    assert frontend.execute_script(DIALOGS) == ""
    exported = frontend.execute_script("return window.app.graphToPrompt().then(p => p.output)")
    assert graph_of(exported) == graph_of(shipped(name.replace(".json", ".api.json")))
    frontend.execute_script("return window.app.extensionManager.command.execute('Comfy.Canvas.FitView')")
    time.sleep(0.5)  # the fit is animated
    frontend.save_screenshot(str(screenshots / name.replace(".json", ".png")))
    assert (screenshots / name.replace(".json", ".png")).stat().st_size > 10_000


def test_frontend_reports_an_unknown_node_as_missing(frontend):
    workflow = shipped("txt2vid_16f.json")
    (node,) = [n for n in workflow["nodes"] if n["type"] == "AnimDiffApplyMotionModule"]
    node["type"] = "AnimDiffApplyMotionModel"
    frontend.execute_script("return window.app.loadGraphData(arguments[0], true, true, 'renamed')", workflow)
    missing = frontend.execute_script("return window.app.graph.nodes.filter(n => !LiteGraph.registered_node_types[n.type]).map(n => n.type)")
    assert missing == ["AnimDiffApplyMotionModel"]
    # Frontend 1.32 (ComfyUI 0.3.75) names the node type in a dialog; newer ones (1.49, ComfyUI 0.33) raise an
    # "errors found" notice whose details list the node's pack (its cnr_id) under "Missing Node Packs".
    shown = wait_for(frontend, MISSING_NODE_REPORT, timeout=20)
    assert "AnimDiffApplyMotionModel" in shown or ("Missing Node Packs" in shown and "comfyui-animdiff" in shown), shown


PACK_UI_WORKFLOWS = sorted(p.name for p in (WORKFLOWS / "packs").glob("*.json") if not p.name.endswith(".api.json"))


@pytest.mark.parametrize("name", PACK_UI_WORKFLOWS)
def test_frontend_reports_other_packs_as_missing_not_broken(frontend, server, name):
    """A workflow of workflows/packs/ on a ComfyUI without those packs: exactly the other packs' nodes are missing,
    reported by node type (frontend 1.32) or by pack (newer ones); ours and the core nodes load."""
    workflow = shipped(f"packs/{name}")
    ours_or_core = {pack_properties()["cnr_id"], "comfy-core"}
    expected = sorted({n["type"] for n in workflow["nodes"] if n["properties"]["cnr_id"] not in ours_or_core})
    packs = {n["properties"]["cnr_id"] for n in workflow["nodes"]} - ours_or_core
    assert expected and packs
    # No dialog left from an earlier test: the page restores the last workflow it had, so give it a complete one first.
    frontend.execute_script("return window.app.loadGraphData(arguments[0], true, true, 'clean')", shipped("txt2vid_16f.json"))
    open_frontend(frontend, server.url)
    frontend.execute_script("return window.app.loadGraphData(arguments[0], true, true, arguments[1])", workflow, name)
    missing = frontend.execute_script("return window.app.graph.nodes.filter(n => !LiteGraph.registered_node_types[n.type]).map(n => n.type)")
    assert sorted(set(missing)) == expected
    shown = wait_for(frontend, MISSING_NODE_REPORT, timeout=20)
    assert all(t in shown for t in expected) or ("Missing Node Packs" in shown and all(p in shown for p in packs)), shown
