"""sampling/windows/plan.py: window schedules and fuse weights."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from animdiff.sampling.windows.plan import FUSE_METHODS, SCHEDULES, ContextOptions, context_windows, fuse_weights, ordered_halving


def spans(windows):
    return [(w[0], w[-1], len(w)) for w in windows]


def test_static_windows_slide_and_end_aligned():
    assert context_windows(48, ContextOptions(schedule="static")) == [
        list(range(0, 16)), list(range(12, 28)), list(range(24, 40)), list(range(32, 48))]


def test_closed_loop_wraps_to_the_first_frames():
    windows = context_windows(48, ContextOptions(schedule="static", closed_loop=True))
    assert windows[-1] == list(range(36, 48)) + [0, 1, 2, 3]
    assert spans(windows) == [(0, 15, 16), (12, 27, 16), (24, 39, 16), (36, 3, 16)]


def test_stride_adds_spaced_windows():
    windows = context_windows(48, ContextOptions(schedule="static", context_stride=2))
    assert list(range(0, 31, 2)) in windows and list(range(17, 48, 2)) in windows
    assert len(windows) == 6


def test_batched_has_no_overlap():
    assert spans(context_windows(40, ContextOptions(schedule="batched"))) == [(0, 15, 16), (16, 31, 16), (32, 39, 8)]


def test_uniform_shifts_the_seams_between_steps():
    assert ordered_halving(0) == 0 and ordered_halving(1) == 0.5 and ordered_halving(2) == 0.25 and ordered_halving(3) == 0.75
    step0, step1 = context_windows(48, ContextOptions()), context_windows(48, ContextOptions(), step=1)
    assert step0 == context_windows(48, ContextOptions(schedule="static"))
    assert step1 != step0 and len(step1) == len(step0)


def static_count(frames, length, overlap):
    """Windows of the static plan: the first at 0, then every ``length - overlap`` frames until one reaches the end."""
    return math.ceil((frames - overlap) / (length - overlap))


def by_spacing(windows):
    levels = {}
    for w in windows:
        levels.setdefault(w[1] - w[0], []).append(w)
    return levels


@pytest.mark.parametrize("stride", [1, 2])
def test_uniform_evaluates_as_many_windows_as_static(stride):
    """Every step of the uniform plan: every frame covered, full-length windows, per stride level as many as the
    static plan where it has inner windows to move (3 or more; else one more), seams moved between steps 0 and 1,
    and neighbouring windows sharing a frame."""
    for frames, length, overlap in itertools.product([33, 40, 48, 64, 100, 128, 257], [8, 16], [2, 4, 6]):
        options = ContextOptions(length, overlap, stride)
        static = by_spacing(context_windows(frames, ContextOptions(length, overlap, stride, schedule="static")))
        if len(static[1]) < 3:
            continue
        assert len(static[1]) == static_count(frames, length, overlap)
        plans = [context_windows(frames, options, step) for step in range(8)]
        assert by_spacing(plans[0]) == static
        assert by_spacing(plans[1])[1] != static[1]
        for windows in plans:
            assert sorted({i for w in windows for i in w}) == list(range(frames))
            assert all(len(w) == length for w in windows)
            for spacing, level in by_spacing(windows).items():
                assert len(level) == len(static[spacing]) if len(static[spacing]) >= 3 else len(level) <= len(static[spacing]) + 1
                firsts = sorted(w[0] for w in level)
                assert all(b - a <= spacing * (length - 1) for a, b in itertools.pairwise(firsts))


def test_uniform_seams_move_in_closed_loops():
    options = ContextOptions(16, 4, closed_loop=True)
    plans = [context_windows(48, options, step) for step in range(4)]
    assert len({tuple(map(tuple, p)) for p in plans}) == 4
    assert all(len(p) == len(plans[0]) and all(len(w) == 16 for w in p) for p in plans)


def test_short_videos_are_one_window():
    for schedule in SCHEDULES:
        assert context_windows(16, ContextOptions(schedule=schedule, closed_loop=True, context_stride=3)) == [list(range(16))]


@pytest.mark.parametrize("schedule,closed_loop,stride", list(itertools.product(SCHEDULES, [False, True], [1, 3])))
def test_every_frame_is_covered_and_weights_sum_to_one(schedule, closed_loop, stride):
    for frames, length, overlap in itertools.product([1, 17, 33, 100, 257], [8, 16], [0, 4, 7]):
        options = ContextOptions(length, overlap, stride, closed_loop, schedule)
        for step in range(3):
            windows = context_windows(frames, options, step)
            covered = sorted({i for w in windows for i in w})
            assert covered == list(range(frames))
            assert all(len(w) <= length and len(set(w)) == len(w) for w in windows)
            for method in FUSE_METHODS:
                total = torch.zeros(frames)
                for window, weight in zip(windows, fuse_weights(windows, frames, method), strict=True):
                    assert (weight > 0).all()
                    total.index_add_(0, torch.tensor(window), weight)
                torch.testing.assert_close(total, torch.ones(frames))


def test_bad_options_are_explained():
    with pytest.raises(ValueError, match="context_overlap must be in"):
        ContextOptions(context_length=16, context_overlap=16)
    with pytest.raises(ValueError, match="unknown schedule 'wave'"):
        ContextOptions(schedule="wave")
