"""The ComfyUI contract (touchpoints.py) checked against the running ComfyUI, symbol by symbol.

Fast: reduced-width model, no server. A failure names the symbol that moved or changed.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
from pathlib import Path

import comfy.patcher_extension
import comfy.sample
import pytest
import torch
from animdiff.touchpoints import CONTROL_ATTRIBUTES, TORCH_ATTRIBUTES, TOUCHPOINTS, TRANSFORMER_OPTIONS, UNET_ATTRIBUTES
from pack_import import COMFYUI_DIR, PACK_DIR
from pack_source import attribute_names, defined_names, host_methods, host_roots, host_uses, pack_files, parsed
from training_models import CONTEXT, small_sd15


def comfyui_version() -> tuple[int, ...]:
    text = (COMFYUI_DIR / "comfyui_version.py").read_text()
    return tuple(int(x) for x in re.search(r"__version__\s*=\s*['\"]([\d.]+)", text)[1].split("."))


def resolve(symbol: str):
    """The object at a dotted path: the longest importable module prefix, then attributes."""
    parts = symbol.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for name in parts[split:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(symbol)


def accepts(signature: inspect.Signature, name: str) -> bool:
    """Whether a call can pass ``name`` (by keyword, or positionally in its place, or through **kwargs)."""
    kinds = {p.kind for p in signature.parameters.values()}
    return name in signature.parameters or inspect.Parameter.VAR_KEYWORD in kinds


def parameters_in_source(symbol: str) -> inspect.Signature:
    """The signature of ``module.Class.method`` read from ComfyUI's source, for modules that only import inside a
    running server (``server``)."""
    module, cls, method = symbol.split(".")
    tree = ast.parse((COMFYUI_DIR / f"{module}.py").read_text())
    (klass,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls]
    (function,) = [n for n in klass.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == method]
    args = function.args
    params = [inspect.Parameter(a.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD) for a in args.posonlyargs + args.args + args.kwonlyargs]
    if args.kwarg:
        params.append(inspect.Parameter(args.kwarg.arg, inspect.Parameter.VAR_KEYWORD))
    return inspect.Signature(params)


SERVER_ONLY = {"server"}  # ComfyUI's server module imports cleanly only as the server's main program


@pytest.mark.parametrize("point", TOUCHPOINTS, ids=lambda p: p.symbol)
def test_touchpoint_exists_with_the_parameters_the_pack_passes(point):
    if point.symbol.split(".")[0] in SERVER_ONLY and not point.parameters:  # a class, or an attribute its source sets
        module, cls, *attribute = point.symbol.split(".")
        source = (COMFYUI_DIR / f"{module}.py").read_text()
        assert re.search(rf"^class {cls}\b", source, re.M), point.symbol
        assert not attribute or re.search(rf"\b{cls}\.{attribute[0]}\s*=", source), point.symbol
        return
    if point.symbol.split(".")[0] in SERVER_ONLY:
        signature = parameters_in_source(point.symbol)
        assert [name for name in point.parameters if not accepts(signature, name)] == [], f"{point.symbol}{signature}"
        return
    try:
        obj = resolve(point.symbol)
    except (ModuleNotFoundError, AttributeError) as err:
        if point.since and comfyui_version() < tuple(int(x) for x in point.since.split(".")):
            pytest.skip(f"{point.symbol} arrives in ComfyUI {point.since}")
        pytest.fail(f"ComfyUI has no {point.symbol} (used by {point.used_by}): {err}")
    if point.parameters:
        signature = inspect.signature(obj)
        missing = [name for name in point.parameters if not accepts(signature, name)]
        assert not missing, f"{point.symbol}{signature} no longer takes {missing} (used by {point.used_by})"


def test_the_transformer_options_and_unet_attributes_the_pack_reads_are_set_in_a_real_sampling_run():
    model = small_sd15().clone()
    unet = model.model.diffusion_model
    assert [name for name in UNET_ATTRIBUTES if not hasattr(unet, name)] == []
    seen = {}

    def diffusion_model(executor, *args, **kwargs):
        seen["unet"] = set(kwargs.get("transformer_options", args[5] if len(args) > 5 else {}))
        return executor(*args, **kwargs)

    def calc_cond_batch(executor, model_, conds, x_in, timestep, model_options, **kwargs):
        seen["model_options"] = set(model_options.get("transformer_options", {}))
        return executor(model_, conds, x_in, timestep, model_options, **kwargs)

    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "contract", diffusion_model)
    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.CALC_COND_BATCH, "contract", calc_cond_batch)
    cond = [[torch.zeros(1, 77, CONTEXT), {}]]
    noise = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    comfy.sample.sample(model, noise, 1, 1.0, "euler", "normal", cond, cond, torch.zeros_like(noise), seed=0, disable_pbar=True)
    available = seen["unet"] | seen["model_options"]
    assert [key for key in TRANSFORMER_OPTIONS if key not in available] == []


def test_controlnet_objects_carry_the_attributes_window_slicing_reads():
    import comfy.controlnet

    control = comfy.controlnet.ControlBase()
    assert [name for name in CONTROL_ATTRIBUTES if not hasattr(control, name)] == []


def test_the_runtime_venv_holds_no_test_tool():
    """ComfyUI servers (the main job's, the tests') run in the runtime venv, which holds what a user's ComfyUI holds:
    a test tool there could hide a runtime package the pack or ComfyUI forgot to list (as `requests` once was)."""
    import subprocess
    from pathlib import Path

    from pack_import import PACK_DIR, RUNTIME_PYTHON

    if Path(RUNTIME_PYTHON).resolve() == Path(sys.executable).resolve():
        pytest.skip("run through scripts/test.sh: it names the runtime venv (ANIMDIFF_RUNTIME_PYTHON)")
    modules = {"pytest": "pytest", "diffusers": "diffusers", "selenium": "selenium", "websocket-client": "websocket", "ruff": "ruff"}
    listed = {line.split("=")[0].split(">")[0].strip() for line in (PACK_DIR / "requirements-dev.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    assert listed <= set(modules), f"name the import of each test requirement here: {listed - set(modules)}"
    probe = "import importlib.util, sys; print([m for m in sys.argv[1:] if importlib.util.find_spec(m)])"
    found = subprocess.run([RUNTIME_PYTHON, "-c", probe, *modules.values()], capture_output=True, text=True, check=True).stdout
    assert found.strip() == "[]"


# --- The list is complete: the pack's source (AST) uses no ComfyUI symbol and no private torch attribute it does not name.

SYMBOLS = [point.symbol for point in TOUCHPOINTS]
NAMED_ATTRIBUTES = {s.split(".")[-1] for s in SYMBOLS} | set(CONTROL_ATTRIBUTES) | set(UNET_ATTRIBUTES) | set(TORCH_ATTRIBUTES)


def named(use: str) -> bool:
    """Whether a used path is a touchpoint, a module or class holding one, or a member of one."""
    return any(use in (s, s.removesuffix(".__init__")) or s.startswith(use + ".") or use.startswith(s + ".") for s in SYMBOLS)


def common_attributes() -> set[str]:
    """Attributes of the Python, torch and stdlib objects the pack handles: a name among them says nothing about ComfyUI."""
    import logging
    import pathlib

    kinds = (object, dict, list, tuple, set, str, bytes, int, float, pathlib.Path, re.Match, re.Pattern, logging.Logger, torch.Tensor,
             torch.nn.Module, torch.nn.Sequential, torch.nn.ModuleList, torch.nn.Parameter, torch.nn.functional, torch.Generator,
             torch.dtype, torch.device, torch.optim.AdamW)
    return {name for kind in kinds for name in dir(kind)}


def host_attribute_uses() -> list[tuple[str, str, int]]:
    """``(name, file, line)`` of each ``x.name`` the pack uses whose name only ComfyUI defines (a method of one of its classes)
    or that is private (``_name``) and not the pack's own: method calls on ComfyUI objects the pack holds."""
    own = set().union(*(defined_names(parsed(path)) for path in pack_files()))
    host, common = host_methods(COMFYUI_DIR), common_attributes()
    uses = []
    for path in pack_files():
        for name, line in attribute_names(path):
            private = name.startswith("_") and not (name.startswith("__") and name.endswith("__"))
            if (private or (name in host and name not in common)) and name not in own:
                uses.append((name, str(path), line))
    return uses


