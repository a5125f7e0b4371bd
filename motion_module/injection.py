"""Put a motion network into a ComfyUI SD UNet for exactly one evaluation, and take it out again.

The original AnimateDiff runs each motion module after its block's resnet (+ attention) and
before the block's up/downsampler. In ComfyUI's ``UNetModel`` every block is a
``TimestepEmbedSequential`` whose plain layers ``forward_timestep_embed`` calls as
``layer(x)``; a parameterless :class:`TemporalModuleSlot` placed there runs one motion module.

Slots (and, for v1/HotshotXL, the cross-frame GroupNorm hooks) are put in by
:func:`motion_injected` around a single UNet call from a ComfyUI ``DIFFUSION_MODEL`` wrapper,
so the UNet module tree is untouched between calls: no stale injection survives an error,
a clone, or another patcher loading the same weights, and ComfyUI never sees the slots when
it loads or offloads weights. The motion weights themselves are a separate ModelPatcher.

The per-call work is small: an :class:`Injection` (placements, slots, each block's layer list
with its slot in) is built once per (UNet, motion network) and kept while both live; each call
checks that the UNet's blocks are still the ones it was built for (else it is rebuilt), then
swaps each block's layer list for its list with the slot, and back. The slots are the same
objects in every call, so ``torch.compile`` sees the same module tree every call.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass

import torch
from comfy.ldm.modules.attention import SpatialTransformer
from comfy.ldm.modules.diffusionmodules.openaimodel import ResBlock, Upsample
from torch import nn

from ..errors import BaseModelError
from .config import MotionModuleConfig
from .network import MotionNetwork
from .transformer import TemporalModule, frames_as_height, height_as_frames

SLOT_KEY = "motion_module"  # the slot's name in its block, next to the block's own layers "0", "1", …


class UNetCall:
    """What the slots and norm hooks of one :class:`Injection` need to know about the UNet call running now."""

    def __init__(self):
        self.frames = 0
        self.scale = 1.0  # a float, or a callable giving the per-frame/per-pixel scale at x's size
        self.views = None  # (frame index, fuse weight) windows the motion modules run in, or None
        self.features = None  # AnimateLCM-I2V: motion-module key -> the image feature added before it, (b f) c h w, or None


class TemporalModuleSlot(nn.Module):
    """Stand-in layer for one motion module. Holds no parameters of its own."""

    def __init__(self, module: TemporalModule, call: UNetCall, key: str = ""):
        super().__init__()
        self.__dict__["module"] = module  # not a child: its weights belong to the motion network's patcher
        self.__dict__["call"] = call
        self.key = key  # the motion module's key, e.g. "down_blocks.1.motion_modules.1"

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (b f) c h w
        call = self.call
        if call.features is not None and self.key in call.features:  # AnimateLCM-I2V: after the resnet (+ attention), before the module
            x = x + call.features[self.key].to(x.dtype)
        return self.module(x, call.frames, call.scale(x) if callable(call.scale) else call.scale, call.views)


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


def unet_blocks(unet) -> list[nn.Sequential]:
    """Every ``TimestepEmbedSequential`` of ``unet``, in order."""
    return [*unet.input_blocks, unet.middle_block, *unet.output_blocks]


def res_blocks(unet) -> list[ResBlock]:
    """Every ``ResBlock`` of ``unet``, in order (they sit directly in its blocks)."""
    return [layer for block in unet_blocks(unet) for layer in block if isinstance(layer, ResBlock)]


def image_norms(unet) -> list[nn.Module]:
    """The GroupNorms v1 and HotshotXL compute over all frames: every ResBlock's two, and the output norm."""
    resblocks = res_blocks(unet)
    return [m.in_layers[0] for m in resblocks] + [m.out_layers[0] for m in resblocks] + [unet.out[0]]


