"""Build a :class:`MotionNetwork` from any supported motion-module file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import comfy.model_management
import comfy.model_patcher
import torch

from ..weight_files import FileHash, check_layout, read_state_dict
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
    return network.eval().requires_grad_(False)


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
    source = Path(path).name
    network = build_motion_network(read_state_dict(Path(path)), source, version, dtype=comfy.model_management.unet_dtype())
    # the weights as read, before any patching (a training state's identity): hashed only when training asks
    network.content_hash = FileHash(path, lambda: recognise(read_state_dict(Path(path)), source, version)[0])
    return motion_patcher(network, (load_motion_patcher, (str(path), version)), disable_dynamic)


def load_motion_module(path: str | Path, version: str = "auto") -> LoadedMotionModule:
    """Read, detect and wrap a motion-module file for ComfyUI."""
    return LoadedMotionModule(Path(path).name, load_motion_patcher(str(path), version))