def test_every_comfyui_symbol_the_pack_uses_is_a_touchpoint():
    roots = host_roots(COMFYUI_DIR)
    unnamed = [f"{path}:{line} {use}" for path in pack_files() for use, line in host_uses(path, roots) if not named(use)]
    assert unnamed == [], "add these to touchpoints.py"


def test_every_comfyui_method_and_private_attribute_the_pack_calls_is_a_touchpoint():
    unnamed = [f"{path}:{line} .{name}" for name, path, line in host_attribute_uses() if name not in NAMED_ATTRIBUTES]
    assert unnamed == [], "add these to touchpoints.py (a ComfyUI symbol) or TORCH_ATTRIBUTES"


def test_every_override_of_a_comfyui_method_is_a_touchpoint():
    """A pack class that subclasses a ComfyUI class and redefines one of its methods depends on how ComfyUI calls it."""
    roots = host_roots(COMFYUI_DIR)
    unnamed = []
    for path in pack_files():
        uses = host_uses(path, roots)
        for klass in (n for n in ast.walk(parsed(path)) if isinstance(n, ast.ClassDef)):
            for base in {use for use, line in uses if line == klass.lineno}:  # the class line's ComfyUI names: its bases
                host_mro = [c for c in resolve(base).__mro__ if c.__module__.split(".")[0] in roots]
                for method in (n.name for n in klass.body if isinstance(n, ast.FunctionDef)):
                    owners = [f"{c.__module__}.{c.__qualname__}.{method}" for c in host_mro if method in vars(c)]
                    if owners and (method == "__init__" or method not in dir(torch.nn.Module)) and not set(owners) & set(SYMBOLS):
                        unnamed.append(f"{path}:{klass.lineno} {owners[0]}")
    assert unnamed == [], "add these to touchpoints.py"


