"""Motion strength per frame, per region and over sampling progress.

The motion modules add ``scale * residual`` (:class:`~.transformer.TemporalModule`). For one UNet
call the scale is

    scale[frame, y, x] = motion_scale * keyframe_multiplier(sigma) * schedule[frame] * mask[frame, y, x]

- ``schedule``: a number schedule (``0:1.0, 8:0.3``, linear between keyframes, see
  :mod:`..sampling.frame_schedule`) over the video's frames;
- ``mask``: one mask ``(H, W)`` / ``(1, H, W)`` for every frame or one per frame ``(frames, H, W)``,
  area-resized to each UNet level;
- keyframes over sampling progress: from each keyframe's ``start_percent`` on, its multiplier
  applies (1 before the first keyframe), so one keyframe at 0 with multiplier 1 is no keyframe.

With context windows a call computes some frames only; ``ad_params["sub_idxs"]`` names them and
their own schedule values and masks are used. Without schedule and mask the scale stays a plain
float, exactly as before; an all-ones schedule or mask multiplies by exactly 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange, repeat

from ..errors import FramesError, OptionsError, finite, require_finite
from ..sampling.frame_schedule import Keyframe, frame_values, parse_numbers


@dataclass(frozen=True)
class MotionKeyframe:
    start_percent: float
    multiplier: float

    def __post_init__(self):
        require_finite(start_percent=self.start_percent, scale_multiplier=self.multiplier)  # the node's input names


def add_keyframe(keyframes: tuple[MotionKeyframe, ...] | None, keyframe: MotionKeyframe) -> tuple[MotionKeyframe, ...]:
    """The chain with ``keyframe`` added, sorted by ``start_percent`` (at the same percent, the one added last wins)."""
    if not 0.0 <= keyframe.start_percent <= 1.0:
        raise OptionsError(f"keyframe start_percent must be in [0, 1], got {keyframe.start_percent}")
    kept = [k for k in keyframes or () if k.start_percent != keyframe.start_percent]
    return tuple(sorted([*kept, keyframe], key=lambda k: k.start_percent))


class ScaleMap:
    """A per-frame, per-pixel scale for one UNet call; called with a level's ``x`` ``(b f) c h w``,
    it returns the scale at that level's size, ``(b f) 1 h w`` in ``x``'s dtype."""

    def __init__(self, scale: torch.Tensor):
        self.scale = scale  # (b f) 1 H W, float32
        self.sizes: dict = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        size = tuple(x.shape[-2:])
        if size not in self.sizes:
            resized = self.scale if self.scale.shape[-2:] in ((1, 1), size) else F.interpolate(self.scale, size=size, mode="area")
            self.sizes[size] = resized.to(x.device, x.dtype)
        return self.sizes[size]


class MotionStrength:
    """``motion_scale`` with its optional schedule, mask and sampling keyframes (immutable once built)."""

    def __init__(self, scale: float, schedule: str | None = None, mask: torch.Tensor | None = None,
                 keyframes: tuple[MotionKeyframe, ...] = (), percent_to_sigma=None):
        self.scale = finite(scale, "motion_scale")
        self.schedule: list[Keyframe] | None = parse_numbers(schedule) if schedule and schedule.strip() else None
        if mask is not None:
            mask = mask.float().cpu()
            if mask.ndim == 2:
                mask = mask[None]
            if mask.ndim != 3:
                raise OptionsError(f"motion_scale_mask must be a MASK (frames, height, width), got shape {list(mask.shape)}")
        self.mask = mask
        # (sigma at which it starts, multiplier), latest start first
        self.keyframes = [(percent_to_sigma(k.start_percent), k.multiplier) for k in reversed(keyframes)]
        self.values: dict[int, torch.Tensor] = {}  # full_length -> the schedule's per-frame values

    def frame_values(self, full_length: int) -> torch.Tensor:
        if full_length not in self.values:
            self.values[full_length] = frame_values(self.schedule, full_length)
        return self.values[full_length]

    def multiplier(self, sigma: float | None) -> float:
        """The multiplier of the last keyframe that has started at ``sigma`` (1 before any)."""
        if sigma is None:
            return self.keyframes[-1][1] if self.keyframes else 1.0
        return next((m for start, m in self.keyframes if sigma <= start), 1.0)

    def at(self, sigmas: torch.Tensor | None, sub_idxs: list[int], full_length: int, videos: int) -> float | ScaleMap:
        """The scale for a UNet call on ``videos`` videos of frames ``sub_idxs`` of ``full_length``: 0.0 when
        the motion module has no effect, a float when it is the same everywhere, else a :class:`ScaleMap`."""
        scale = float(self.scale * self.multiplier(None if sigmas is None else float(sigmas.max())))
        if scale == 0.0 or (self.schedule is None and self.mask is None):
            return scale
        index = torch.tensor(sub_idxs)
        per_frame = torch.ones(len(sub_idxs)) if self.schedule is None else self.frame_values(full_length)[index]
        per_frame = rearrange(scale * per_frame, "f -> f 1 1 1")
        if self.mask is not None:
            if self.mask.shape[0] not in (1, full_length):
                raise FramesError(f"motion_scale_mask has {self.mask.shape[0]} masks for a {full_length}-frame video; "
                                  f"give one mask, or one per frame")
            mask = self.mask if self.mask.shape[0] == 1 else self.mask[index]
            per_frame = per_frame * rearrange(mask, "f h w -> f 1 h w")
        return ScaleMap(repeat(per_frame, "f 1 h w -> (b f) 1 h w", b=videos))
