"""The ComfyUI contract (touchpoints.py) checked against the running ComfyUI, symbol by symbol.

Fast: reduced-width model, no server. A failure names the symbol that moved or changed.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys

import comfy.patcher_extension
import comfy.sample
import pytest
import torch
from animdiff.touchpoints import CONTROL_ATTRIBUTES, TOUCHPOINTS, TRANSFORMER_OPTIONS, UNET_ATTRIBUTES
from pack_import import COMFYUI_DIR
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
