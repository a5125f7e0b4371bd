"""Open AnimateDiff-Evolved workflows on AnimDiff: rewrite ADE nodes into ours, in UI or API format.

Standard library only (Python 3.10+, no ComfyUI, no torch), so the command line (``scripts/convert_ade.py``), the
server route the frontend calls (``routes.py``) and the batch client share it::

    from ade_convert import convert
    converted, report = convert(workflow, name="my_workflow.json")

``table.TABLE`` has one entry per ADE node id; ``report.Report`` says what became of each ADE node. A workflow that
is neither format, has a cycle or links to a missing node raises :class:`ConvertError`; an ADE node that cannot be
converted (unknown, or not supported yet) stays in the graph as it is and is listed as unsupported.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path

from . import api, ui
from .errors import ConvertError
from .graph import is_ade, plan
from .report import Report
from .table import TABLE

__all__ = ["TABLE", "ConvertError", "Report", "convert", "convert_file", "ade_classes", "write_atomic"]

PACK = {"cnr_id": "comfyui-animdiff"}


def convert(workflow, name: str = "", pack: dict | None = None) -> tuple[dict, Report]:
    """The converted copy of ``workflow`` (the input is not changed) and its report."""
    report = Report(file=name)
    pack = pack or PACK
    if ui.is_ui(workflow):
        return _convert_ui(workflow, report, pack), report
    if api.is_api(workflow):
        return api.write(workflow, plan(api.read(workflow), report), report), report
    if isinstance(workflow, dict) and api.is_api(workflow.get("prompt")):  # a /prompt request body
        converted, report = convert(workflow["prompt"], name, pack)
        return {**workflow, "prompt": converted}, report
    raise ConvertError(f"{name or 'the workflow'} is neither a UI-format workflow (\"nodes\" and \"links\") nor an "
                       "API-format one (node id -> {\"class_type\", \"inputs\"})")


def _convert_ui(workflow: dict, report: Report, pack: dict) -> dict:
    out = copy.deepcopy(workflow)
    subgraphs = (workflow.get("definitions") or {}).get("subgraphs") or []
    all_ids = [n.get("id") for g in [workflow, *subgraphs] for n in g.get("nodes", []) if isinstance(n, dict)]
    numeric = [i for i in all_ids if isinstance(i, int)] + [workflow.get("last_node_id") or 0]
    next_id = [max(numeric, default=0) + 1]
    out.update(ui.write(workflow, plan(ui.read(workflow), report), report, next_id, pack))
    for index, subgraph in enumerate(subgraphs):
        if not isinstance(subgraph, dict) or not isinstance(subgraph.get("nodes"), list):
            raise ConvertError(f"definitions.subgraphs[{index}] has no node list")
        where = f"subgraph {subgraph.get('id', index)}"
        converted = ui.write(subgraph, plan(ui.read(subgraph, where), report), report, next_id, pack)
        out["definitions"]["subgraphs"][index] = {**subgraph, **converted}
    out["last_node_id"] = max(next_id[0] - 1, workflow.get("last_node_id") or 0)
    link_ids = [ui._link(r)[0] for r in out.get("links") or []]
    out["last_link_id"] = max([i for i in link_ids if isinstance(i, int)] + [workflow.get("last_link_id") or 0])
    if isinstance(out.get("state"), dict):
        out["state"]["lastNodeId"] = max(out["last_node_id"], out["state"].get("lastNodeId") or 0)
        out["state"]["lastLinkId"] = max(out["last_link_id"], out["state"].get("lastLinkId") or 0)
    return out


def ade_classes(workflow) -> list[str]:
    """The ADE node ids a workflow uses (either format, subgraphs included), sorted."""
    if ui.is_ui(workflow):
        graphs = [workflow, *((workflow.get("definitions") or {}).get("subgraphs") or [])]
        found = {str(n.get("type")) for g in graphs if isinstance(g, dict) for n in g.get("nodes", []) if isinstance(n, dict)}
    elif api.is_api(workflow):
        found = {n["class_type"] for n in workflow.values()}
    else:
        return []
    return sorted(c for c in found if is_ade(c))


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder: never a half-written file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def convert_file(source: Path, out_dir: Path) -> Report:
    """Convert the workflow file ``source`` into ``out_dir`` under its own name; ConvertError when it cannot be read."""
    source = Path(source)
    try:
        workflow = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ConvertError(f"{source}: cannot read it as JSON ({err})") from None
    try:
        converted, report = convert(workflow, source.name)
    except ConvertError as err:
        raise ConvertError(f"{source}: {err.args[0].removeprefix('AnimDiff: ')}") from None
    write_atomic(Path(out_dir) / source.name, json.dumps(converted, indent=2, ensure_ascii=False) + "\n")
    return report
