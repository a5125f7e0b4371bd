"""The pack's own source, parsed: the files ComfyUI loads (and client/), without tests, scripts or benchmarks."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from pack_import import PACK_DIR

NOT_PACK = {"tests", "scripts", "benchmarks", "workflows", "docs", ".cache", ".ci", ".git", "models", "motion_lora"}


def pack_files() -> list[Path]:
    """Every ``.py`` of the pack, relative to its root."""
    return sorted(p.relative_to(PACK_DIR) for p in PACK_DIR.rglob("*.py") if not NOT_PACK & set(p.relative_to(PACK_DIR).parts))


@cache
def parsed(path: Path) -> ast.Module:
    return ast.parse((PACK_DIR / path).read_text(), filename=str(path))


def unit(path: Path) -> str:
    """The top-level package or module a file belongs to (``sampling``, ``errors``, ``__init__``)."""
    return path.parts[0] if len(path.parts) > 1 else path.stem


def imported_units(path: Path) -> list[tuple[str, int]]:
    """``(unit, line)`` of every pack-internal (relative) import in ``path``, at any depth of the file."""
    package = list(path.parts[:-1])
    found = []
    for node in ast.walk(parsed(path)):
        if not isinstance(node, ast.ImportFrom) or not node.level:
            continue
        base = package[: len(package) - (node.level - 1)]
        if base:
            found.append((base[0], node.lineno))
        elif node.module:
            found.append((node.module.split(".")[0], node.lineno))
        else:
            found += [(alias.name.split(".")[0], node.lineno) for alias in node.names]
    return found


def host_roots(comfyui_dir: Path) -> set[str]:
    """The top-level modules and packages of a ComfyUI checkout (``comfy``, ``comfy_extras``, ``folder_paths``, ``server``, …)."""
    folders = {p.name for p in comfyui_dir.iterdir() if p.is_dir() and p.name != "tests" and any(p.glob("*.py"))}
    return {p.stem for p in comfyui_dir.glob("*.py")} | folders


def dotted(node: ast.AST) -> list[str] | None:
    """``a.b.c`` of an attribute chain on a name, as ``["a", "b", "c"]``; None for anything else (a call, a subscript)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else None


class HostUses(ast.NodeVisitor):
    """The ComfyUI symbols one file uses, as dotted paths from the module (``comfy.model_patcher.ModelPatcher.clone``):
    every import from ComfyUI, every attribute chain on a name bound to one, and ``getattr(<such a chain>, "name")``."""

    def __init__(self, roots: set[str]):
        self.roots = roots
        self.bound: dict[str, str] = {}  # local name -> the ComfyUI path it stands for
        self.uses: list[tuple[str, int]] = []

    def visit_Import(self, node: ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] in self.roots:
                self.uses.append((alias.name, node.lineno))
                local = alias.asname or alias.name.split(".")[0]
                self.bound[local] = alias.name if alias.asname else local

    def visit_ImportFrom(self, node: ast.ImportFrom):
        if not node.level and node.module and node.module.split(".")[0] in self.roots:
            for alias in node.names:
                self.bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                self.uses.append((f"{node.module}.{alias.name}", node.lineno))

    def chain(self, node: ast.AST) -> str | None:
        parts = dotted(node)
        if parts and parts[0] in self.bound:
            return ".".join([self.bound[parts[0]], *parts[1:]])
        return None

    def visit_Attribute(self, node: ast.Attribute):
        if (path := self.chain(node)) is not None:
            self.uses.append((path, node.lineno))
        else:
            self.generic_visit(node)

    def visit_Name(self, node: ast.Name):
        if node.id in self.bound:
            self.uses.append((self.bound[node.id], node.lineno))

    def visit_Call(self, node: ast.Call):
        if (isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr") and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant) and (path := self.chain(node.args[0])) is not None):
            self.uses.append((f"{path}.{node.args[1].value}", node.lineno))
        self.generic_visit(node)


def host_uses(path: Path, roots: set[str]) -> list[tuple[str, int]]:
    """``(ComfyUI symbol, line)`` of every use in ``path``; imports anywhere in the file bind for the whole file."""
    visitor = HostUses(roots)
    tree = parsed(path)
    for node in ast.walk(tree):  # bind first: a function's own import binds names used above it in the file too
        if isinstance(node, ast.Import | ast.ImportFrom):
            (visitor.visit_Import if isinstance(node, ast.Import) else visitor.visit_ImportFrom)(node)
    visitor.uses = []
    visitor.visit(tree)
    return visitor.uses


def attribute_names(path: Path) -> list[tuple[str, int]]:
    """``(name, line)`` of every ``x.name`` in ``path``, and of every string key of ``x.__dict__[...]``."""
    found = []
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.Attribute):
            found.append((node.attr, node.lineno))
        elif (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "__dict__"
              and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
            found.append((node.slice.value, node.lineno))
    return found


def defined_names(tree: ast.Module) -> set[str]:
    """Names a source defines as something an attribute can reach: functions, classes and their methods, names assigned
    at module or class level, and attributes it assigns (``x.name = …``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    for body in [tree.body, *(n.body for n in ast.walk(tree) if isinstance(n, ast.ClassDef))]:
        for statement in body:
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target] \
                if isinstance(statement, ast.AnnAssign) else []
            names |= {n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def host_methods(comfyui_dir: Path) -> set[str]:
    """Every method name a class of ComfyUI's ``comfy/`` and ``comfy_extras/`` defines."""
    names = set()
    for path in [*(comfyui_dir / "comfy").rglob("*.py"), *(comfyui_dir / "comfy_extras").rglob("*.py")]:
        try:
            tree = ast.parse(path.read_text(errors="replace"))
        except SyntaxError:
            continue
        for klass in ast.walk(tree):
            if isinstance(klass, ast.ClassDef):
                names |= {n.name for n in klass.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    return names
