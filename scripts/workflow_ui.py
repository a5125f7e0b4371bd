"""UI-format workflows (what the ComfyUI frontend loads by drag and drop) from API-format ones, and back.

The two formats carry the same graph differently. API format (``/prompt``) names every input;
UI format (LiteGraph) keeps socket inputs as links ``[id, from_node, from_slot, to_node, to_slot,
type]`` and widget values as a positional list, ordered as the node declares its inputs
(``input_order`` in ``/object_info``), with the frontend's extra values: a control mode after a
``control_after_generate`` input or INT ``seed``/``noise_seed`` (we write "fixed" so shared workflows reproduce) and the upload
button's value after an ``image_upload``/``video_upload`` combo.

    PYTHONSAFEPATH=1 .cache/venv/bin/python scripts/workflow_ui.py [--packs-dir DIR]

starts a headless ComfyUI for its ``/object_info`` and rewrites every ``workflows/NAME.json`` from
``workflows/NAME.api.json``; with ``--packs-dir`` (one checkout per pack of :data:`OTHER_PACKS`, loaded by path) also
``workflows/packs/``, whose workflows need those packs. ``ui_to_api`` is the inverse, used by the tests.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import tomllib

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pack_import import import_client  # noqa: E402

import_client()
from client.workflow import is_link  # noqa: E402

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload")
SEED_NAMES = ("seed", "noise_seed")
CORE = {"cnr_id": "comfy-core"}
PACK_DIR = Path(__file__).resolve().parent.parent
WORKFLOWS = PACK_DIR / "workflows"
PACK_WORKFLOWS = WORKFLOWS / "packs"  # workflows that need other packs besides this one
# Other packs' nodes carry their pack's registry id and the version the workflows were made with, so that a frontend
# without the pack reports it missing by name (custom_nodes folder -> properties).
OTHER_PACKS = {
    "ComfyUI-Advanced-ControlNet": {"cnr_id": "comfyui-advanced-controlnet", "ver": "1.5.8"},
    "ComfyUI_IPAdapter_plus": {"cnr_id": "comfyui_ipadapter_plus", "ver": "2.0.0"},
    "ComfyUI-VideoHelperSuite": {"cnr_id": "comfyui-videohelpersuite", "ver": "1.7.9"},
}
COLUMN_WIDTH, NODE_WIDTH, GAP = 400, 340, 40


def inputs_of(info: dict) -> list[tuple[str, list, bool]]:
    """``(name, spec, optional)`` in the node's declared order."""
    order = info.get("input_order") or {s: list(info["input"].get(s, {})) for s in ("required", "optional")}
    return [(name, info["input"][section][name], section == "optional") for section in ("required", "optional")
            for name in order.get(section, [])]


def is_widget(spec: list) -> bool:
    forced_socket = len(spec) > 1 and spec[1].get("forceInput", False)
    return (isinstance(spec[0], list) or spec[0] in WIDGET_TYPES) and not forced_socket


def extra_widget_values(name: str, spec: list) -> list:
    """Values the frontend stores after a widget's own value (its INT widgets named seed/noise_seed get a control too)."""
    options = spec[1] if len(spec) > 1 else {}
    control = options.get("control_after_generate", spec[0] == "INT" and name in SEED_NAMES)
    extra = ["fixed"] if control else []
    return extra + (["image"] if any(options.get(flag) for flag in UPLOAD_FLAGS) else [])


def pack_properties() -> dict:
    project = tomllib.loads((PACK_DIR / "pyproject.toml").read_text())["project"]
    return {"cnr_id": project["name"], "ver": project["version"]}


def node_properties(info: dict, comfyui_version: str) -> dict:
    module = info["python_module"]
    if module.startswith("custom_nodes."):
        source = OTHER_PACKS.get(module.removeprefix("custom_nodes."), None) or pack_properties()
    else:
        source = {**CORE, "ver": comfyui_version}
    return {"Node name for S&R": info["name"], **source}


def depths(api: dict) -> dict[str, int]:
    """Column of each node: one right of its deepest input."""
    memo: dict[str, int] = {}

    def depth(node_id: str) -> int:
        if node_id not in memo:
            sources = [v[0] for v in api[node_id]["inputs"].values() if is_link(v)]
            memo[node_id] = 1 + max((depth(s) for s in sources), default=-1)
        return memo[node_id]

    return {node_id: depth(node_id) for node_id in api}


def node_height(info: dict, widget_count: int) -> int:
    sockets = max(sum(not is_widget(spec) for _, spec, _ in inputs_of(info)), len(info["output"]))
    multiline = sum(spec[1].get("multiline", False) for _, spec, _ in inputs_of(info) if len(spec) > 1)
    return 40 + 22 * sockets + 26 * widget_count + 80 * multiline


