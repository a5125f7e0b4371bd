"""Context windows: which frames the model sees together, and how their predictions are fused.

Motion modules were trained on 16-frame clips. A long video is evaluated in windows of
``context_length`` frames, ``context_overlap`` of them shared with the next window, and each
frame's prediction is the weighted mean over the windows that contain it.

Schedules (all cover every frame; windows never exceed ``context_length``):

- ``static``: fixed sliding windows ``0..L-1, s..s+L-1, …`` (``s = L - overlap``); the last is
  aligned to the end so it is full length.
- ``uniform``: as many windows as ``static``, their seams moved by a different offset at each
  sampling step (the offsets halve recursively: 0, 1/2, 1/4, 3/4, … of the room there is), so
  seams never stay in one place. Step 0 is the static plan. The first and last windows stay at the
  video's ends; the windows between them shift by ``e`` frames, at most so far that the two
  outer overlaps keep one shared frame (one of them grows, the other thins: the overlaps add up to
  the same as the static plan's). Where no window can move (two windows, or no overlap and no
  slack), the shifted windows are clamped to the video instead, which costs one window more.
- ``batched``: consecutive windows without overlap (the last may be shorter); overlap and stride
  do not apply.

``closed_loop``: windows continue past the last frame and wrap to the first, so the end of the
video blends into its start. ``context_stride`` > 1 adds, for each ``k = 2, 4, …, 2^(stride-1)``,
windows of frames spaced ``k`` apart, which tie distant parts of a long video together.

``views`` (AnimateDiff-Evolved's view options, FreeNoise's window fusion in the temporal attention): the
image layers run on all frames at once and only each motion module's temporal transformer runs per
window, its residuals fused with the same weights.

``windows_per_call``: windows of equal length evaluated together in one model call (see
:mod:`.evaluation`); 0 lets ComfyUI's memory rule decide, 1 keeps peak memory at one window's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ...errors import OptionsError, require_finite

if TYPE_CHECKING:  # the context extras' options (sampling.windows.anchors, which imports ComfyUI)
    from .anchors import Anchors, NaiveReuse


@dataclass(frozen=True)
class ContextOptions:
    context_length: int = 16
    context_overlap: int = 4
    context_stride: int = 1
    closed_loop: bool = False
    schedule: str = "uniform"
    fuse_method: str = "pyramid"
    views: bool = False  # window only the motion modules' temporal attention (image layers see every frame)
    windows_per_call: int = 0  # most windows evaluated in one model call; 0: as many as ComfyUI's memory rule allows
    # context extras (sampling.windows.anchors, sampling.windows.draft)
    anchors: Anchors | None = None  # reference frames every window shares
    naive_reuse: NaiveReuse | None = None  # the first window's prediction mixed into every window's in early steps
    draft_start: int = -1  # >= 0: sample only the window of frames [draft_start, draft_start + context_length)

    def __post_init__(self):
        require_finite(**vars(self))
        if self.context_length < 1:
            raise OptionsError(f"context_length must be at least 1, got {self.context_length}")
        if not 0 <= self.context_overlap < self.context_length:
            raise OptionsError(f"context_overlap must be in [0, context_length), got {self.context_overlap} for length {self.context_length}")
        if self.context_stride < 1:
            raise OptionsError(f"context_stride must be at least 1, got {self.context_stride}")
        if self.schedule not in SCHEDULES:
            raise OptionsError(f"unknown schedule {self.schedule!r}; choose one of {list(SCHEDULES)}")
        if self.windows_per_call < 0:
            raise OptionsError(f"windows_per_call must be at least 0 (0: as many as fit in memory), got {self.windows_per_call}")
        if self.draft_start < -1:
            raise OptionsError(f"start (the draft window's first frame) must be at least 0, got {self.draft_start}")
        if self.views and (self.anchors is not None or self.naive_reuse is not None):
            raise OptionsError("anchors and NaiveReuse work on windows of the whole model, and views window only the motion modules: "
                               "turn views off on AnimDiffContextOptions, or remove AnimDiffContextAnchors/AnimDiffNaiveReuse")
        if self.fuse_method not in FUSE_METHODS:
            raise OptionsError(f"unknown fuse_method {self.fuse_method!r}; choose one of {list(FUSE_METHODS)}")


def ordered_halving(step: int) -> float:
    """0, 1/2, 1/4, 3/4, 1/8, 5/8, …: the bit-reversed fraction of ``step``."""
    result, bit = 0.0, 0.5
    while step:
        result += bit * (step & 1)
        step >>= 1
        bit /= 2
    return result


def starts(frames: int, span: int, step: int, closed_loop: bool, shift: float) -> list[int]:
    """Window starts for windows covering ``span`` frames, ``step`` apart, their seams moved by the
    fraction ``shift`` in [0, 1) of the room there is (0: the static plan)."""
    if closed_loop:
        return sorted({(round(step * shift) + i * step) % frames for i in range(math.ceil(frames / step))})
    last = frames - span
    count = math.ceil(last / step) + 1  # the static plan: 0, step, 2 step, …, last
    slack = (count - 1) * step - last  # how much the last window is pulled back
    overlap = span - step
    # Inner windows start at i * step + e, lo <= e <= hi: both outer overlaps keep a frame, no window moves onto another.
    lo, hi = max(1 - overlap - slack, 1 - step), min(overlap - 1, step - slack - 1)
    room = min(step, hi - lo + 1)
    if count >= 3 and room >= 2:
        e = round(room * shift) % room
        e = e if e <= hi else e - room
        return [0, *(i * step + e for i in range(1, count - 1)), last]
    offset = round(step * shift)  # no room to move inner windows: clamp shifted windows to the video
    return sorted({min(max(offset + i * step, 0), last) for i in range(-1, math.ceil(frames / step) + 1)})


def batched_windows(frames: int, options: ContextOptions, step: int) -> list[list[int]]:
    """``batched``: consecutive windows without overlap, the last one shorter (wrapped to full length with ``closed_loop``)."""
    length = options.context_length
    windows = [list(range(s, min(s + length, frames))) for s in range(0, frames, length)]
    if options.closed_loop and frames % length:
        windows[-1] = [i % frames for i in range(windows[-1][0], windows[-1][0] + length)]
    return windows


def sliding_windows(frames: int, options: ContextOptions, shift: float) -> list[list[int]]:
    """Overlapping windows (and, for ``context_stride`` > 1, windows of spaced frames), seams moved by ``shift``."""
    length = options.context_length
    stride = length - options.context_overlap
    windows = []
    for level in range(options.context_stride):
        spacing = 2 ** level
        span = spacing * (length - 1) + 1
        if level and span > frames:
            break
        for start in starts(frames, span, stride * spacing, options.closed_loop, shift):
            window = [(start + spacing * i) % frames for i in range(length)]
            if window not in windows:
                windows.append(window)
    return windows


def static_windows(frames: int, options: ContextOptions, step: int) -> list[list[int]]:
    """``static``: the same sliding windows at every step."""
    return sliding_windows(frames, options, 0.0)


def uniform_windows(frames: int, options: ContextOptions, step: int) -> list[list[int]]:
    """``uniform``: the sliding windows, their seams moved by a different offset at each step."""
    return sliding_windows(frames, options, ordered_halving(step))


# schedule name -> its windows (frames, options, step); the node lists them in this order
SCHEDULES = {"uniform": uniform_windows, "static": static_windows, "batched": batched_windows}


def context_windows(frames: int, options: ContextOptions, step: int = 0) -> list[list[int]]:
    """Frame indices of each window at sampling step ``step``."""
    if frames <= options.context_length:
        return [list(range(frames))]
    return SCHEDULES[options.schedule](frames, options, step)


def flat_weights(window: list[int], frames: int) -> torch.Tensor:
    """``flat``: a plain average."""
    return torch.ones(len(window))


def gauss_weights(window: list[int], frames: int) -> torch.Tensor:
    """``gauss``: a Gaussian around the window's centre (sigma a quarter of its length)."""
    n = len(window)
    centre, sigma = (n - 1) / 2, max(n / 4, 1.0)
    return torch.exp(-0.5 * ((torch.arange(n, dtype=torch.float32) - centre) / sigma) ** 2)


