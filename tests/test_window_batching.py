"""Several context windows in one model call (sampling/windows/evaluation.py): the same result as one window per call,
fewer UNet calls, and ComfyUI's own memory rule for how many windows share a call. Small real models in-process."""

from __future__ import annotations

import dataclasses
import math

import comfy.cldm.cldm
import comfy.controlnet
import comfy.model_management
import comfy.ops
import comfy.patcher_extension
import comfy.sample
import node_helpers
import pytest
import torch
from animdiff.animate.model import apply_motion_module
from animdiff.sampling.noise import betas
from animdiff.sampling.windows.evaluation import WindowedEvaluation, windows_that_fit
from animdiff.sampling.windows.plan import ContextOptions, context_windows
from animdiff.sparsectrl import SparseCtrl, build_sparse_controlnet
from random_weights import random_tensors
from test_sparsectrl import diffusers_sparsectrl
from training_models import conditioning, small_motion, small_sd15, unet_config

import nodes

MULT, CONTEXT, FRAMES = (1, 2, 4, 4), 48, 40  # the reduced widths test_sparsectrl's SparseCtrl fits
CONDS = (conditioning(1, context=CONTEXT), conditioning(2, context=CONTEXT))
UNIFORM = ContextOptions(16, 4)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def models():
    return small_sd15(mult=MULT, context=CONTEXT), small_motion(mult=MULT)


def noise(frames: int = FRAMES, seed: int = 0) -> torch.Tensor:
    return torch.randn(frames, 4, 8, 8, generator=torch.Generator().manual_seed(seed))


def unet_calls(model) -> tuple:
    """A clone whose UNet calls are counted (ComfyUI's ``DIFFUSION_MODEL`` wrapper), and the count."""
    model, count = model.clone(), []

    def record(executor, *args, **kwargs):
        count.append(1)
        return executor(*args, **kwargs)

    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "count", record)
    return model, count


def batched_and_one_by_one(models, options: ContextOptions, conds=CONDS, x=None, steps=2, per_calls=(0, 1), **motion) -> None:
    """Sample with every window fitting one call (and ``per_calls``' other counts) and with one window per call:
    results equal, calls fewer."""
    x = noise() if x is None else x
    results, calls = {}, {}
    for per_call in per_calls:
        animated = apply_motion_module(*models, betas.SQRT_LINEAR,
                                       context_options=dataclasses.replace(options, windows_per_call=per_call), **motion)
        model, count = unet_calls(animated)
        results[per_call] = comfy.sample.sample(model, x, steps, 5.0, "euler", "normal", *conds, torch.zeros_like(x), seed=7,
                                                disable_pbar=True)
        calls[per_call] = len(count)
    windows = [len(context_windows(x.shape[0], options, step)) for step in range(steps)]  # all of one length here
    assert calls[1] == sum(windows)  # one call per window, its conds batched by ComfyUI
    assert calls[0] == steps  # small latents: every window of a step fits one call
    for per_call in per_calls[1:-1]:  # windows_per_call caps the windows a call takes
        assert calls[per_call] == sum(math.ceil(n / per_call) for n in windows)
    for per_call in per_calls[:-1]:
        assert calls[per_call] < calls[1]
        torch.testing.assert_close(results[per_call], results[1], rtol=1e-4, atol=1e-4)
    return results[1]


@pytest.mark.parametrize("options", [UNIFORM, ContextOptions(16, 4, schedule="static", fuse_method="flat"),
                                     ContextOptions(16, 4, closed_loop=True), ContextOptions(8, 2, context_stride=2)],
                         ids=["uniform", "static-flat", "closed-loop", "stride-2"])
def test_batched_windows_equal_one_by_one(models, options):
    batched_and_one_by_one(models, options, x=noise(FRAMES if options.context_length == 16 else 24))


def test_windows_per_call_can_be_set(models):
    batched_and_one_by_one(models, UNIFORM, steps=1, per_calls=(0, 2, 1))


def test_per_frame_conds_and_masks(models):
    """Per-frame text embeddings (a prompt schedule's form) and a second cond masked to frames 20-39."""
    gen = torch.Generator().manual_seed(3)
    positive = [[torch.randn(FRAMES, 5, CONTEXT, generator=gen), {}]]
    mask = torch.zeros(FRAMES, 8, 8)
    mask[20:] = 1.0
    masked = node_helpers.conditioning_set_values(conditioning(4, context=CONTEXT), {"mask": mask, "set_area_to_bounds": False,
                                                                                        "mask_strength": 1.0})
    batched_and_one_by_one(models, UNIFORM, conds=(positive + masked, CONDS[1]))


