"""UI-format workflows (what the frontend saves: ``nodes``, ``links``, groups, and subgraph definitions) in and out.

Nodes that stay keep everything (position, size, title, colours, mode, properties); a converted node's first new
node takes its id, position, title (unless it is ADE's display name), colours and mode, the others are placed
below it. Links between staying nodes keep their ids; ``inputs[].link`` and ``outputs[].links`` of every node are
rebuilt from the link list, so the links are consistent whatever was rewired. Links are written in the form the
file uses (arrays ``[id, from, slot, to, slot, type]``, or objects as in ``definitions.subgraphs``).
"""

from __future__ import annotations

import copy

from .errors import ConvertError
from .graph import GNode, Graph, Link, Local, Plan, is_ade
from .table import TABLE, widget_values
from .targets import TARGETS

SUBGRAPH_IO = frozenset({"-10", "-20"})  # a subgraph definition's input and output nodes
ADE_MARK = "🎭🅐🅓"  # in every ADE display name: such a title is not kept on our node
NODE_WIDTH, ROW, GAP = 320, 24, 30


def is_ui(workflow) -> bool:
    return isinstance(workflow, dict) and isinstance(workflow.get("nodes"), list) and isinstance(workflow.get("links", []), list) \
        and "links" in workflow


def _link(record) -> tuple:
    """``(id, from, from_slot, to, to_slot, type)`` of an array or object link."""
    if isinstance(record, dict):
        return (record.get("id"), record.get("origin_id"), record.get("origin_slot"), record.get("target_id"),
                record.get("target_slot"), record.get("type"))
    if isinstance(record, list) and len(record) >= 5:
        return tuple(record[:6]) + ((None,) if len(record) < 6 else ())
    raise ConvertError(f"a link is neither [id, from, slot, to, slot, type] nor an object: {record!r}")


def _record(link: tuple, as_object: bool):
    if as_object:
        return dict(zip(("id", "origin_id", "origin_slot", "target_id", "target_slot", "type"), link, strict=True))
    return list(link)


def _check(graph: dict, label: str) -> None:
    """The structure the frontend writes, or a ConvertError naming what is not."""
    for node in graph["nodes"]:
        if not isinstance(node, dict) or "id" not in node or not isinstance(node.get("type"), str):
            raise ConvertError(f"{label}: a node without an id or type: {str(node)[:80]}")
        for key in ("inputs", "outputs"):
            if not isinstance(node.get(key) or [], list) or not all(isinstance(s, dict) for s in node.get(key) or []):
                raise ConvertError(f"{label}: node {node['id']} ({node['type']}) has {key} that are not a list of sockets")
    for record in graph.get("links") or []:
        link = _link(record)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (link[2], link[4])) or link[2] < 0 or link[4] < 0:
            raise ConvertError(f"{label}: link {link[0]} has no valid slot numbers: {record!r}")


def read(graph: dict, where: str = "") -> Graph:
    _check(graph, where or "the workflow")
    links = {}
    for record in graph.get("links") or []:
        link = _link(record)
        links[link[0]] = link
    ids = {str(n.get("id")) for n in graph["nodes"]}
    boundary = SUBGRAPH_IO if where else frozenset()
    label = where or "the workflow"
    for link in links.values():
        for end in (link[1], link[3]):
            if str(end) not in ids and str(end) not in boundary:
                raise ConvertError(f"{label}: link {link[0]} joins node {end}, which is not in the workflow")
    nodes = {}
    for node in graph["nodes"]:
        entry = TABLE.get(node["type"])
        inputs, notes = {}, []
        if entry is not None and entry.rule is not None:
            stored = node.get("widgets_values") or []
            if isinstance(stored, list):
                inputs, notes = widget_values(entry, stored)
            elif isinstance(stored, dict):
                inputs = dict(stored)
            else:
                notes = [f"widgets_values {stored!r} is not a list: ADE's defaults are used"]
        for index, socket in enumerate(node.get("inputs") or []):
            link = links.get(socket.get("link"))
            if link is not None:
                name = socket.get("name", f"#{index}")
                inputs[name] = Link(str(link[1]), link[2], inputs.get(name))
        nodes[str(node["id"])] = GNode(str(node["id"]), node["type"], inputs, node.get("title"), notes)
    return Graph(nodes, where, boundary)