def layer_lists(unet, norms: bool) -> list[nn.Module]:
    """The modules below ``unet`` whose children an :class:`Injection` relies on, each a child of ``unet`` or of one before it."""
    result = [unet.input_blocks, unet.output_blocks, *unet_blocks(unet)]
    if norms:
        resblocks = res_blocks(unet)
        result += [*resblocks, *(m.in_layers for m in resblocks), *(m.out_layers for m in resblocks), unet.out]
    return result


def fingerprint(unet, modules: list[nn.Module]) -> tuple:
    """The UNet's sizes and the children of ``unet`` and of each of ``modules`` (identities): equal only for the same
    layers in the same places."""
    return (unet.model_channels, tuple(unet.channel_mult), tuple(unet.num_res_blocks), tuple(unet._modules.values()),
            *(tuple(m._modules.values()) for m in modules))


class Injection:
    """``network``'s modules placed into ``unet``: built once, swapped in for each UNet call, swapped out after it."""

    def __init__(self, unet, network: MotionNetwork):
        # holds neither ``unet`` nor ``network`` themselves: it is cached in dictionaries weakly keyed by them
        self.call = UNetCall()
        self.modules = layer_lists(unet, network.config.image_norm_across_frames)
        self.fingerprint = fingerprint(unet, self.modules)
        self.blocks: list[tuple[nn.Sequential, dict]] = []  # (block, its layers with the slot in)
        for place in placements(unet, network.config):
            layers = list(place.block._modules.items())
            layers.insert(place.index, (SLOT_KEY, TemporalModuleSlot(network.module_at(place.key), self.call, place.key)))
            self.blocks.append((place.block, dict(layers)))
        self.norms = image_norms(unet) if network.config.image_norm_across_frames else []
        self.norm_hooks = (self.before_norm, self.after_norm)  # the same hook objects every call

    def fits(self, unet) -> bool:
        """Whether ``unet``'s blocks are still those this injection was built for."""
        return fingerprint(unet, self.modules) == self.fingerprint

    def before_norm(self, _module, args):
        return (frames_as_height(args[0], self.call.frames),)

    def after_norm(self, _module, _args, out):
        return height_as_frames(out, self.call.frames)

    @contextlib.contextmanager
    def applied(self, frames: int, scale, views, features=None):
        """Within the block the UNet runs with the slots (and the norms span all frames): one call's worth."""
        self.call.frames, self.call.scale, self.call.views, self.call.features = frames, scale, views, features
        own, hooks = [], []
        try:
            for block, with_slot in self.blocks:
                own.append((block, block._modules))
                block.__dict__["_modules"] = with_slot
            for norm in self.norms:  # each GroupNorm sees (b f) c h w as b c (f h) w: one set of statistics per video
                hooks += [norm.register_forward_pre_hook(self.norm_hooks[0]), norm.register_forward_hook(self.norm_hooks[1])]
            yield
        finally:
            for handle in hooks:
                handle.remove()
            for block, layers in own:
                block.__dict__["_modules"] = layers
            self.call.scale = self.call.views = self.call.features = None  # let go of the call's tensors


INJECTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # UNet -> {motion network -> Injection}, both weak


def injection(unet, network: MotionNetwork) -> Injection:
    """The :class:`Injection` of ``network`` into ``unet``, reused while ``unet``'s blocks stay the same."""
    per_unet = INJECTIONS.get(unet)
    if per_unet is None:
        per_unet = INJECTIONS[unet] = weakref.WeakKeyDictionary()
    found = per_unet.get(network)
    if found is None or not found.fits(unet):
        found = per_unet[network] = Injection(unet, network)
    return found


@contextlib.contextmanager
def motion_injected(unet, network: MotionNetwork, frames: int, scale, views=None, features=None):
    """Within the block, ``unet`` runs ``network``'s modules on videos of ``frames`` frames (in ``views``' windows if given;
    ``features``: motion-module key -> a tensor added to that module's input, AnimateLCM-I2V's image features)."""
    with injection(unet, network).applied(frames, scale, views, features):
        yield
