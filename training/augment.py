"""The rule-based camera-motion augmentation of MotionLoRA (AnimateDiff, arXiv 2307.04725, section 4.2).

A virtual camera looks at the source through a window with the output's aspect ratio. Frame ``i`` shows
the window at step ``i``: zooming shrinks or grows it, panning and tilting translate it, rolling rotates
it. The windows of all frames are fitted into the source together (the largest that fit, centred), so
no frame ever shows anything outside it; each frame is one kornia affine warp of the source.

Directions are on screen (x right, y down); ``speed`` is per frame, in these units:

====================  ==========================  ==============================  =====================================
motion                camera                      content in the frame            speed
====================  ==========================  ==============================  =====================================
pan_left / _right     moves left / right          moves right / left              fraction of the output width
tilt_up / _down       moves up / down             moves down / up                 fraction of the output height
zoom_in / _out        window shrinks / grows      grows / shrinks                 relative size change (0.05: 5 % larger)
roll_clockwise /      rolls clockwise /           rotates anticlockwise /         degrees
roll_anticlockwise    anticlockwise               clockwise
====================  ==========================  ==============================  =====================================

``pan_left`` is the motion of the official ``v2_lora_PanLeft``: the camera moves left, the scene slides right.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch
from kornia.geometry.transform import get_rotation_matrix2d, resize, warp_affine

from ..errors import OptionsError

CAMERA_MOTIONS = ("zoom_in", "zoom_out", "pan_left", "pan_right", "tilt_up", "tilt_down", "roll_clockwise", "roll_anticlockwise")

# motion -> (kind, sign). pan/tilt: the camera's direction along x/y; zoom: + content grows; roll: + camera rolls clockwise.
MOTION_KINDS = {"zoom_in": ("zoom", 1), "zoom_out": ("zoom", -1), "pan_left": ("pan", -1), "pan_right": ("pan", 1),
                "tilt_up": ("tilt", -1), "tilt_down": ("tilt", 1), "roll_clockwise": ("roll", 1), "roll_anticlockwise": ("roll", -1)}
SPEED_UNITS = {"pan": "fraction of the output width per frame", "tilt": "fraction of the output height per frame",
               "zoom": "relative change of the content's size per frame", "roll": "degrees per frame"}
# Faster than this, consecutive frames share too little for the motion between them to be seen.
MAX_SPEED = {"pan": 0.5, "tilt": 0.5, "zoom": 1.0, "roll": 90.0}
# The most magnified frame may enlarge the source at most this much.
MAX_UPSCALE = 2.0


@dataclass(frozen=True)
class CameraPath:
    """The camera's window for each of ``length`` frames, in source pixel coordinates (pixel centres at integers)."""

    centre: torch.Tensor  # (length, 2) window centre (x, y)
    scale: torch.Tensor  # (length,) source pixels per output pixel
    angle: torch.Tensor  # (length,) roll in degrees, clockwise on screen

    def matrices(self, size: tuple[int, int]) -> torch.Tensor:
        """``(length, 2, 3)`` source-to-output pixel maps for ``warp_affine`` into frames of ``size`` ``(h, w)``."""
        height, width = size
        # kornia's positive angle turns anticlockwise: the source turns against the camera's clockwise roll.
        forward = get_rotation_matrix2d(self.centre, self.angle, (1 / self.scale)[:, None].expand(-1, 2))
        forward[:, :, 2] += self.centre.new_tensor([(width - 1) / 2, (height - 1) / 2]) - self.centre
        return forward


def check_camera(motion: str, speed: float) -> tuple[str, int]:
    """``(kind, sign)`` of ``motion``; a clear error for an unknown motion or a speed out of range."""
    if motion not in MOTION_KINDS:
        raise OptionsError(f"unknown camera motion {motion!r}; valid: {', '.join(CAMERA_MOTIONS)}")
    kind, sign = MOTION_KINDS[motion]
    if not (isinstance(speed, numbers.Real) and 0 < speed <= MAX_SPEED[kind]):
        raise OptionsError(f"{motion} speed {speed!r} is out of range: 0 < speed <= {MAX_SPEED[kind]} ({SPEED_UNITS[kind]})")
    return kind, sign


