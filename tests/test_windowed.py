"""Context-windowed sampling in-process through ComfyUI's own sampling code."""

from __future__ import annotations

import comfy.model_patcher
import comfy.patcher_extension
import comfy.sampler_helpers
import node_helpers
import pytest
import torch
from animdiff.animate.model import apply_motion_module
from animdiff.sampling.windows.evaluation import use_context_windows
from animdiff.sampling.windows.plan import ContextOptions, context_windows
from comfy_sampling import OWN, noise, sample

import nodes

STATIC = ContextOptions(16, 4, 1, False, "static", "pyramid")


def test_up_to_context_length_is_bit_identical(sd15, conds, v3):
    x = noise(16, 10)
    model = sd15[0]
    plain = sample(apply_motion_module(model, v3, OWN), conds, x, steps=1)
    windowed = sample(apply_motion_module(model, v3, OWN, context_options=ContextOptions()), conds, x, steps=1)
    assert torch.equal(plain, windowed)


def test_windows_couple_frames_only_inside_a_window(sd15, conds, v3):
    frames = 40
    windows = context_windows(frames, STATIC)
    far = next(i for i in range(frames) if not any(0 in w and i in w for w in windows))
    assert far >= 16
    model = apply_motion_module(sd15[0], v3, OWN, context_options=STATIC)
    x = noise(frames, 11)
    changed = x.clone()
    changed[0] = torch.randn(4, 4, 4, generator=torch.Generator().manual_seed(5))
    a, b = sample(model, conds, x, steps=1, cfg=1.0), sample(model, conds, changed, steps=1, cfg=1.0)
    assert not torch.equal(a[5], b[5])
    assert torch.equal(a[far:], b[far:])


def test_per_frame_conds_and_masks_are_sliced_to_each_window(sd15, conds):
    """A plain model's frames are independent, so windows must reproduce the whole-batch result.
    Here every frame has its own text embedding, and frames 20-39 have a second cond masked out.
    Unsliced, ComfyUI would give the last window the embeddings and masks of frames 0-15."""
    model, clip, _ = sd15
    positive, negative = conds
    gen = torch.Generator().manual_seed(15)
    per_frame = [[positive[0][0] + 0.5 * torch.randn(40, *positive[0][0].shape[1:], generator=gen), dict(positive[0][1])]]
    other = nodes.CLIPTextEncode().encode(clip, "a red car at night")[0]
    mask = torch.zeros(40, 4, 4)
    mask[:20] = 1.0
    masked = node_helpers.conditioning_set_values(other, {"mask": mask, "set_area_to_bounds": False, "mask_strength": 1.0})
    prompt = (per_frame + masked, negative)
    x = noise(40, 12)
    windowed = model.clone()
    use_context_windows(windowed, STATIC)
    whole = sample(model, prompt, x, steps=1, cfg=1.0)
    # windows batched in one call: other GEMM shapes than the whole batch's, so float rounding differs a little
    torch.testing.assert_close(sample(windowed, prompt, x, steps=1, cfg=1.0), whole, rtol=1e-4, atol=5e-4)
    first_frames = [[per_frame[0][0][:16].repeat(3, 1, 1)[:40], per_frame[0][1]]]
    wrong = sample(model, (first_frames + masked, negative), x, steps=1, cfg=1.0)
    assert not torch.allclose(whole[30], wrong[30], atol=1e-3)  # frame 30's own embedding matters


def test_memory_plan_is_for_one_window(sd15):
    model = sd15[0].clone()
    use_context_windows(model, STATIC)
    seen = []

    def record(executor, model, noise_shape, conds, *args, **kwargs):
        seen.append(list(noise_shape))
        return executor(model, noise_shape, conds, *args, **kwargs)

    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.PREPARE_SAMPLING, "test", record)
    options = comfy.model_patcher.create_model_options_clone(model.model_options)
    comfy.sampler_helpers.prepare_model_patcher(model, {}, options)  # as CFGGuider does before sampling
    comfy.sampler_helpers.prepare_sampling(model, [100, 4, 8, 8], {}, options)
    assert seen == [[16, 4, 8, 8]]


def test_context_longer_than_encoding_is_refused(sd15, v3):
    with pytest.raises(ValueError, match="context_length 40 is longer than mm_v3_random.safetensors .* use at most 32"):
        apply_motion_module(sd15[0], v3, OWN, context_options=ContextOptions(40, 4))


def test_controlnet_hints_are_sliced_to_each_window(sd15, conds):
    """Per-frame hint images: a windowed plain model must reproduce the whole-batch result; with
    ComfyUI's own behaviour (first frames of the hint batch) the later windows would differ."""
    import comfy.controlnet
    from weights import controlnet_path

    model = sd15[0]
    control = comfy.controlnet.load_controlnet(str(controlnet_path()))
    hints = torch.rand(40, 32, 32, 3, generator=torch.Generator().manual_seed(13))
    positive, negative = nodes.ControlNetApplyAdvanced().apply_controlnet(*conds, control, hints, 1.0, 0.0, 1.0)
    x = noise(40, 14)
    windowed = model.clone()
    use_context_windows(windowed, STATIC)
    whole = sample(model, (positive, negative), x, steps=1, cfg=1.0)
    torch.testing.assert_close(sample(windowed, (positive, negative), x, steps=1, cfg=1.0), whole, rtol=1e-4, atol=5e-4)
    first_frames = torch.cat([hints[:16]] * 3)[:40]
    positive_wrong, negative_wrong = nodes.ControlNetApplyAdvanced().apply_controlnet(*conds, control, first_frames, 1.0, 0.0, 1.0)
    wrong = sample(model, (positive_wrong, negative_wrong), x, steps=1, cfg=1.0)
    assert not torch.allclose(wrong[30], whole[30], atol=1e-3)  # the hints matter for frame 30
