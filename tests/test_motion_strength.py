"""Motion strength per frame, per region and over sampling progress; window information for other
packs' patches. In-process, through ComfyUI's own sampling on the full-size random SD1.5 and v3."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
import torch
from animdiff.animate.model import apply_motion_module
from animdiff.animate.strength import MotionKeyframe, add_keyframe
from animdiff.errors import FramesError, OptionsError
from animdiff.motion_module import TemporalModule
from animdiff.nodes.keyframe import AnimDiffMotionKeyframe
from animdiff.sampling.windows.evaluation import use_context_windows
from animdiff.sampling.windows.plan import ContextOptions, context_windows
from comfy_sampling import OWN, noise, sample
from einops import rearrange

STATIC = ContextOptions(16, 4, 1, False, "static", "pyramid")
ONE_BY_ONE = ContextOptions(16, 4, 1, False, "static", "pyramid", windows_per_call=1)


@contextlib.contextmanager
def recorded_residuals(motion_module, only_first=False):
    """``(x, out)`` of every motion module call (or of the first module only: one per UNet call)."""
    seen, handles = [], []
    modules = [m for m in motion_module.network.modules() if isinstance(m, TemporalModule)]
    for module in modules[:1] if only_first else modules:
        handles.append(module.register_forward_hook(lambda _m, args, out: seen.append((args[0].detach(), out.detach()))))
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def with_recording_attn1_patch(model):
    """A clone whose attn1 patch (ComfyUI's public set_model_attn1_patch) records, once per UNet call,
    what a patch from another pack sees: ``ad_params`` and core's ``context_window``."""
    seen = []

    def patch(q, k, v, extra_options):
        if extra_options.get("block") == ("input", 1):  # the first transformer: once per UNet call
            window = extra_options.get("context_window")
            seen.append({**extra_options.get("ad_params", {}), "window": window.index_list if window else None,
                         "videos": len(extra_options["cond_or_uncond"])})
        return q, k, v

    patched = model.clone()
    patched.set_model_attn1_patch(patch)
    return patched, seen


def by_frame(t: torch.Tensor, frames: int) -> torch.Tensor:
    return rearrange(t, "(b f) c h w -> f b c h w", f=frames)  # (b f) c h w -> frame-major


def test_all_ones_schedule_and_mask_are_bit_exact(sd15, conds, v3):
    x = noise(8, 30)
    today = sample(apply_motion_module(sd15[0], v3, OWN), conds, x)
    for mask in (torch.ones(1, 32, 32), torch.ones(8, 32, 32)):
        ones = apply_motion_module(sd15[0], v3, OWN, motion_scale_schedule="0:1.0, 3:1, -1:1.0", motion_scale_mask=mask)
        assert torch.equal(sample(ones, conds, x), today)


def test_a_zero_frame_has_no_temporal_residual(sd15, conds, v3):
    model = apply_motion_module(sd15[0], v3, OWN, motion_scale_schedule="0:1, 2:1, 3:0, 4:1")
    with recorded_residuals(v3) as seen:
        sample(model, conds, noise(8, 31), steps=1, cfg=1.0)
    assert len(seen) == len([m for m in v3.network.modules() if isinstance(m, TemporalModule)])  # one call, 21 modules
    for x, out in seen:
        x, out = by_frame(x, 8), by_frame(out, 8)
        assert torch.equal(out[3], x[3])  # as motion_scale 0 for frame 3
        assert not torch.equal(out[0], x[0]) and not torch.equal(out[4], x[4])


def test_a_masked_out_region_has_no_temporal_residual(sd15, conds, v3):
    mask = torch.ones(1, 32, 32)
    mask[:, :, :16] = 0.0  # left half of the picture still
    model = apply_motion_module(sd15[0], v3, OWN, motion_scale_mask=mask)
    with recorded_residuals(v3) as seen:
        sample(model, conds, noise(8, 32), steps=1, cfg=1.0)
    full_size = [(x, out) for x, out in seen if x.shape[-1] == 4]  # the 4x4 latent's level
    assert full_size
    for x, out in full_size:
        assert torch.equal(out[..., :2], x[..., :2])
        assert not torch.equal(out[..., 2:], x[..., 2:])


def test_each_window_uses_its_own_frames_values(sd15, conds, v3):
    frames, still = 24, 20
    model = apply_motion_module(sd15[0], v3, OWN, context_options=ONE_BY_ONE, motion_scale_schedule=f"0:1, {still - 1}:1, {still}:0, {still + 1}:1")
    windows = context_windows(frames, STATIC)
    with recorded_residuals(v3, only_first=True) as seen:
        sample(model, conds, noise(frames, 33), steps=1, cfg=1.0)
    assert len(seen) == len(windows)  # cfg 1: the cond only, one call per window
    for window, (x, out) in zip(windows, seen, strict=True):
        x, out = by_frame(x, len(window)), by_frame(out, len(window))
        for position, frame in enumerate(window):
            assert torch.equal(out[position], x[position]) == (frame == still), (window, frame)


def test_window_mask_per_frame_is_sliced():
    from animdiff.animate.strength import MotionStrength

    mask = torch.arange(24.0).view(24, 1, 1).expand(24, 4, 4)
    strength = MotionStrength(2.0, "0:1, -1:0.5", mask)
    scale = strength.at(None, list(range(8, 24)), 24, videos=2)(torch.zeros(32, 320, 4, 4))
    expected = 2.0 * torch.linspace(1, 0.5, 24)[8:] * torch.arange(8.0, 24.0)
    assert scale.shape == (32, 1, 4, 4)
    torch.testing.assert_close(scale[:16, 0, 0, 0], expected)
    torch.testing.assert_close(scale[16:, 0, 0, 0], expected)  # the second video (uncond)
    with pytest.raises(FramesError, match="24 masks for a 30-frame video"):
        strength.at(None, list(range(16)), 30, videos=1)


def test_one_keyframe_at_zero_is_no_keyframe(sd15, conds, v3):
    x = noise(8, 34)
    (keyframes,) = AnimDiffMotionKeyframe().keyframe(0.0, 1.0)
    assert torch.equal(sample(apply_motion_module(sd15[0], v3, OWN, keyframes=keyframes), conds, x, steps=3),
                       sample(apply_motion_module(sd15[0], v3, OWN), conds, x, steps=3))
    (half,) = AnimDiffMotionKeyframe().keyframe(0.0, 0.5)
    assert torch.equal(sample(apply_motion_module(sd15[0], v3, OWN, keyframes=half), conds, x, steps=1),
                       sample(apply_motion_module(sd15[0], v3, OWN, motion_scale=0.5), conds, x, steps=1))


def test_keyframes_switch_the_motion_strength_during_sampling(sd15, conds, v3):
    x = noise(8, 35)
    (off,) = AnimDiffMotionKeyframe().keyframe(0.0, 0.0)
    (chain,) = AnimDiffMotionKeyframe().keyframe(0.4, 1.0, off)
    assert [k.start_percent for k in chain] == [0.0, 0.4]
    plain, keyed, animated = [], [], []
    sample(sd15[0], conds, x, steps=4, cfg=1.0, capture=plain)
    sample(apply_motion_module(sd15[0], v3, OWN, keyframes=chain), conds, x, steps=4, cfg=1.0, capture=keyed)
    sample(apply_motion_module(sd15[0], v3, OWN, start_percent=0.4), conds, x, steps=4, cfg=1.0, capture=animated)
    assert torch.equal(plain[0], keyed[0]) and torch.equal(plain[1], keyed[1])  # multiplier 0: the plain model
    assert not torch.equal(plain[2], keyed[2])
    assert all(torch.equal(a, b) for a, b in zip(animated, keyed, strict=True))  # the same as starting at 0.4


def test_keyframe_chain_order_and_replacement():
    chain = add_keyframe(add_keyframe(add_keyframe(None, MotionKeyframe(0.5, 2.0)), MotionKeyframe(0.1, 0.0)), MotionKeyframe(0.5, 3.0))
    assert chain == (MotionKeyframe(0.1, 0.0), MotionKeyframe(0.5, 3.0))


def test_bad_schedule_is_refused_before_patching(sd15, v3):
    with pytest.raises(OptionsError, match="'0:1.0, 8 0.3'"):
        apply_motion_module(sd15[0], v3, OWN, motion_scale_schedule="0:1.0, 8 0.3")
    with pytest.raises(OptionsError, match="MASK"):
        apply_motion_module(sd15[0], v3, OWN, motion_scale_mask=torch.ones(1, 1, 8, 8))


def test_patches_see_all_frames_without_windows(sd15, conds, v3):
    model, seen = with_recording_attn1_patch(apply_motion_module(sd15[0], v3, OWN))
    sample(model, conds, noise(8, 36), steps=2, cfg=1.0)
    assert seen == [{"full_length": 8, "context_length": 8, "sub_idxs": list(range(8)), "windows": 1, "window": None,
                     "videos": 1}] * 2


@pytest.mark.parametrize("with_motion,per_call", [(True, 1), (False, 1), (True, 0)])
def test_patches_see_each_windows_frames(sd15, conds, v3, with_motion, per_call):
    """One window per call: its frames; windows batched in one call: their frames one window after the other."""
    frames, options = 24, dataclasses.replace(STATIC, windows_per_call=per_call)
    if with_motion:
        windowed = apply_motion_module(sd15[0], v3, OWN, context_options=options)
    else:
        windowed = sd15[0].clone()
        use_context_windows(windowed, options)
    model, seen = with_recording_attn1_patch(windowed)
    sample(model, conds, noise(frames, 37), steps=1, cfg=1.0)
    windows = context_windows(frames, STATIC)
    calls = [windows] if per_call == 0 else [[w] for w in windows]
    expected = [[f for w in call for f in w] for call in calls]
    assert seen == [{"full_length": frames, "context_length": 16, "sub_idxs": f, "windows": len(call), "window": f, "videos": 1}
                    for f, call in zip(expected, calls, strict=True)]
