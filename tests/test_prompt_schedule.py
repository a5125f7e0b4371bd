"""Prompt travel: the schedule syntax, and per-frame conditioning from ComfyUI's own CLIP encode.

The CLIP tests use ComfyUI's real SDXL text encoder (both encoders, real tokenizers) at reduced
width and depth, built in-process with random weights; the sampling test uses the full-size SD1.5.
"""

from __future__ import annotations

import types

import comfy.sd
import comfy.sdxl_clip
import pytest
import torch
from animdiff.errors import FramesError, OptionsError
from animdiff.nodes.prompt import AnimDiffPromptSchedule
from animdiff.sampling.prompts.frames import blend, frame_values, parse_keyframes, parse_numbers, place
from animdiff.sampling.prompts.schedule import full_prompt, prompt_schedule
from comfy_sampling import noise, sample

import nodes

RED, BLUE, GREEN = "a red ball on grass", "a blue cube in snow", "a green tree at night"


def entries(text, frames=16):
    return [(frame, k.value) for frame, k in place(parse_keyframes(text), frames)]


def test_plain_quoted_and_equals_forms():
    text = '{\n"0": "a cat, on a sofa",\n  8 = "a dog"\n16: a bird, flying,\n"-1" :"the end"\n}'
    assert entries(text, 20) == [(0, "a cat, on a sofa"), (8, "a dog"), (16, "a bird, flying"), (19, "the end")]


def test_quoted_entries_may_share_a_line():
    assert entries('"0": "a, b", "4": "c \\"quoted\\""') == [(0, "a, b"), (4, 'c "quoted"')]


def test_negative_frames_count_from_the_end():
    assert entries("-4: late\n0: early", 10) == [(0, "early"), (6, "late")]


@pytest.mark.parametrize("text,problem", [
    ("0: a cat\nthis line has no frame", "'this line has no frame'"),
    ('0: "an open quote', "'0: \"an open quote'"),
    ('0: "a" "b"', "'0: \"a\" \"b\"'"),
    ("0: a\n4:", "'4:'"),
    ("0: a\n4: b\n4: c", "'4: c'"),
])
def test_malformed_lines_are_quoted_in_the_error(text, problem):
    with pytest.raises(OptionsError, match=problem.replace('"', '.').replace("(", ".")):
        place(parse_keyframes(text), 16)


def test_frame_past_the_video_names_its_line():
    with pytest.raises(FramesError, match="'16: too late'.*16 frames"):
        entries("0: a\n16: too late", 16)
    with pytest.raises(FramesError, match="'-17: too early'"):
        entries("0: a\n-17: too early", 16)


def test_empty_schedule_is_an_error():
    for text in ["", "  \n\n", "{\n}"]:
        with pytest.raises(OptionsError, match="schedule is empty"):
            parse_keyframes(text)


def test_blend_positions():
    linear, hold = blend([2, 6], 9, "linear"), blend([2, 6], 9, "hold")
    assert linear.lower.tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1]
    assert linear.t.tolist() == [0, 0, 0, 0.25, 0.5, 0.75, 0, 0, 0]
    assert hold.lower.tolist() == linear.lower.tolist() and not hold.t.any()


def test_number_schedule_is_linear_between_keys():
    values = frame_values(parse_numbers("0:1.0, 4:0.0,\n-1: 0.5"), 9)
    torch.testing.assert_close(values, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0, 0.125, 0.25, 0.375, 0.5]))
    assert torch.equal(frame_values(parse_numbers("0:1, 3:1, 7:1"), 8), torch.ones(8))
    with pytest.raises(OptionsError, match="'0:1.0, 4:fast'.*'fast' is not a number"):
        parse_numbers("0:1.0, 4:fast")


