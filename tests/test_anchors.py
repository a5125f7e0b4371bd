"""Anchored windows, NaiveReuse and the one-window draft (sampling/windows/anchors.py, draft.py), in-process through
ComfyUI's own sampling code."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import pytest
import torch
from animdiff.animate.model import apply_motion_module
from animdiff.animate.views import apply_context_options
from animdiff.errors import FramesError, OptionsError
from animdiff.sampling.windows.anchors import Anchors, AnchorStep, NaiveReuse, ReferenceAttention, parse_indexes
from animdiff.sampling.windows.plan import ContextOptions, context_windows
from comfy_sampling import OWN, noise, sample
from training_models import conditioning, small_motion, small_sd15

STATIC = ContextOptions(16, 4, 1, False, "static", "pyramid")
FIRST = Anchors("first", 1)
FIRST_LATENTS = Anchors("first", 1, share="latents")


# --- the plan of an anchored step (no model) ---------------------------------------------------------------------

def test_reference_frames_per_mode():
    windows = context_windows(40, STATIC)  # 0-15, 12-27, 24-39
    assert [FIRST.reference(w, 40) for w in windows] == [[], [0], [0]]
    sliding = Anchors("sliding", 2)
    assert [sliding.reference(w, 40) for w in windows] == [[], [10, 11], [22, 23]]
    chosen = Anchors("indexes", indexes=(5, 30))
    assert [chosen.reference(w, 40) for w in windows] == [[30], [5, 30], [5]]


def test_windows_holding_references_run_first():
    windows = context_windows(64, STATIC)
    step = AnchorStep(Anchors("indexes", indexes=(38,)), windows, 64)
    order = step.order(windows)
    assert all(38 in windows[n] for n in order[:2]) and sorted(order) == list(range(len(windows)))
    sliding = AnchorStep(Anchors("sliding", 2), windows, 64)
    assert sliding.order(windows) == list(range(len(windows)))
    sliding.store = {10: {}, 11: {}, 22: {}}
    sliding.done(1)  # window 1 (12-27) read 10 and 11, which no later window reads
    assert list(sliding.store) == [22]


def test_reference_attention_against_a_written_out_softmax():
    """Frame 1 of a two-frame window attends to frame 0's stored keys too; frame 0 reading its own copy is unchanged
    (each key twice: the same softmax average)."""
    gen = torch.Generator().manual_seed(3)
    heads, tokens, dim = 2, 5, 8
    q, k, v = (torch.randn(2, tokens, heads * dim, generator=gen) for _ in range(3))
    windows = [[0, 1]]
    step = AnchorStep(Anchors("indexes", indexes=(0,)), windows, 2)
    step.store[0] = {(None, "input", 1, 0): (k[0], v[0])}  # frame -> (uuid, block, block_index) -> (k, v)
    patch = ReferenceAttention(step, [0, 1], {}, [0], 1.0)
    out = patch(q, k, v, {"n_heads": heads, "block": ("input", 1), "block_index": 0})

    def attend(q1, k1, v1):  # (tokens, heads dim) per frame, heads split by hand
        split = lambda t: t.reshape(t.shape[0], heads, dim).transpose(0, 1)  # noqa: E731 - (heads, tokens, dim)
        w = torch.softmax(split(q1) @ split(k1).transpose(1, 2) / math.sqrt(dim), -1)
        return (w @ split(v1)).transpose(0, 1).reshape(q1.shape[0], heads * dim)

    torch.testing.assert_close(out[0], attend(q[0], k[0], v[0]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[1], attend(q[1], torch.cat([k[1], k[0]]), torch.cat([v[1], v[0]])), rtol=1e-5, atol=1e-5)
    half = ReferenceAttention(step, [0, 1], {}, [0], 0.25)(q, k, v, {"n_heads": heads, "block": ("input", 1), "block_index": 0})
    torch.testing.assert_close(half[1], torch.lerp(attend(q[1], k[1], v[1]), out[1], 0.25), rtol=1e-5, atol=1e-5)


def test_naive_reuse_repeats_the_first_window():
    fused, first = torch.zeros(40, 1), torch.arange(16.0)[:, None]
    out = NaiveReuse(0.75).apply(fused, first, list(range(16)))
    assert torch.equal(out[:, 0], 0.75 * (torch.arange(40) % 16).float())


def test_bad_input_names_the_input():
    with pytest.raises(OptionsError, match="strength"):
        Anchors(strength=float("nan"))
    with pytest.raises(OptionsError, match="weighted_mean"):
        NaiveReuse(float("inf"))
    with pytest.raises(OptionsError, match="indexes: 'x'"):
        parse_indexes("0, x")
    with pytest.raises(OptionsError, match="start"):
        ContextOptions(draft_start=-5)
    with pytest.raises(FramesError, match="anchor indexes \\[50\\] are outside the video of 40 frames"):
        Anchors("indexes", indexes=(0, 50)).check_video(40)


# --- sampling (the reduced SD1.5 and v3 motion module: fast) ----------------------------------------------------------

@dataclass
class Small:
    model: object
    motion: object
    conds: tuple


@pytest.fixture(scope="module")
def small(one_thread):
    return Small(small_sd15(), small_motion(), (conditioning(1), conditioning(2)))

@pytest.mark.parametrize("anchors", [FIRST, FIRST_LATENTS], ids=["attention", "latents"])
def test_up_to_context_length_is_bit_identical(small, anchors):
    x = noise(16, 10)
    plain = sample(apply_motion_module(small.model, small.motion, OWN, context_options=ContextOptions()), small.conds, x, steps=1, cfg=1.0)
    extras = ContextOptions(anchors=anchors, naive_reuse=NaiveReuse(0.95, 0.0, 1.0))
    assert torch.equal(sample(apply_motion_module(small.model, small.motion, OWN, context_options=extras), small.conds, x, steps=1, cfg=1.0), plain)


@pytest.mark.parametrize("anchors", [FIRST, FIRST_LATENTS], ids=["attention", "latents"])
def test_anchors_tie_far_windows_to_the_reference(small, anchors):
    """Frame 35 lies only in the last window (24-39): only the anchors can carry frame 0 into it."""
    x = noise(40, 11)
    changed = x.clone()
    changed[0] = torch.randn(4, 4, 4, generator=torch.Generator().manual_seed(5))
    model = apply_motion_module(small.model, small.motion, OWN, context_options=replace(STATIC, anchors=anchors))
    a, b = sample(model, small.conds, x, steps=1, cfg=1.0), sample(model, small.conds, changed, steps=1, cfg=1.0)
    assert not torch.allclose(a[35], b[35], atol=1e-4)
    plain = apply_motion_module(small.model, small.motion, OWN, context_options=STATIC)
    assert torch.equal(sample(plain, small.conds, x, steps=1, cfg=1.0)[35], sample(plain, small.conds, changed, steps=1, cfg=1.0)[35])


def test_anchors_outside_their_steps_change_nothing(small):
    x = noise(40, 12)
    model = lambda options: apply_motion_module(small.model, small.motion, OWN, context_options=options)  # noqa: E731
    off = replace(STATIC, windows_per_call=1, anchors=Anchors(start_percent=0.9, end_percent=1.0))
    plain = sample(model(replace(STATIC, windows_per_call=1)), small.conds, x, steps=1, cfg=1.0)
    assert torch.equal(sample(model(off), small.conds, x, steps=1, cfg=1.0), plain)
    on = sample(model(replace(off, anchors=Anchors())), small.conds, x, steps=1, cfg=1.0)
    assert not torch.allclose(on, plain, atol=1e-4)


def test_anchor_index_outside_the_video_is_refused(small):
    model = apply_context_options(small.model, replace(STATIC, anchors=Anchors("indexes", indexes=(3, 99))))
    with pytest.raises(FramesError, match=r"anchor indexes \[99\].*40 frames"):
        sample(model, small.conds, noise(40, 1), steps=1)


def test_naive_reuse_gives_every_frame_the_first_windows_prediction(small):
    """weighted_mean 1 over the whole run and one Euler step to sigma 0: frame t is the first window's frame t mod 16."""
    model = apply_context_options(small.model, replace(STATIC, naive_reuse=NaiveReuse(1.0, 0.0, 1.0)))
    out = sample(model, small.conds, noise(40, 13), steps=1, cfg=1.0)
    torch.testing.assert_close(out[16:32], out[:16], rtol=1e-5, atol=1e-4)  # x + (x - x0) (0 - sigma) / sigma: rounding
    torch.testing.assert_close(out[32:], out[:8], rtol=1e-5, atol=1e-4)
    assert not torch.allclose(sample(apply_context_options(small.model, STATIC), small.conds, noise(40, 13), steps=1, cfg=1.0)[16:32], out[:16], atol=1e-2)


