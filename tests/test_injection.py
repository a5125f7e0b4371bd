"""The per-call injection (motion_module/injection.py): built once per (UNet, motion network), swapped in and out of
the UNet around each call, rebuilt when the UNet's blocks change; the wrapper's batch check; TorchCompileModel.

Small real models (reduced-width SD1.5 UNet and motion module) in-process; the torch.compile test is in the full tier.
"""

from __future__ import annotations

import copy
import gc
import weakref

import comfy.sample
import pytest
import torch
from animdiff.errors import FramesError
from animdiff.motion_module.injection import INJECTIONS, TemporalModuleSlot, motion_injected
from animdiff.motion_module.patcher import apply_motion_module
from comfy_sampling import OWN
from training_models import conditioning, small_motion, small_sd15

MULT = (1, 2, 2)  # the smallest SD1.5-shaped UNet a motion module fits
CONDS = (conditioning(1), conditioning(2))


def sample(model, frames: int = 8, steps: int = 2, callback=None) -> torch.Tensor:
    x = torch.randn(frames, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    return comfy.sample.sample(model, x, steps, 7.5, "euler", "normal", *CONDS, torch.zeros_like(x), seed=0,
                               disable_pbar=True, callback=callback)


def unet_call(unet, network, frames: int = 4) -> torch.Tensor:
    """One animated UNet call on two videos of ``frames`` latents."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2 * frames, 4, 4, 4, generator=gen)
    context = torch.randn(2 * frames, 5, 32, generator=gen)
    with torch.no_grad(), motion_injected(unet, network, frames, 1.0):
        return unet(x, torch.full((2 * frames,), 500.0), context)


class Twice(torch.nn.Module):
    """A parameterless layer another pack might add to a UNet block."""

    def forward(self, x):
        return 2 * x


def test_injection_is_built_once_and_the_unet_is_untouched_between_calls():
    model, motion_module = small_sd15(mult=MULT), small_motion(mult=MULT)
    unet = model.model.diffusion_model
    layers = {name: module._modules for name, module in unet.named_modules()}
    keys = list(unet.state_dict())
    animated = apply_motion_module(model, motion_module, OWN)
    sample(animated)
    (built,) = INJECTIONS[unet].values()
    sample(animated)
    assert list(INJECTIONS[unet].values()) == [built]  # reused, not rebuilt
    assert {name: module._modules for name, module in unet.named_modules()} == layers
    assert all(module._modules is layers[name] for name, module in unet.named_modules())  # the same dicts, not copies
    assert list(unet.state_dict()) == keys
    assert not any(isinstance(m, TemporalModuleSlot) for m in unet.modules())


def test_a_changed_unet_block_rebuilds_the_injection():
    """A layer added to a block after the first call runs in later calls, exactly as in a UNet injected afresh."""
    unet, network = small_sd15(mult=MULT).model.diffusion_model, small_motion(mult=MULT).network
    before = unet_call(unet, network)
    unet.output_blocks[0].append(Twice())
    after = unet_call(unet, network)
    assert torch.equal(after, unet_call(copy.deepcopy(unet), network))
    assert not torch.equal(after, before)
    assert isinstance(unet.output_blocks[0][-1], Twice)
    assert not any(isinstance(m, TemporalModuleSlot) for m in unet.modules())


def test_the_cache_keeps_neither_unet_nor_network_alive():
    unet, network = small_sd15(mult=MULT).model.diffusion_model, small_motion(mult=MULT).network
    with motion_injected(unet, network, 4, 1.0):
        pass
    assert network in INJECTIONS[unet]
    refs = weakref.ref(unet), weakref.ref(network)
    del unet, network
    gc.collect()
    assert [ref() for ref in refs] == [None, None]


def test_a_batch_that_does_not_split_into_the_conds_is_refused_before_anything_else():
    """Checked before the frame count is derived from it: a per-frame mask of 5 frames on 5 latents must not be
    judged against 5 // 2 frames."""
    model = small_sd15(mult=MULT)
    animated = apply_motion_module(model, small_motion(mult=MULT), OWN, motion_scale_mask=torch.ones(5, 32, 32))
    x = torch.randn(5, 4, 4, 4)
    options = {"wrappers": animated.wrappers, "cond_or_uncond": [0, 1], "sigmas": torch.tensor([1.0])}
    with pytest.raises(FramesError, match="a batch of 5 latents does not split into 2 videos"):
        animated.model.apply_model(x, torch.tensor([1.0] * 5), c_crossattn=torch.randn(5, 5, 32), transformer_options=options)
