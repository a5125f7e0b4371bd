"""A workflow as a graph, whichever format it came in, and the rewrite of its ADE nodes into ours.

``ui`` and ``api`` read a file into :class:`Graph` (node id -> class and named inputs) and write the plan back;
this module decides, format-neutrally, what every ADE node becomes (:func:`plan`). A rule (``rules``) turns one
ADE node into a :class:`Rewrite`: new nodes, and what each of its outputs now is: an output of a new node
(:class:`Local`), a source it passes through (:class:`Link`), or a :class:`Virtual` value that only other
converted nodes read (a MotionLoRA list, a multival, sample settings: ADE types that ours fold into other nodes).
An ADE node whose output feeds a node that stays unconverted, and which that node could not read from ours, is
kept as it is beside its conversion, so no link ever joins two types that do not match.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ConvertError
from .report import Report

# Types whose values are the same objects in ADE and in ComfyUI: a staying node can take ours in their place.
CORE_TYPES = frozenset({"MODEL", "CLIP", "VAE", "LATENT", "CONDITIONING", "IMAGE", "MASK", "INT", "FLOAT", "STRING", "CONTROL_NET"})
PASS_THROUGH = frozenset({"Reroute"})  # frontend-only nodes that forward their one input
ADE_PREFIXES = ("ADE_",)


@dataclass(frozen=True)
class Link:
    """An input connected to output ``slot`` of node ``node``; ``widget_value``: a widget's value, when the widget
    was turned into this socket (UI format keeps it)."""

    node: str
    slot: int
    widget_value: object = None


@dataclass(frozen=True)
class Local:
    """Output ``slot`` of the ``index``-th new node of the same rewrite."""

    index: int
    slot: int


@dataclass(frozen=True)
class Virtual:
    """A value that converted consumers read in place of a link (``kind``: the ADE type)."""

    kind: str
    value: object


@dataclass
class NewNode:
    cls: str
    inputs: dict = field(default_factory=dict)  # name -> constant | Link | Local


@dataclass
class Rewrite:
    nodes: list[NewNode]
    outputs: dict  # ADE output slot -> Local | Link | Virtual | None (dropped)
    differs: list[str] = field(default_factory=list)


@dataclass
class GNode:
    id: str
    cls: str
    inputs: dict  # name -> constant | Link (UI format: socket inputs of non-ADE nodes by name)
    title: str | None = None
    notes: list = field(default_factory=list)  # what reading the file assumed (widget counts)


@dataclass
class Graph:
    nodes: dict[str, GNode]
    where: str = ""  # "" for the main graph, "subgraph NAME" inside a definition
    boundary: frozenset = frozenset()  # ids that are no node but may be linked (a subgraph's input and output)


class Unsupported(Exception):
    """Raised by a rule: this node stays unconverted (``reason``; the issue or feature it waits for)."""


@dataclass
class Plan:
    graph: Graph
    rewrites: dict[str, Rewrite]
    kept: set[str]  # converted nodes that also stay, for unconverted consumers

    def resolve(self, link: Link, for_staying: bool = False):
        """Where ``link`` points after the rewrite: ``(node id or (ade id, index), slot)``, a Virtual, or None."""
        seen = 0
        while link.node in self.rewrites and not (for_staying and link.node in self.kept):
            out = self.rewrites[link.node].outputs.get(link.slot)
            if isinstance(out, Local):
                return (link.node, out.index), out.slot
            if not isinstance(out, Link):
                return out
            link, seen = out, seen + 1
            if seen > len(self.rewrites):
                raise ConvertError(f"{self.graph.where or 'the workflow'}: pass-through loop at node {link.node}")
        return link.node, link.slot


def is_ade(cls: str) -> bool:
    from .table import TABLE

    return cls in TABLE or cls.startswith(ADE_PREFIXES)


def topological(graph: Graph) -> list[str]:
    """Node ids, every node after its sources; a cycle or a link to a missing node is a ConvertError."""
    where = graph.where or "the workflow"
    for node in graph.nodes.values():
        for name, value in node.inputs.items():
            if isinstance(value, Link) and value.node not in graph.nodes and value.node not in graph.boundary:
                raise ConvertError(f"{where}: node {node.id} ({node.cls}) input {name!r} links to node {value.node}, "
                                   "which is not in the workflow")
    order, state = [], {}
    for start in graph.nodes:
        stack = [(start, iter(_sources(graph, start)))]
        if state.get(start):
            continue
        state[start] = 1
        while stack:
            node_id, sources = stack[-1]
            nxt = next(sources, None)
            if nxt is None:
                stack.pop()
                state[node_id] = 2
                order.append(node_id)
            elif state.get(nxt) == 1:
                cycle = [n for n, _ in stack][[n for n, _ in stack].index(nxt):]
                raise ConvertError(f"{where}: the links form a cycle through nodes {' -> '.join(cycle + [nxt])}")
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(_sources(graph, nxt))))
    return order


def _sources(graph: Graph, node_id: str) -> list[str]:
    return [v.node for v in graph.nodes[node_id].inputs.values() if isinstance(v, Link) and v.node in graph.nodes]


class Context:
    """What a rule may ask about the graph: the virtual value behind a link, the source of a value."""

    def __init__(self, graph: Graph, rewrites: dict[str, Rewrite]):
        self.graph, self.rewrites = graph, rewrites

    def source(self, value):
        """Follow pass-through nodes (Reroute) back to the real source of a link."""
        while isinstance(value, Link) and value.node in self.graph.nodes and self.graph.nodes[value.node].cls in PASS_THROUGH:
            value = self.graph.nodes[value.node].inputs.get("", next(iter(self.graph.nodes[value.node].inputs.values()), None))
        return value

    def virtual(self, value, kind: str):
        """The Virtual value of ADE type ``kind`` a link brings (None when not connected); Unsupported when it comes
        from a node that stays unconverted."""
        value = self.source(value)
        if value is None:
            return None
        if isinstance(value, Link):
            rewrite = self.rewrites.get(value.node)
            out = rewrite.outputs.get(value.slot) if rewrite else None
            if isinstance(out, Virtual) and out.kind == kind:
                return out.value
            node = self.graph.nodes.get(value.node)
            label = f"node {value.node} ({node.cls})" if node else f"node {value.node}"
            raise Unsupported(f"its {kind} input comes from {label}, which stays unconverted")
        raise Unsupported(f"its {kind} input holds a value instead of a link")

    def node(self, value) -> GNode | None:
        value = self.source(value)
        return self.graph.nodes.get(value.node) if isinstance(value, Link) else None


def plan(graph: Graph, report: Report) -> Plan:
    """Run every ADE node's rule; fill ``report``."""
    from .table import TABLE, ade_values

    rewrites: dict[str, Rewrite] = {}
    ctx = Context(graph, rewrites)
    converted = []
    for node_id in topological(graph):
        node = graph.nodes[node_id]
        if not is_ade(node.cls):
            continue
        entry = TABLE.get(node.cls)
        if entry is None:
            report.unsupported_node(node_id, node.cls, "not an AnimateDiff-Evolved node this converter knows "
                                    "(a newer ADE?): left as it is", graph.where)
            continue
        if entry.rule is None:
            report.unsupported_node(node_id, node.cls, entry.reason, graph.where)
            continue
        try:
            values, notes = ade_values(entry, node)
            rewrite = entry.rule(ctx, values)
        except Unsupported as err:
            report.unsupported_node(node_id, node.cls, str(err), graph.where)
            continue
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as err:  # values no ADE version writes
            report.unsupported_node(node_id, node.cls, f"its values could not be read ({type(err).__name__}: {err}): left as it is",
                                    graph.where)
            continue
        rewrite.differs = node.notes + notes + rewrite.differs
        rewrites[node_id] = rewrite
        converted.append(node_id)
    result = Plan(graph, rewrites, set())
    _keep_for_staying_consumers(result, report)
    for node_id in converted:
        if node_id not in result.kept:
            report.converted_node(node_id, graph.nodes[node_id].cls, rewrites[node_id], graph.where)
    return result


def _keep_for_staying_consumers(result: Plan, report: Report) -> None:
    """Converted nodes whose ADE-typed output a staying node reads stay too (beside their conversion)."""
    from .table import TABLE

    graph, rewrites = result.graph, result.rewrites
    changed = True
    while changed:
        changed = False
        for node in graph.nodes.values():
            if node.id in rewrites and node.id not in result.kept:
                continue
            if node.cls in PASS_THROUGH:
                continue
            for value in node.inputs.values():
                if not isinstance(value, Link):
                    continue
                src = Context(graph, rewrites).source(value)
                if not isinstance(src, Link) or src.node not in rewrites or src.node in result.kept:
                    continue
                entry = TABLE[graph.nodes[src.node].cls]
                ade_type = entry.outputs[src.slot] if src.slot < len(entry.outputs) else None
                if ade_type not in CORE_TYPES or rewrites[src.node].outputs.get(src.slot) is None:
                    result.kept.add(src.node)
                    changed = True
                    report.unsupported_node(src.node, graph.nodes[src.node].cls,
                                            f"kept as it is for node {node.id} ({node.cls}), which stays unconverted and "
                                            f"reads its {ade_type} output", graph.where)