def test_torch_attributes_the_pack_relies_on_exist():
    module = torch.nn.Sequential(torch.nn.Identity())
    assert [name for name in TORCH_ATTRIBUTES if not hasattr(module, name)] == []


def test_used_by_names_the_modules_that_use_each_touchpoint():
    """``used_by`` names pack modules that exist (``sampling.windows.evaluation``, ``training``), and every module where the
    source walk finds the symbol used."""
    def module_exists(dotted: str) -> bool:
        path = PACK_DIR.joinpath(*dotted.split("."))
        return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()

    stale = []
    for point in TOUCHPOINTS:
        dotted = re.findall(r"\b[a-z_]+(?:\.[a-z_]+)+\b", point.used_by)
        stale += [f"{point.symbol}: used_by names {d}, no module of the pack" for d in dotted if not module_exists(d)]
    assert stale == []
    roots = host_roots(COMFYUI_DIR)
    where: dict[str, set[str]] = {}
    for path in pack_files():
        module = ".".join(path.with_suffix("").parts).removesuffix(".__init__")
        for use, _ in host_uses(path, roots):
            for s in SYMBOLS:  # (a bare class is no use of its __init__: it may be an annotation)
                if use == s or use.startswith(s + "."):
                    where.setdefault(s, set()).add(module)
    for name, path, _ in host_attribute_uses():
        module = ".".join(Path(path).with_suffix("").parts)
        for s in SYMBOLS:
            if s.endswith("." + name):
                where.setdefault(s, set()).add(module)
    missing = []
    for point in TOUCHPOINTS:
        mentioned = re.findall(r"\b[a-z_]+(?:\.[a-z_]+)*\b", point.used_by)
        for module in sorted(where.get(point.symbol, ())):
            if not any(module == m or module.startswith(m + ".") for m in mentioned):
                missing.append(f"{point.symbol} is used in {module}; used_by says {point.used_by!r}")
    assert missing == [], "\n".join(missing)
