"""The route the frontend's ADE converter (``web/ade_convert.js``) calls, on ComfyUI's own server.

``POST /animdiff/ade/convert`` with ``{"workflow": ..., "name": ...}`` answers ``{"workflow": converted, "report":
{...}, "summary": TEXT}`` (400 with ``{"error": TEXT}`` for a workflow that cannot be read); ``GET
/animdiff/ade/nodes`` lists every ADE node id the converter knows, so the frontend can tell ADE's missing nodes
from others. The work is ``ade_convert``'s.
"""

from __future__ import annotations

from .ade_convert import TABLE, ConvertError, convert
from .ade_convert.table import NEEDS_ADE

CONVERT, NODES, NEEDS = "/animdiff/ade/convert", "/animdiff/ade/nodes", "/animdiff/ade/needs-ade"


async def convert_workflow(request):
    from aiohttp import web

    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "AnimDiff: the request body is not JSON"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": 'AnimDiff: send {"workflow": ..., "name": ...}'}, status=400)
    try:
        converted, report = convert(body.get("workflow"), str(body.get("name") or ""))
    except ConvertError as err:
        return web.json_response({"error": str(err)}, status=400)
    return web.json_response({"workflow": converted, "report": report.to_json(), "summary": report.summary()})


async def ade_nodes(request):
    from aiohttp import web

    return web.json_response(sorted(TABLE))


async def needs_ade_nodes(request):
    from aiohttp import web

    return web.json_response(sorted(NEEDS_ADE))


def register() -> bool:
    """Add the routes to the running server (none when the pack is imported without one, as in tests)."""
    try:
        from server import PromptServer
    except ImportError:
        return False
    instance = getattr(PromptServer, "instance", None)
    if instance is None:
        return False
    instance.routes.post(CONVERT)(convert_workflow)
    instance.routes.get(NODES)(ade_nodes)
    instance.routes.get(NEEDS)(needs_ade_nodes)
    return True
