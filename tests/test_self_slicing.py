"""Grouping windows into model calls when a control maps latent keyframes by frame (Advanced-ControlNet's)."""

from __future__ import annotations

from animdiff.sampling.windows.evaluation import calls
from animdiff.sampling.windows.plan import ContextOptions, context_windows


def test_windows_of_a_call_share_no_frame_when_asked():
    windows = context_windows(24, ContextOptions(context_length=8, context_overlap=2, schedule="uniform"), 1)
    assert calls(windows, 8) == [[0, 1, 2, 3]]
    grouped = calls(windows, 8, distinct=True)
    assert sorted(n for group in grouped for n in group) == list(range(len(windows)))
    for group in grouped:
        frames = [f for n in group for f in windows[n]]
        assert len(frames) == len(set(frames))
    assert len(grouped) < len(windows)  # still batched where windows do not overlap


def test_calls_keep_windows_of_one_length_together_and_respect_the_cap():
    windows = [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [8, 9]]
    assert calls(windows, 2) == [[0, 1], [2], [3]]
    assert calls(windows, 2, distinct=True) == [[0, 2], [1], [3]]
