"""Build a :class:`MotionNetwork` from any supported motion-module file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import comfy.model_management
import comfy.model_patcher
import torch

from ..errors import FileError
from .checkpoint import content_hash, read_state_dict
from .config import MotionModuleConfig
from .layout import recognise
from .network import MotionNetwork


def build_motion_network(state_dict: dict[str, torch.Tensor], source: str, version: str = "auto",
                         dtype: torch.dtype | None = None) -> MotionNetwork:
    """Detect the layout of ``state_dict`` (any supported key scheme) and load it.

    Positional encodings missing from the file are computed; any other missing or extra
    tensor is an error naming ``source``.
    """
    state_dict, config = recognise(state_dict, source, version)
    dtype = dtype or next((v.dtype for v in state_dict.values() if v.is_floating_point()), torch.float32)
    network = MotionNetwork(config, dtype=dtype)
    check_layout(state_dict, network.state_dict(), source, f"{config.version} motion-module")
    network.load_state_dict(state_dict, strict=False)
    network.content_hash = content_hash(state_dict)  # the weights as read, before any patching: a training state's identity
    return network.eval().requires_grad_(False)


def dtype_kind(dtype: torch.dtype) -> str:
    """What a tensor's values are: ``floating point`` (fp32, fp16, bf16, fp8, …), ``complex``, ``boolean`` or ``integer``.
    Loading casts within a kind exactly enough; across kinds (an integer tensor where a weight belongs) it makes
    the values whatever the cast makes of them."""
    if dtype.is_floating_point:
        return "floating point"
    if dtype.is_complex:
        return "complex"
    return "boolean" if dtype == torch.bool else "integer"


def check_floating(tensors: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights that are not floating point (half and bfloat16 are), naming ``source`` and the first such tensor;
    for files without a fixed layout (LoRAs, training states)."""
    for key, value in tensors.items():
        if not (isinstance(value, torch.Tensor) and value.is_floating_point()):
            what = f"{str(value.dtype).removeprefix('torch.')} ({dtype_kind(value.dtype)})" if isinstance(value, torch.Tensor) \
                else f"a {type(value).__name__}, not a tensor"
            raise FileError(source, f"tensor {key} is {what}, but weights must be floating point (fp32, fp16 or bf16): "
                                    "the file is damaged or not weights")


def check_layout(state_dict: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], source: str, layout: str) -> None:
    """Refuse ``state_dict`` unless it has exactly ``expected``'s tensors, shapes and dtype kinds (:func:`dtype_kind`:
    floating point for weights and positional encodings, whatever precision; buffers of other kinds their own kind);
    positional encodings may be missing: they are computed. The error names ``source`` and the first problems."""
    problems = []
    for key, value in state_dict.items():
        if key not in expected:
            problems.append(f"unexpected tensor {key}")
        elif value.shape != expected[key].shape:
            problems.append(f"{key} has shape {list(value.shape)}, the {layout} layout needs {list(expected[key].shape)}")
        elif (kind := dtype_kind(value.dtype)) != (needed := dtype_kind(expected[key].dtype)):
            problems.append(f"{key} is {str(value.dtype).removeprefix('torch.')} ({kind}), the {layout} layout needs {needed} values")
    missing = [k for k in expected if k not in state_dict and not k.endswith(".pos_encoder.pe")]
    problems += [f"missing tensor {k}" for k in missing]
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise FileError(source, f"does not match the {layout} layout: " + "; ".join(problems[:5]) + more)


@dataclass(frozen=True)
class LoadedMotionModule:
    """The ``MOTION_MODULE`` graph value: weights held by their own ComfyUI ModelPatcher.

    ComfyUI's model management loads, casts and offloads the patcher with the UNet it is
    attached to; weight patches (MotionLoRA) live on clones of the patcher, never in the weights.
    """

    name: str
    patcher: comfy.model_patcher.ModelPatcher
    loras: tuple = ()  # (file, strength) of each MotionLoRA applied, for messages

    @property
    def network(self) -> MotionNetwork:
        return self.patcher.model

    @property
    def config(self) -> MotionModuleConfig:
        return self.network.config

    def describe(self) -> str:
        c = self.config
        loras = "".join(f" + {name} x{strength:g}" for name, strength in self.loras)
        return f"{self.name}{loras} ({c.version}, {c.base}, up to {c.max_frames} frames per window)"


def motion_patcher(network: MotionNetwork, reload: tuple | None = None,
                   disable_dynamic: bool = False) -> comfy.model_patcher.ModelPatcher:
    """A patcher for ``network`` made the way ComfyUI makes its core patchers.

    ``CoreModelPatcher`` (newer ComfyUI; looked up at call time, as ``main.py`` may switch it to
    dynamic VRAM) lets the motion weights load, offload and stream with the UNet they are attached
    to; older ComfyUI has only ``ModelPatcher``. ``cached_patcher_init`` is the factory ComfyUI calls
    for a fresh, unpatched copy of the weights (multi-GPU deep clones, non-dynamic delegates):
    ``reload`` = ``(function, args)`` called as ``function(*args, disable_dynamic=...)``; without it,
    a deep copy of ``network``.
    """
    core = comfy.model_patcher.ModelPatcher if disable_dynamic else \
        getattr(comfy.model_patcher, "CoreModelPatcher", comfy.model_patcher.ModelPatcher)
    patcher = core(network, load_device=comfy.model_management.get_torch_device(),
                   offload_device=comfy.model_management.unet_offload_device())
    patcher.cached_patcher_init = reload or (copied_motion_patcher, (network,))
    return patcher


def copied_motion_patcher(network: MotionNetwork, disable_dynamic: bool = False) -> comfy.model_patcher.ModelPatcher:
    """``cached_patcher_init`` of a motion network that has no file (a training result): a patcher of a
    fresh network holding a copy of ``network``'s weights (never the loaded network's own tensors)."""
    fresh = MotionNetwork(network.config, dtype=next(network.parameters()).dtype)
    fresh.load_state_dict(network.state_dict())
    return motion_patcher(fresh.eval().requires_grad_(False), disable_dynamic=disable_dynamic)


def load_motion_patcher(path: str, version: str = "auto", disable_dynamic: bool = False) -> comfy.model_patcher.ModelPatcher:
    """The patcher of a motion-module file; also its own ``cached_patcher_init`` (reads the file again).

    The weights are stored in ComfyUI's UNet dtype (``unet_dtype()``: the dtype it gives SD UNets, following
    ``--fp16-unet`` / ``--bf16-unet`` / ``--fp8_e4m3fn-unet``); they compute in the dtype of the UNet they run
    in, whatever that is (:class:`MotionNetwork`), so one loaded module serves models of any precision."""
    network = build_motion_network(read_state_dict(Path(path)), Path(path).name, version, dtype=comfy.model_management.unet_dtype())
    return motion_patcher(network, (load_motion_patcher, (str(path), version)), disable_dynamic)


def load_motion_module(path: str | Path, version: str = "auto") -> LoadedMotionModule:
    """Read, detect and wrap a motion-module file for ComfyUI."""
    return LoadedMotionModule(Path(path).name, load_motion_patcher(str(path), version))