def _xy(pos) -> tuple[float, float]:
    if isinstance(pos, dict):
        return float(pos.get("0", 0)), float(pos.get("1", 0))
    if isinstance(pos, list) and len(pos) >= 2:
        return float(pos[0]), float(pos[1])
    return 0.0, 0.0


def _height(cls: str, widgets: int) -> int:
    target = TARGETS[cls]
    sockets = max(sum(not i.widget for i in target.inputs), len(target.outputs))
    return 30 + ROW * (sockets + widgets) + (80 if cls == "AnimDiffPromptSchedule" else 0)


def _new_node(cls: str, values: dict, node_id: int, pos, original: dict | None, pack: dict, mode: int = 0) -> tuple[dict, list]:
    """A UI node of ``cls`` with ``values``; returns it and its links to make: ``(input slot, value)``."""
    target = TARGETS[cls]
    inputs, widgets, wanted = [], [], []
    for spec in target.inputs:
        value = values.get(spec.name)
        linked = isinstance(value, (Link, Local, tuple))
        if spec.widget:
            widgets += [value.widget_value if isinstance(value, Link) else (None if linked else value), *spec.extra]
            if not linked:
                continue
        socket = {"name": spec.name, "type": spec.type, "link": None}
        if spec.optional:
            socket["shape"] = 7
        if spec.widget:
            socket["widget"] = {"name": spec.name}
        if linked:
            wanted.append((len(inputs), value))
        inputs.append(socket)
    node = {"id": node_id, "type": cls, "pos": pos, "size": [NODE_WIDTH, _height(cls, len(widgets))], "flags": {},
            "order": (original or {}).get("order", 0), "mode": mode, "inputs": inputs,
            "outputs": [{"name": name, "type": type_, "slot_index": slot, "links": None} for slot, (name, type_) in enumerate(target.outputs)],
            "properties": {"Node name for S&R": cls, **(pack if target.pack else {"cnr_id": "comfy-core"})},
            "widgets_values": widgets}
    if original is not None:
        for key in ("color", "bgcolor", "flags"):
            if key in original:
                node[key] = copy.deepcopy(original[key])
        title = original.get("title")
        if isinstance(title, str) and title and ADE_MARK not in title:
            node["title"] = title
    return node, wanted


