"""The layers point one way (docs/architecture.md): every pack-internal import goes to a lower layer or stays in its own
package. A model package never imports a sampling feature, and the reverse; the assembly of an animated model sits above both.

Fast: reads the source (AST), runs nothing.
"""

from __future__ import annotations

from pack_source import imported_units, pack_files, unit

# unit -> layer; a unit may import its own package and the units of lower layers only
LAYERS = {
    "__init__": 7,  # what ComfyUI imports: the node mappings
    "nodes": 6, "routes": 6,  # the graph nodes; the server routes (the frontend's ADE converter)
    "training": 5,
    "animate": 4,  # the assembly of an animated model
    "sparsectrl": 3, "image_model": 3,  # models built from motion-module pieces
    "motion_module": 2, "sampling": 2,  # the motion network and the sampling features: apart from each other
    "weight_files": 1,
    "errors": 0, "touchpoints": 0,
    "client": 0,  # the HTTP client of the batch tools: no pack import at all
    "ade_convert": 1,  # AnimateDiff-Evolved workflows converted (standard library and the error family)
}


def test_every_unit_of_the_pack_has_a_layer():
    assert sorted({unit(path) for path in pack_files()} - set(LAYERS)) == []


def test_imports_point_down_the_layers():
    against = [f"{path}:{line} imports {target} (layer {LAYERS[target]}) from layer {LAYERS[unit(path)]}"
               for path in pack_files() for target, line in imported_units(path)
               if target != unit(path) and LAYERS[target] >= LAYERS[unit(path)]]
    assert against == []


def test_the_check_sees_imports_inside_functions_and_every_form():
    """The walk finds the forms the pack uses (``from ..x import``, ``from .. import x``, inside a function), so a test
    that finds nothing is no blind one."""
    targets = {(str(path), target) for path in pack_files() for target, _ in imported_units(path)}
    assert ("nodes/train.py", "training") in targets  # from .. import training, inside a function
    assert ("animate/model.py", "motion_module") in targets and ("animate/model.py", "sampling") in targets
    assert ("sampling/windows/evaluation.py", "sampling") in targets  # from .plan import …


def test_libraries_never_print():
    """The pack and client/ return values, raise and tell progress through callbacks (logging for ComfyUI's console);
    only the command lines (scripts/, benchmarks/) print."""
    import ast

    from pack_source import parsed

    printing = [f"{path}:{node.lineno}" for path in pack_files() for node in ast.walk(parsed(path))
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"]
    assert printing == []