def api_to_ui(api: dict, object_info: dict, comfyui_version: str, name: str) -> dict:
    """The UI-format twin of an API-format workflow (node ids kept, links numbered in node order)."""
    links, nodes = [], {}
    columns = depths(api)
    column_y: dict[int, int] = {}
    ordered = sorted(api, key=lambda node_id: (columns[node_id], int(node_id)))
    for order, node_id in enumerate(ordered):
        node, info = api[node_id], object_info[api[node_id]["class_type"]]
        inputs, widgets_values = [], []
        for input_name, spec, optional in inputs_of(info):
            value = node["inputs"].get(input_name)
            if is_widget(spec) and not is_link(value):
                widgets_values += [value, *extra_widget_values(input_name, spec)]
                continue
            socket = {"name": input_name, "type": spec[0] if not isinstance(spec[0], list) else "COMBO", "link": None}
            if optional:
                socket["shape"] = 7
            if is_widget(spec):
                socket["widget"] = {"name": input_name}
                widgets_values += [None, *extra_widget_values(input_name, spec)]
            if is_link(value):
                socket["link"] = len(links) + 1
                links.append([len(links) + 1, int(value[0]), value[1], int(node_id), len(inputs), socket["type"]])
            inputs.append(socket)
        height = node_height(info, len(widgets_values))
        y = column_y.get(columns[node_id], 0)
        column_y[columns[node_id]] = y + height + GAP
        nodes[node_id] = {
            "id": int(node_id), "type": node["class_type"], "pos": [columns[node_id] * COLUMN_WIDTH, y],
            "size": [NODE_WIDTH, height], "flags": {}, "order": order, "mode": 0, "inputs": inputs,
            "outputs": [{"name": out_name, "type": out_type, "slot_index": slot, "links": []}
                        for slot, (out_name, out_type) in enumerate(zip(info["output_name"], info["output"], strict=True))],
            "properties": node_properties(info, comfyui_version), "widgets_values": widgets_values,
        }
        title = node.get("_meta", {}).get("title")
        if title and title != info["display_name"]:
            nodes[node_id]["title"] = title
    for link in links:
        nodes[str(link[1])]["outputs"][link[2]]["links"].append(link[0])
    for node in nodes.values():
        for output in node["outputs"]:
            output["links"] = output["links"] or None
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"comfyui-animdiff/workflows/{name}")), "revision": 0,
        "last_node_id": max(int(n) for n in api), "last_link_id": len(links),
        "nodes": [nodes[n] for n in ordered], "links": links, "groups": [], "config": {},
        "extra": {"ds": {"scale": 0.75, "offset": [40, 40]}}, "version": 0.4,
    }


def ui_to_api(ui: dict, object_info: dict) -> dict:
    """The API-format prompt a UI-format workflow stands for (active nodes only)."""
    links = {link[0]: link for link in ui["links"]}
    api = {}
    for node in ui["nodes"]:
        if node.get("mode", 0) != 0:
            continue
        info = object_info[node["type"]]
        sockets = {socket["name"]: socket for socket in node.get("inputs", [])}
        values = iter(node.get("widgets_values", []))
        inputs = {}
        for input_name, spec, _ in inputs_of(info):
            if is_widget(spec):
                inputs[input_name] = next(values)
                for _ in extra_widget_values(input_name, spec):
                    next(values)
            link = links.get(sockets.get(input_name, {}).get("link"))
            if link:
                inputs[input_name] = [str(link[1]), link[2]]
        api[str(node["id"])] = {"class_type": node["type"], "_meta": {"title": node.get("title", info["display_name"])},
                                "inputs": inputs}
    return api


def write_ui_twins(object_info: dict, comfyui_version: str, folders: tuple[Path, ...] = (WORKFLOWS,)) -> list[Path]:
    written = []
    for api_file in sorted(f for folder in folders for f in folder.glob("*.api.json")):
        name = api_file.name.removesuffix(".api.json")
        ui = api_to_ui(json.loads(api_file.read_text()), object_info, comfyui_version, name)
        path = api_file.parent / f"{name}.json"
        path.write_text(json.dumps(ui, indent=2) + "\n")
        written.append(path)
    return written


def main() -> None:
    import argparse
    import tempfile

    from comfy_server import ComfyServer, linked_custom_nodes
    from pack_import import COMFYUI_DIR

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packs-dir", type=Path, help="one checkout per other pack (OTHER_PACKS): also write workflows/packs/")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="animdiff-ui-") as tmp:
        extra, folders = [], (WORKFLOWS,)
        if args.packs_dir:
            nodes = linked_custom_nodes(Path(tmp) / "packs", {name: args.packs_dir / name for name in OTHER_PACKS})
            (Path(tmp) / "packs.yaml").write_text(f"other_packs:\n    custom_nodes: {nodes}\n")
            extra, folders = ["--extra-model-paths-config", str(Path(tmp) / "packs.yaml")], (WORKFLOWS, PACK_WORKFLOWS)
        with ComfyServer(COMFYUI_DIR, ["--cpu", *extra], PACK_DIR / ".cache" / "workflow_ui.log") as server:
            info, stats = server.get("/object_info"), server.get("/system_stats")
    for path in write_ui_twins(info, stats["system"]["comfyui_version"], folders):
        print(f"wrote {path.relative_to(PACK_DIR)}")


if __name__ == "__main__":
    main()
