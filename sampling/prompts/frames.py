"""Keyframe schedules over the frames of a video: the text syntax and the per-frame interpolation.

One schedule is a list of keyframes ``FRAME: VALUE``, one per line (prompt schedules) or also
separated by commas (number schedules such as ``0:1.0, 8:0.3``). Accepted forms of an entry::

    0: a cat on a sofa             plain
    "0": "a cat on a sofa",        quoted, JSON-ish (as pasted from AnimateDiff-Evolved / FizzNodes)
    8 = "a dog"                    '=' instead of ':'

Several quoted entries may share a line (``"0": "a", "8": "b"``); lines holding only ``{`` or
``}`` and empty lines are skipped. ``FRAME`` is an integer; a negative one counts from the end
(``-1`` is the last frame). Frames before the first keyframe take the first keyframe's value,
frames after the last one the last value. Between two keyframes ``a < b`` a frame ``f`` sits at
``t = (f - a) / (b - a)``: ``linear`` blends ``(1 - t) * value_a + t * value_b``, ``hold`` keeps
``value_a``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import torch

from ..errors import FramesError, OptionsError, finite

INTERPOLATIONS = ["linear", "hold"]
KEY = re.compile(r'\s*(?:"(-?\d+)"|(-?\d+))\s*[:=]\s*')
SKIPPED_LINES = {"", "{", "}"}
FLOAT32_MAX = torch.finfo(torch.float32).max  # number schedules are used in float32


@dataclass(frozen=True)
class Keyframe:
    frame: int  # as written: may be negative (from the end)
    value: str  # the value's text (a prompt, or a number still to be read)
    line: str  # the whole line it came from, for messages


def _value(rest: str, line: str, number: bool) -> tuple[str, str]:
    """Split ``rest`` (text after ``FRAME:``) into the value and what follows it on the line."""
    if rest.startswith('"'):
        try:
            value, end = json.JSONDecoder().raw_decode(rest)
        except json.JSONDecodeError as err:
            raise OptionsError(f"schedule line {line!r}: the quoted value is not closed or not valid ({err.msg})") from None
        rest = rest[end:].lstrip()
        if rest and not rest.startswith(","):
            raise OptionsError(f"schedule line {line!r}: expected ',' or the end of the line after the quoted value, got {rest!r}")
        return str(value), rest[1:].lstrip()
    if number:
        value, _, rest = rest.partition(",")
        return value.strip(), rest.lstrip()
    return rest.strip().removesuffix(",").rstrip(), ""


def parse_keyframes(text: str, number: bool = False) -> list[Keyframe]:
    """The keyframes of a schedule text, in the order written. ``number``: values are numbers,
    and unquoted entries end at a comma (a prompt's unquoted value takes the rest of its line)."""
    keyframes = []
    for raw in text.splitlines():
        line = raw.strip()
        if line in SKIPPED_LINES:
            continue
        rest = line
        while rest:
            match = KEY.match(rest)
            if match is None:
                example = "0: 1.0, 8: 0.3" if number else '0: a cat  or  "0": "a cat"'
                raise OptionsError(f"schedule line {line!r}: expected FRAME: VALUE, e.g. {example}")
            value, rest = _value(rest[match.end():], line, number)
            if not value and not number:
                raise OptionsError(f"schedule line {line!r}: the prompt is empty")
            keyframes.append(Keyframe(int(match[1] or match[2]), value, line))
    if not keyframes:
        raise OptionsError("the schedule is empty: give at least one keyframe such as '0: a cat on a sofa'")
    return keyframes


def number_of(keyframe: Keyframe) -> float:
    """The keyframe's value as a number finite in float32, the dtype it is used in (``nan``, ``inf``, ``1e309`` and
    ``1e39`` are refused, naming the line)."""
    try:
        value = float(keyframe.value)
    except ValueError:
        raise OptionsError(f"schedule line {keyframe.line!r}: {keyframe.value!r} is not a number") from None
    name = f"schedule line {keyframe.line!r}: the value {keyframe.value!r}"
    if abs(finite(value, name)) > FLOAT32_MAX:
        raise OptionsError(f"{name} is {value:g}: give a finite number within float32's range (±{FLOAT32_MAX:.3g})")
    return value


def parse_numbers(text: str) -> list[Keyframe]:
    """A number schedule (``0:1.0, 8:0.3``); each value is checked to be a number."""
    keyframes = parse_keyframes(text, number=True)
    for keyframe in keyframes:
        number_of(keyframe)
    return keyframes


def resolve(keyframes: list[Keyframe], frames: int) -> list[tuple[int, Keyframe]]:
    """``(frame, keyframe)`` sorted by frame, negative frames counted from the end of ``frames``."""
    placed = {}
    for keyframe in keyframes:
        frame = keyframe.frame + frames if keyframe.frame < 0 else keyframe.frame
        if not 0 <= frame < frames:
            raise FramesError(f"schedule line {keyframe.line!r}: frame {keyframe.frame} is outside the video's "
                              f"{frames} frames (0 to {frames - 1}, or -1 to -{frames} from the end)")
        if frame in placed:
            raise OptionsError(f"schedule line {keyframe.line!r}: frame {frame} already has a keyframe "
                               f"(line {placed[frame].line!r})")
        placed[frame] = keyframe
    return sorted(placed.items(), key=lambda item: item[0])


@dataclass(frozen=True)
class Blend:
    """Per frame: ``value[frame] = (1 - t) * keys[lower] + t * keys[upper]`` (indices into the sorted keyframes)."""

    lower: torch.Tensor  # (frames,) long
    upper: torch.Tensor  # (frames,) long
    t: torch.Tensor  # (frames,) float64, 0 on and outside the keyframes and everywhere for hold


def blend(key_frames: list[int], frames: int, interpolation: str) -> Blend:
    """Where each of ``frames`` frames sits between the sorted, distinct ``key_frames``."""
    if interpolation not in INTERPOLATIONS:
        raise OptionsError(f"unknown interpolation {interpolation!r}; choose one of {INTERPOLATIONS}")
    keys = torch.tensor(key_frames, dtype=torch.float64)
    position = torch.arange(frames, dtype=torch.float64)
    lower = (torch.searchsorted(keys, position, right=True) - 1).clamp(min=0)  # last keyframe at or before
    upper = (lower + 1).clamp(max=len(key_frames) - 1)
    span = keys[upper] - keys[lower]
    t = ((position - keys[lower]) / span.clamp(min=1)).clamp(0, 1)
    t = torch.where(span > 0, t, torch.zeros_like(t))  # before the first / after the last keyframe
    if interpolation == "hold":
        t = torch.zeros_like(t)
    return Blend(lower, upper, t)


def frame_values(keyframes: list[Keyframe], frames: int) -> torch.Tensor:
    """A number schedule as one value per frame, linear between keyframes: ``(frames,)`` float32."""
    placed = resolve(keyframes, frames)
    values = torch.tensor([number_of(k) for _, k in placed], dtype=torch.float64)
    b = blend([frame for frame, _ in placed], frames, "linear")
    return ((1 - b.t) * values[b.lower] + b.t * values[b.upper]).float()