def test_motion_scale_schedule_and_mask(models):
    mask = torch.rand(FRAMES, 8, 8, generator=torch.Generator().manual_seed(5))
    batched_and_one_by_one(models, UNIFORM, motion_scale_schedule="0:1.0, 20:0.2, 39:1.5", motion_scale_mask=mask)


def small_controlnet(seed: int = 11) -> comfy.controlnet.ControlNet:
    """ComfyUI's ControlNet class around a reduced-width control model with random weights."""
    config = {**unet_config(32, MULT, CONTEXT), "hint_channels": 3, "num_heads": 8, "operations": comfy.ops.disable_weight_init,
              "dtype": torch.float32, "device": torch.device("cpu")}
    config.pop("out_channels")
    model = comfy.cldm.cldm.ControlNet(**config)
    model.load_state_dict(random_tensors({k: v.shape for k, v in model.state_dict().items()}, seed, dtype=torch.float32))
    return comfy.controlnet.ControlNet(model, load_device=torch.device("cpu"))


def test_controlnet_hints_per_frame(models):
    hints = torch.rand(FRAMES, 64, 64, 3, generator=torch.Generator().manual_seed(6))
    conds = nodes.ControlNetApplyAdvanced().apply_controlnet(*CONDS, small_controlnet(), hints, 1.0, 0.0, 1.0)
    with_hints = batched_and_one_by_one(models, UNIFORM, conds=conds, steps=2)
    assert not torch.allclose(with_hints, batched_and_one_by_one(models, UNIFORM, steps=2), atol=1e-3)  # the hints matter


def test_sparsectrl_keyframes_run_one_window_per_call(models):
    """SparseCtrl places its keyframes by video frame (``for_window``): such a chain runs one window per call."""
    control = SparseCtrl(build_sparse_controlnet(diffusers_sparsectrl("scribble")[1], "scribble.safetensors", torch.float32),
                         (0, 20, 39), "scribble.safetensors")
    images = torch.rand(3, 64, 64, 3, generator=torch.Generator().manual_seed(8))
    conds = nodes.ControlNetApplyAdvanced().apply_controlnet(*CONDS, control, images, 0.8, 0.0, 1.0)
    x, results = noise(), []
    for per_call in (0, 1):
        animated = apply_motion_module(*models, betas.SQRT_LINEAR, context_options=dataclasses.replace(UNIFORM, windows_per_call=per_call))
        model, count = unet_calls(animated)
        results.append(comfy.sample.sample(model, x, 2, 5.0, "euler", "normal", *conds, torch.zeros_like(x), seed=7, disable_pbar=True))
        assert len(count) == sum(len(context_windows(FRAMES, UNIFORM, step)) for step in range(2))
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=0)


def test_windows_per_call_follow_comfyuis_memory_rule(models):
    """As many windows as ComfyUI's ``memory_required * 1.5 < free memory`` allows: all of them for small latents,
    one for latents too large to batch, and in between the largest count that passes."""
    base = models[0].model
    free = comfy.model_management.get_free_memory(torch.device("cpu"))
    room_for_all = base.memory_required([11 * 32, 4, 8, 8]) * 2  # not the machine's free memory: that varies with the suite
    assert windows_that_fit(base, [16, 4, 8, 8], 2, 11, room_for_all) == 11
    assert windows_that_fit(base, [16, 4, 4096, 4096], 2, 11, free) == 1
    one_window = base.memory_required([32, 4, 64, 64]) * 1.5
    budget = 3.5 * one_window  # room for three windows (two conds each) of 64x64 latents
    k = windows_that_fit(base, [16, 4, 64, 64], 2, 11, budget)
    assert k == 3
    assert base.memory_required([k * 32, 4, 64, 64]) * 1.5 < budget <= base.memory_required([(k + 1) * 32, 4, 64, 64]) * 1.5
    with pytest.raises(ValueError, match="windows_per_call must be at least 0"):
        ContextOptions(windows_per_call=-1)


def test_windows_per_call_is_a_cap_under_the_memory_rule(models):
    """``windows_per_call`` N: at most N windows a call, and never more than ComfyUI's memory rule allows."""
    base, conds = models[0].model, [[{}], [{}]]
    small, huge = torch.zeros(1).expand(40, 4, 1, 1), torch.zeros(1).expand(40, 4, 4096, 4096)  # shapes only
    assert WindowedEvaluation(ContextOptions(windows_per_call=4)).per_call(base, conds, small, 11) == 4
    assert WindowedEvaluation(ContextOptions(windows_per_call=4)).per_call(base, conds, small, 3) == 3
    assert WindowedEvaluation(ContextOptions(windows_per_call=4)).per_call(base, conds, huge, 11) == 1
    assert WindowedEvaluation(ContextOptions(windows_per_call=0)).per_call(base, conds, huge, 11) == 1
