"""The animated model sampled in-process by ComfyUI's own sampling code (real SD1.5 UNet size)."""

from __future__ import annotations

import comfy.model_patcher
import comfy.sample
import pytest
import torch
from animdiff.animate.model import apply_motion_module
from animdiff.errors import BaseModelError, FramesError
from animdiff.motion_module import LoadedMotionModule, build_motion_network, load_motion_module
from animdiff.weight_files import read_state_dict
from comfy_sampling import OWN, noise, sample
from weights import motion_module_path


@pytest.fixture(scope="module")
def zero_v3():
    state = read_state_dict(motion_module_path("mm_v3_random.safetensors"))
    state = {k: torch.zeros_like(v) if ".proj_out." in k else v for k, v in state.items()}
    model = build_motion_network(state, "zero.safetensors")
    return LoadedMotionModule("zero.safetensors", comfy.model_patcher.ModelPatcher(model, torch.device("cpu"), torch.device("cpu")))


def test_zero_module_gives_exactly_the_plain_model(sd15, conds, zero_v3):
    model = sd15[0]
    x = noise(8)
    assert torch.equal(sample(apply_motion_module(model, zero_v3, OWN), conds, x, cfg=1.0), sample(model, conds, x, cfg=1.0))


def test_motion_scale_zero_is_the_plain_model(sd15, conds, v3):
    model = sd15[0]
    x = noise(8, 1)
    assert torch.equal(sample(apply_motion_module(model, v3, OWN, motion_scale=0.0), conds, x, cfg=1.0), sample(model, conds, x, cfg=1.0))


def test_frames_are_coupled_only_with_the_module(sd15, conds, v3):
    model = sd15[0]
    x = noise(8, 2)
    x_changed = x.clone()
    x_changed[0] = torch.randn(4, 4, 4, generator=torch.Generator().manual_seed(99))
    animated = apply_motion_module(model, v3, OWN)
    a, b = sample(animated, conds, x, cfg=1.0), sample(animated, conds, x_changed, cfg=1.0)
    assert not torch.equal(a[5], b[5])
    p, q = sample(model, conds, x, cfg=1.0), sample(model, conds, x_changed, cfg=1.0)
    assert torch.equal(p[5], q[5])
    assert not torch.equal(p[0], q[0])


def test_cond_and_uncond_videos_are_not_mixed(sd15, conds, v3):
    """cfg > 1 runs cond and uncond as one batch of 2 x 8 latents. With identical prompts the two
    videos are identical only if each attends within itself (frames 0-7 with positions 0-7);
    read as one 16-frame video, the uncond half would get positions 8-15 and differ, and
    cfg 7.5 would then no longer reproduce the cfg 1 (cond-only) result."""
    model = sd15[0]
    positive, _ = conds
    animated = apply_motion_module(model, v3, OWN)
    x = noise(8, 3)
    same = sample(animated, (positive, positive), x, cfg=7.5)
    alone = sample(animated, (positive, positive), x, cfg=1.0)
    torch.testing.assert_close(same, alone, rtol=1e-4, atol=1e-3)


def test_start_percent_leaves_early_steps_plain(sd15, conds, v3):
    model = sd15[0]
    x = noise(8, 4)
    plain, late = [], []
    sample(model, conds, x, steps=4, cfg=1.0, capture=plain)
    sample(apply_motion_module(model, v3, OWN, start_percent=0.4, end_percent=1.0), conds, x, steps=4, cfg=1.0, capture=late)
    assert torch.equal(plain[0], late[0]) and torch.equal(plain[1], late[1])
    assert not torch.equal(plain[2], late[2])


def test_input_model_is_left_untouched(sd15, conds, v3):
    model = sd15[0]
    x = noise(8, 5)
    before = sample(model, conds, x, cfg=1.0)
    sample(apply_motion_module(model, v3, "autoselect"), conds, x, cfg=1.0)
    assert torch.equal(sample(model, conds, x, cfg=1.0), before)
    assert not model.get_additional_models()


def test_too_many_frames_point_to_context_options(sd15, conds, v3):
    expected = r"40 frames in one pass, but mm_v3_random.safetensors \(v3, SD1.5, up to 32 frames per window\).*AnimDiffContextOptions"
    with pytest.raises(FramesError, match=expected):
        sample(apply_motion_module(sd15[0], v3, OWN), conds, noise(40), steps=1, cfg=1.0)


def test_sdxl_module_on_sd15_names_both(sd15):
    sdxl = load_motion_module(motion_module_path("mm_sdxl_random.safetensors"))
    model = sd15[0]
    with pytest.raises(BaseModelError, match=r"mm_sdxl_random.safetensors: wrong base model: SDXL motion module \(sdxl\) on a SD15 model"):
        apply_motion_module(model, sdxl, "autoselect")
    assert not model.get_additional_models()
