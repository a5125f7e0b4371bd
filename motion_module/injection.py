"""Put a motion network into a ComfyUI SD UNet for exactly one evaluation, and take it out again.

The original AnimateDiff runs each motion module after its block's resnet (+ attention) and
before the block's up/downsampler. In ComfyUI's ``UNetModel`` every block is a
``TimestepEmbedSequential`` whose plain layers ``forward_timestep_embed`` calls as
``layer(x)``; a parameterless :class:`TemporalModuleSlot` inserted there runs one motion module.

Slots (and, for v1/HotshotXL, the cross-frame GroupNorm hooks) are added by
:func:`motion_injected` around a single UNet call from a ComfyUI ``DIFFUSION_MODEL`` wrapper,
so the UNet module tree is untouched between calls: no stale injection survives an error,
a clone, or another patcher loading the same weights, and ComfyUI never sees the slots when
it loads or offloads weights. The motion weights themselves are a separate ModelPatcher.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from comfy.ldm.modules.attention import SpatialTransformer
from comfy.ldm.modules.diffusionmodules.openaimodel import ResBlock, Upsample
from torch import nn

from ..errors import BaseModelError
from .config import MotionModuleConfig
from .network import MotionNetwork
from .transformer import TemporalModule, frames_as_height, height_as_frames


class TemporalModuleSlot(nn.Module):
    """Stand-in layer for one motion module. Holds no parameters of its own."""

    def __init__(self, module: TemporalModule, frames: int, scale, views=None):
        super().__init__()
        self.__dict__["module"] = module  # not a child: its weights belong to the motion network's patcher
        self.frames = frames
        self.scale = scale  # a float, or a callable giving the per-frame/per-pixel scale at x's size
        self.views = views

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (b f) c h w
        return self.module(x, self.frames, self.scale(x) if callable(self.scale) else self.scale, self.views)


@dataclass(frozen=True)
class Placement:
    block: nn.Sequential  # a TimestepEmbedSequential of the UNet
    index: int  # where the slot goes
    key: str  # motion module key, e.g. "up_blocks.2.motion_modules.1"


def sd_unet(model) -> nn.Module | None:
    """The SD1.5/SDXL-style UNet (``input_blocks`` …) of a ComfyUI model, or None for other families."""
    unet = getattr(model.model, "diffusion_model", None)
    return unet if hasattr(unet, "input_blocks") else None


def placements(unet, config: MotionModuleConfig) -> list[Placement]:
    """Where each motion module of ``config`` goes in ``unet``; raises :class:`BaseModelError` if they do not fit."""
    channels = tuple(unet.model_channels * m for m in unet.channel_mult)
    if channels != config.channels:
        raise BaseModelError(f"the motion module is for {config.base} (channels {list(config.channels)}), "
                         f"but the model's UNet has channels {list(channels)}")
    result = []
    inputs = iter(range(1, len(unet.input_blocks)))
    for level, count in enumerate(unet.num_res_blocks):
        if count != config.down_modules:
            raise BaseModelError(f"UNet level {level} has {count} resnets, the motion module expects {config.down_modules}")
        for j in range(count):
            block = unet.input_blocks[next(inputs)]
            result.append(Placement(block, len(block), f"down_blocks.{level}.motion_modules.{j}"))
        if level != len(unet.num_res_blocks) - 1:
            next(inputs)  # the downsampler's block
    if config.has_mid_block:
        mid = unet.middle_block
        after = max(i for i, layer in enumerate(mid) if isinstance(layer, SpatialTransformer)) + 1
        result.append(Placement(mid, after, "mid_block.motion_modules.0"))
    outputs = iter(unet.output_blocks)
    for level, count in enumerate(reversed(unet.num_res_blocks)):
        if count + 1 != config.up_modules:
            raise BaseModelError(f"UNet up level {level} has {count + 1} resnets, the motion module expects {config.up_modules}")
        for j in range(count + 1):
            block = next(outputs)
            upsample = [i for i, layer in enumerate(block) if isinstance(layer, Upsample)]
            result.append(Placement(block, upsample[0] if upsample else len(block), f"up_blocks.{level}.motion_modules.{j}"))
    return result


def image_norms(unet) -> list[nn.Module]:
    """The GroupNorms v1 and HotshotXL compute over all frames: every ResBlock's two, and the output norm."""
    norms = [m.in_layers[0] for m in unet.modules() if isinstance(m, ResBlock)]
    norms += [m.out_layers[0] for m in unet.modules() if isinstance(m, ResBlock)]
    return norms + [unet.out[0]]


def cross_frame_norm_hooks(norm: nn.Module, frames: int) -> list:
    """Make ``norm`` see ``(b f) c h w`` as ``b c (f h) w``: one set of statistics per video."""
    before = lambda _module, args: (frames_as_height(args[0], frames),)  # noqa: E731
    after = lambda _module, _args, out: height_as_frames(out, frames)  # noqa: E731
    return [norm.register_forward_pre_hook(before), norm.register_forward_hook(after)]


@contextlib.contextmanager
def motion_injected(unet, network: MotionNetwork, frames: int, scale, views=None):
    """Within the block, ``unet`` runs ``motion``'s modules on videos of ``frames`` frames (in ``views``' windows if given)."""
    inserted, hooks = [], []
    try:
        for place in placements(unet, network.config):
            slot = TemporalModuleSlot(network.module_at(place.key), frames, scale, views)
            place.block.insert(place.index, slot)
            inserted.append((place.block, slot))
        if network.config.image_norm_across_frames:
            for norm in image_norms(unet):
                hooks += cross_frame_norm_hooks(norm, frames)
        yield
    finally:
        for handle in hooks:
            handle.remove()
        for block, slot in inserted:
            index = next(i for i, layer in enumerate(block) if layer is slot)
            del block[index]