def _path(kind: str, sign: int, speed: float, length: int, source_size: tuple[int, int], size: tuple[int, int]) -> CameraPath:
    """The windows of the motion at ``speed``, fitted together into a source of ``source_size`` ``(h, w)``."""
    height, width = size
    step = torch.arange(length, dtype=torch.float64)
    offset = torch.zeros(length, 2, dtype=torch.float64)  # window centre, in output pixels of frame 0
    scale = torch.ones(length, dtype=torch.float64)  # window size relative to frame 0
    angle = torch.zeros(length, dtype=torch.float64)
    if kind == "pan":
        offset[:, 0] = sign * speed * width * step
    elif kind == "tilt":
        offset[:, 1] = sign * speed * height * step
    elif kind == "zoom":
        scale = (1 + speed) ** (-sign * step)
    else:
        angle = sign * speed * step
    radians = torch.deg2rad(angle)
    cos, sin = radians.cos(), radians.sin()
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (length, 2, 2), clockwise on screen
    corners = torch.tensor([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=torch.float64) * torch.tensor([(width - 1) / 2, (height - 1) / 2])
    points = torch.einsum("lij,cj->lci", rotation, corners) * scale[:, None, None] + offset[:, None]  # (length, 4, 2)
    low, high = points.amin((0, 1)), points.amax((0, 1))
    source_height, source_width = source_size
    fit = min((source_width - 1) / (high - low)[0].item(), (source_height - 1) / (high - low)[1].item())  # source px per output px
    source_centre = torch.tensor([(source_width - 1) / 2, (source_height - 1) / 2], dtype=torch.float64)
    return CameraPath(source_centre + fit * (offset - (low + high) / 2), fit * scale, angle)


def camera_path(motion: str, speed: float, length: int, source_size: tuple[int, int], size: tuple[int, int]) -> CameraPath:
    """The camera's windows for ``length`` frames of ``size`` ``(h, w)`` from a source of ``source_size`` ``(h, w)``.

    Raises a clear error for an unknown motion, a speed out of range, or a source too small for the motion
    (the most magnified frame would enlarge it more than ``MAX_UPSCALE``; the message gives the fastest speed that fits).
    """
    kind, sign = check_camera(motion, speed)
    if length < 1 or min(size) < 2 or min(source_size) < 2:
        raise OptionsError(f"camera motion needs length >= 1 and frames and a source of at least 2x2 pixels; "
                         f"got length {length}, size {tuple(size)}, source {tuple(source_size)}")
    path = _path(kind, sign, speed, length, source_size, size)
    upscale = 1 / path.scale.min().item()
    if upscale > MAX_UPSCALE:
        upscale_at = lambda v: 1 / _path(kind, sign, v, length, source_size, size).scale.min().item()
        slow, fast = 0.0, speed
        for _ in range(40):  # bisect for the fastest speed within MAX_UPSCALE (the windows only grow with speed)
            middle = (slow + fast) / 2
            slow, fast = (middle, fast) if upscale_at(middle) <= MAX_UPSCALE else (slow, middle)
        hint = f"use speed <= {slow:.4g}, a larger source or a smaller size" if slow > 0 else "use a larger source or a smaller size"
        raise OptionsError(f"{motion} at speed {speed} over {length} frames needs the {source_size[0]}x{source_size[1]} source "
                         f"enlarged {upscale:.2f}x for {size[0]}x{size[1]} frames (at most {MAX_UPSCALE}x): {hint}")
    return path


def camera_motion(frames: torch.Tensor, motion: str, speed: float, length: int = 16, size: tuple[int, int] | None = None) -> torch.Tensor:
    """A clip of ``length`` frames filmed by the camera ``motion`` at ``speed`` (units: module docstring).

    ``frames``: a still ``(c, h, w)`` or a clip ``(f, c, h, w)``, float in [0, 1]; frame ``i`` of a clip is seen by
    the camera at step ``i`` (a clip shorter than ``length`` is looped), so the motion is added to the clip's own.
    ``size``: the output ``(H, W)``, by default the source's. Returns ``(length, c, H, W)``.
    """
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or len(frames) == 0:
        raise OptionsError(f"camera_motion takes a still (c, h, w) or a clip (f, c, h, w); got shape {tuple(frames.shape)}")
    size = tuple(size or frames.shape[-2:])
    path = camera_path(motion, speed, length, frames.shape[-2:], size)
    shrink = path.scale.min().item()
    if shrink > 1:  # the source is larger than needed: reduce it (antialiased) so the most magnified frame samples it 1:1
        source_size = (max(2, round(frames.shape[-2] / shrink)), max(2, round(frames.shape[-1] / shrink)))
        frames = resize(frames, source_size, antialias=True)
        path = camera_path(motion, speed, length, source_size, size)
    clip = frames[torch.arange(length) % len(frames)]  # (length, c, h, w): the source frame behind each output frame
    return warp_affine(clip, path.matrices(size).to(clip), size, padding_mode="border")