def fill_random(module: torch.nn.Module, seed: int) -> None:
    """ComfyUI's layers skip weight initialisation; give every parameter reproducible random values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


@pytest.fixture(scope="module")
def sdxl_clip():
    """ComfyUI's SDXL CLIP (clip_l + clip_g, real tokenizers) at 64/96 channels and 3 layers."""
    small = {"num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 128}
    options = {"clip_l_model_config": {**small, "hidden_size": 64, "projection_dim": 64},
               "clip_g_model_config": {**small, "hidden_size": 96, "projection_dim": 96},
               "load_device": torch.device("cpu"), "offload_device": torch.device("cpu"),
               "initial_device": torch.device("cpu"), "dtype": torch.float32}
    target = types.SimpleNamespace(params={}, clip=comfy.sdxl_clip.SDXLClipModel, tokenizer=comfy.sdxl_clip.SDXLTokenizer)
    clip = comfy.sd.CLIP(target, model_options=options)
    fill_random(clip.cond_stage_model, 0)
    return clip


def encode(clip, text):
    return nodes.CLIPTextEncode().encode(clip, text)[0][0]


def test_keyframes_are_clip_text_encode_and_linear_blends_between(sdxl_clip):
    (cond, extras), = AnimDiffPromptSchedule().encode(sdxl_clip, f"0: {RED}\n4: {BLUE}\n-1: {GREEN}", 9)[0]
    (red, red_x), (blue, blue_x), (green, green_x) = (encode(sdxl_clip, t) for t in (RED, BLUE, GREEN))
    assert cond.shape == (9, 77, 64 + 96) and extras["pooled_output"].shape == (9, 96)
    pooled = extras["pooled_output"]
    for frame, (c, x) in {0: (red, red_x), 4: (blue, blue_x), 8: (green, green_x)}.items():
        assert torch.equal(cond[frame], c[0]) and torch.equal(pooled[frame], x["pooled_output"][0])
    torch.testing.assert_close(cond[2], (red[0] + blue[0]) / 2)  # the midpoint is the mean of its two keys
    torch.testing.assert_close(pooled[2], (red_x["pooled_output"][0] + blue_x["pooled_output"][0]) / 2)
    torch.testing.assert_close(cond[5], 0.75 * blue[0] + 0.25 * green[0])
    assert not torch.allclose(cond[1], cond[2])


def test_hold_keeps_each_keyframe_until_the_next(sdxl_clip):
    (cond, extras), = prompt_schedule(sdxl_clip, f"2: {RED}\n5: {BLUE}", 8, interpolation="hold")
    red, blue = encode(sdxl_clip, RED), encode(sdxl_clip, BLUE)
    for frame in range(8):
        expected = red if frame < 5 else blue
        assert torch.equal(cond[frame], expected[0][0]) and torch.equal(extras["pooled_output"][frame], expected[1]["pooled_output"][0])


def test_each_distinct_prompt_is_encoded_once_with_pre_and_app_text(sdxl_clip):
    seen = []
    clip = sdxl_clip.clone()
    clip.tokenize = lambda text, **kw: seen.append(text) or sdxl_clip.tokenize(text, **kw)
    (cond, _), = prompt_schedule(clip, f"0: {RED}\n3: {BLUE}\n6: {RED}", 8, pre_text="masterpiece", app_text=" 4k ")
    assert sorted(seen) == sorted(f"masterpiece, {t}, 4k" for t in (RED, BLUE))
    assert torch.equal(cond[6], encode(sdxl_clip, full_prompt(RED, "masterpiece", "4k"))[0][0])


def test_prompts_of_different_token_lengths_are_padded_as_comfyui_batches_them(sdxl_clip):
    long = ", ".join(["a very long and detailed prompt about a castle"] * 12)  # more than 75 tokens: 154
    (cond, _), = prompt_schedule(sdxl_clip, f"0: {RED}\n4: {long}", 5)
    red, castle = encode(sdxl_clip, RED), encode(sdxl_clip, long)
    assert castle[0].shape[1] == 154 and cond.shape[1] == 154
    assert torch.equal(cond[0], red[0][0].repeat(2, 1))  # CONDCrossAttn.concat's lcm repetition
    assert torch.equal(cond[4], castle[0][0])
    torch.testing.assert_close(cond[2], (red[0][0].repeat(2, 1) + castle[0][0]) / 2)


def test_per_frame_prompts_sample_as_single_prompt_runs(sd15, conds):
    """Plain SD1.5, hold: frames 0-3 are the all-red run's frames 0-3, frames 4-7 the all-blue run's
    (same seed, same batch size): one CONDITIONING with a per-frame batch works with a plain sampler."""
    model, clip, _ = sd15
    negative = conds[1]
    schedule = prompt_schedule(clip, f"0: {RED}\n4: {BLUE}", 8, interpolation="hold")
    x = noise(8, 21)
    travelled = sample(model, (schedule, negative), x)
    red = sample(model, (nodes.CLIPTextEncode().encode(clip, RED)[0], negative), x)
    blue = sample(model, (nodes.CLIPTextEncode().encode(clip, BLUE)[0], negative), x)
    assert torch.equal(travelled[:4], red[:4]) and torch.equal(travelled[4:], blue[4:])
    assert not torch.allclose(red[4:], blue[4:], atol=1e-3)