def pyramid_weights(window: list[int], frames: int) -> torch.Tensor:
    """``pyramid``: falling linearly to the window's edges (1 at each edge)."""
    n = len(window)
    position = torch.arange(n, dtype=torch.float32)
    return torch.minimum(position + 1, n - position)


def relative_weights(window: list[int], frames: int) -> torch.Tensor:
    """``relative``: pyramid, without the fade towards the ends of the video itself."""
    pyramid = pyramid_weights(window, frames)
    n = len(window)
    if window[0] == 0:
        pyramid[: n // 2] = pyramid.max()
    if window[-1] == frames - 1:
        pyramid[n // 2:] = pyramid.max()
    return pyramid


# fuse method name -> unnormalised weights of one window's frames (window, frames), all > 0; the node's order
FUSE_METHODS = {"pyramid": pyramid_weights, "flat": flat_weights, "gauss": gauss_weights, "relative": relative_weights}


def window_weights(window: list[int], frames: int, method: str) -> torch.Tensor:
    """Unnormalised fuse weights of the frames of one window (all > 0)."""
    return FUSE_METHODS[method](window, frames)


def fuse_weights(windows: list[list[int]], frames: int, method: str) -> list[torch.Tensor]:
    """Per-window weights, normalised so that each frame's weights sum to 1 over its windows."""
    raw = [window_weights(w, frames, method) for w in windows]
    total = torch.zeros(frames)
    for window, weight in zip(windows, raw, strict=True):
        total.index_add_(0, torch.tensor(window), weight)
    return [weight / total[torch.tensor(window)] for window, weight in zip(windows, raw, strict=True)]
