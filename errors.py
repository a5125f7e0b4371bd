"""The pack's one error family: every error it raises is an :class:`AnimDiffError`.

The base class adds the ``AnimDiff:`` prefix in one place and is a ``ValueError``, so ComfyUI
shows it on the node like its own input errors. The subclasses say what caused it; messages
name the file or input that is wrong and the fix.

ComfyUI shows an exception's type as ``module.QualName``; a custom node's module path holds the
install folder (``…/custom_nodes/ComfyUI-AnimDiff.motion_module.loader.FileError``), so every
class here reports the module ``AnimDiff`` instead: users see ``AnimDiff.FileError``.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path

PREFIX = "AnimDiff: "
MODULE = "AnimDiff"


class AnimDiffError(ValueError):
    """Base of every error the pack raises; the message starts with ``AnimDiff:`` exactly once."""

    def __init__(self, message: str):
        super().__init__(message if message.startswith(PREFIX) else PREFIX + message)

    @property
    def detail(self) -> str:
        """The message without the ``AnimDiff:`` prefix, for wrapping into another message."""
        return str(self).removeprefix(PREFIX)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.__module__ = MODULE


AnimDiffError.__module__ = MODULE


class FileError(AnimDiffError):
    """A file (or file name) that cannot be used where it was given: ``"<source>: <problem>"``."""

    def __init__(self, source: str | Path, problem: str):
        problem = problem.removeprefix(PREFIX)  # a wrapped error's message keeps one prefix
        super().__init__(f"{source}: {problem}")
        self.source = str(source)
        self.problem = problem


class TrainingDataError(FileError):
    """A training clip, caption or data folder that cannot be used."""


class TrainingStateError(FileError):
    """A training state that cannot be resumed; the message names the state file and what to do."""


class BaseModelError(AnimDiffError):
    """Weights for one base model (SD1.5, SDXL, …) given to another, or to a model that is no SD UNet."""


class FramesError(AnimDiffError):
    """A frame count (or frame index) the motion module or the video cannot take."""


class OptionsError(AnimDiffError):
    """A node input or option value, or a combination of them, that cannot work."""


class TrainingError(AnimDiffError):
    """Training settings or inputs that cannot be trained."""


class NonFiniteError(AnimDiffError):
    """NaN or infinite values where finite numbers are needed (weights, latents)."""


def finite(value, name: str):
    """``value`` as it is when it is a finite number (or no number at all); NaN or ±infinity raise an
    :class:`OptionsError` naming ``name``: the node input, option or schedule line it came from.

    Every number a user types enters through here (the option classes, the nodes' library calls, the schedule
    parsers): ComfyUI's min/max validation lets NaN through (every comparison with it is false) and JSON carries
    NaN and Infinity, which would otherwise fail later, blaming the weights."""
    if isinstance(value, numbers.Real) and not math.isfinite(value):
        raise OptionsError(f"{name} is {float(value)}: give a finite number (NaN and infinity cannot be sampled or trained)")
    return value


def require_finite(**values) -> None:
    """:func:`finite` for each ``name=value`` (names as the user sees them: the node inputs)."""
    for name, value in values.items():
        finite(value, name)