def write(graph: dict, plan: Plan, report, next_id: list, pack: dict) -> dict:
    """The converted copy of one graph (the main one or a subgraph definition). ``next_id``: ``[the next free node id]``."""
    out = copy.deepcopy(graph)
    records = [_link(r) for r in graph.get("links") or []]
    as_object = bool(graph.get("links")) and isinstance(graph["links"][0], dict) or (not graph.get("links") and bool(plan.graph.where))
    next_link = max([r[0] for r in records if isinstance(r[0], int)], default=0) + 1
    original = {str(n["id"]): n for n in graph["nodes"]}

    def stays(node_id) -> bool:
        return str(node_id) not in plan.rewrites or str(node_id) in plan.kept

    ids: dict = {}
    for node_id, rewrite in plan.rewrites.items():
        new = []
        for index in range(len(rewrite.nodes)):
            if index == 0 and node_id not in plan.kept:
                ids[(node_id, index)] = original[node_id]["id"]
            else:
                ids[(node_id, index)], next_id[0] = next_id[0], next_id[0] + 1
            new.append(str(ids[(node_id, index)]))
        report.set_became(node_id, plan.graph.where, new)

    types: dict = {}  # (node id, slot) -> output type, for new links
    for node in graph["nodes"]:
        for slot, output in enumerate(node.get("outputs") or []):
            types[(str(node["id"]), slot)] = output.get("type")

    def endpoint(target):
        """A resolved source as ``(ui node id, slot)``, or None."""
        if not isinstance(target, tuple):
            return None
        node, slot = target
        if isinstance(node, tuple):
            return ids[node], slot
        return (original[node]["id"] if node in original else int(node)), slot

    links = [r for r in records if stays(r[1]) and stays(r[3])]

    def add_link(src, dst_id, dst_slot, type_):
        nonlocal next_link
        links.append((next_link, src[0], src[1], dst_id, dst_slot, type_))
        next_link += 1

    nodes = []
    for node in graph["nodes"]:
        node_id = str(node["id"])
        if stays(node_id):
            nodes.append(copy.deepcopy(node))
        if node_id not in plan.rewrites:
            continue
        x, y = _xy(node.get("pos"))
        offset = 0
        for index, new in enumerate(plan.rewrites[node_id].nodes):
            first = index == 0 and node_id not in plan.kept
            pos = copy.deepcopy(node.get("pos")) if first else [x, y + offset]
            made, wanted = _new_node(new.cls, new.inputs, ids[(node_id, index)], pos, node if first else None, pack,
                                     node.get("mode", 0))  # muted or bypassed: all of its conversion too
            offset += made["size"][1] + GAP
            if first:
                width = _xy(node.get("size"))[0]
                made["size"] = [max(width, NODE_WIDTH), max(_xy(node.get("size"))[1], made["size"][1])]
                offset = made["size"][1] + GAP
            for slot, value in wanted:
                if isinstance(value, Local):
                    src = (ids[(node_id, value.index)], value.slot)
                    type_ = TARGETS[plan.rewrites[node_id].nodes[value.index].cls].outputs[value.slot][1]
                else:
                    src = endpoint(plan.resolve(value))
                    type_ = made["inputs"][slot]["type"]
                if src is not None:
                    add_link(src, made["id"], slot, type_)
            nodes.append(made)
    # staying nodes' inputs from converted sources
    for record in records:
        if stays(record[3]) and not stays(record[1]):
            src = endpoint(plan.resolve(Link(str(record[1]), record[2]), for_staying=True))
            if src is not None:
                add_link(src, record[3], record[4], _source_type(plan, ids, src, types, record[5]))
    _relink(nodes, links)
    out["nodes"] = nodes
    out["links"] = [_record(link, as_object) for link in links]
    return out


def _source_type(plan: Plan, ids: dict, src, types: dict, default):
    for (ade_id, index), ui_id in ids.items():
        if ui_id == src[0]:
            outputs = TARGETS[plan.rewrites[ade_id].nodes[index].cls].outputs
            return outputs[src[1]][1] if src[1] < len(outputs) else default
    return types.get((str(src[0]), src[1]), default)


def _relink(nodes: list, links: list) -> None:
    """Every node's ``inputs[].link`` and ``outputs[].links`` from the link list."""
    by_id = {str(n["id"]): n for n in nodes}
    for node in nodes:
        for socket in node.get("inputs") or []:
            socket["link"] = None
        for output in node.get("outputs") or []:
            output["links"] = []
    for link_id, src, src_slot, dst, dst_slot, _ in links:
        if str(dst) in by_id and dst_slot < len(by_id[str(dst)].get("inputs") or []):
            by_id[str(dst)]["inputs"][dst_slot]["link"] = link_id
        if str(src) in by_id:
            outputs = by_id[str(src)]["outputs"] = by_id[str(src)].get("outputs") or []
            while len(outputs) <= src_slot:
                outputs.append({"name": "", "type": "*", "links": []})
            outputs[src_slot]["links"].append(link_id)
    for node in nodes:
        for output in node.get("outputs") or []:
            output["links"] = output["links"] or None


def has_ade(graph: dict) -> bool:
    return any(isinstance(n, dict) and is_ade(str(n.get("type", ""))) for n in graph.get("nodes", []))
