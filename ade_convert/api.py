"""API-format workflows (``/prompt``: node id -> class_type, inputs by name, links ``[id, slot]``) in and out."""

from __future__ import annotations

from .graph import GNode, Graph, Link, Local, Plan


def is_api(workflow) -> bool:
    return isinstance(workflow, dict) and bool(workflow) and all(
        isinstance(node, dict) and isinstance(node.get("class_type"), str) and isinstance(node.get("inputs", {}), dict)
        for node in workflow.values())


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int)) and isinstance(value[1], int) \
        and not isinstance(value[1], bool)


def read(workflow: dict) -> Graph:
    nodes = {}
    for node_id, node in workflow.items():
        inputs = {name: Link(str(v[0]), v[1]) if _is_link(v) else v for name, v in node.get("inputs", {}).items()}
        nodes[str(node_id)] = GNode(str(node_id), node["class_type"], inputs, node.get("_meta", {}).get("title"))
    return Graph(nodes)


def write(workflow: dict, plan: Plan, report) -> dict:
    """The converted workflow: converted nodes replaced in place (the first new node keeps the ADE node's id)."""
    numeric = [int(k) for k in workflow if str(k).isdigit()]
    next_id = max(numeric, default=0) + 1
    ids: dict = {}
    for node_id, rewrite in plan.rewrites.items():
        new = []
        for index in range(len(rewrite.nodes)):
            if index == 0 and node_id not in plan.kept:
                ids[(node_id, index)] = node_id
            else:
                ids[(node_id, index)], next_id = str(next_id), next_id + 1
            new.append(ids[(node_id, index)])
        report.set_became(node_id, "", new)

    def ref(target) -> list | None:
        if target is None or not isinstance(target, tuple):
            return None
        node, slot = target
        return [ids[node] if isinstance(node, tuple) else node, slot]

    out = {}
    for node_id, node in workflow.items():
        node_id = str(node_id)
        if node_id not in plan.rewrites or node_id in plan.kept:
            inputs = {}
            for name, value in node.get("inputs", {}).items():
                if _is_link(value):
                    target = ref(plan.resolve(Link(str(value[0]), value[1]), for_staying=True))
                    if target is not None:
                        inputs[name] = target
                else:
                    inputs[name] = value
            out[node_id] = {**node, "inputs": inputs}
        if node_id in plan.rewrites:
            title = node.get("_meta", {}).get("title")
            for index, new in enumerate(plan.rewrites[node_id].nodes):
                inputs = {}
                for name, value in new.inputs.items():
                    if isinstance(value, Local):
                        inputs[name] = [ids[(node_id, value.index)], value.slot]
                    elif isinstance(value, Link):
                        if (target := ref(plan.resolve(value))) is not None:
                            inputs[name] = target
                    else:
                        inputs[name] = value
                meta = {"title": title} if index == 0 and title else {"title": new.cls}
                out[ids[(node_id, index)]] = {"class_type": new.cls, "inputs": inputs, "_meta": meta}
    return out