def test_draft_window_equals_the_full_runs_frames(small):
    """A plain model's frames are independent and its windows equal no windows, so the draft's frames are the full
    run's; every frame has its own text embedding, so the draft must get its frames' prompts."""
    positive, negative = small.conds
    gen = torch.Generator().manual_seed(15)
    per_frame = ([[positive[0][0] + 0.5 * torch.randn(40, *positive[0][0].shape[1:], generator=gen), dict(positive[0][1])]], negative)
    x = noise(40, 14)
    options = replace(STATIC, windows_per_call=1)
    full = sample(apply_context_options(small.model, options), per_frame, x, steps=1, cfg=1.0)
    draft = sample(apply_context_options(small.model, replace(options, draft_start=12)), per_frame, x, steps=1, cfg=1.0)
    torch.testing.assert_close(draft[12:28], full[12:28], rtol=1e-4, atol=5e-4)
    assert not torch.allclose(draft[:12], full[:12], atol=1e-2)  # the rest is not sampled
    with pytest.raises(FramesError, match="starts at frame 30.*40 frames.*0 to 24"):
        sample(apply_context_options(small.model, replace(options, draft_start=30)), per_frame, x, steps=1)


def test_anchors_refused_with_views_and_too_many_retained_frames(small):
    with pytest.raises(OptionsError, match="views"):
        ContextOptions(views=True, anchors=FIRST)
    with pytest.raises(OptionsError, match="20 reference frames into each window of 16: 36 frames"):
        apply_motion_module(small.model, small.motion, OWN, context_options=ContextOptions(anchors=Anchors("first", 20, share="latents")))


def test_draft_with_views_is_the_draft_of_the_window(small):
    """With views the full run's image layers see every frame; a draft evaluates its window alone, as without views."""
    x = noise(40, 16)
    draft = replace(STATIC, draft_start=20)
    plain = sample(apply_motion_module(small.model, small.motion, OWN, context_options=draft), small.conds, x, steps=1, cfg=1.0)
    views = sample(apply_motion_module(small.model, small.motion, OWN, context_options=replace(draft, views=True)), small.conds, x,
                   steps=1, cfg=1.0)
    assert torch.equal(views[20:36], plain[20:36])
