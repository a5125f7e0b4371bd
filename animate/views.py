"""Views: context windows for the motion modules only (AnimateDiff-Evolved's view options; FreeNoise's window fusion
in the temporal attention). The image layers run on every frame at once; each motion module's temporal transformer
runs per window, its residuals fused with the windows' weights (:class:`~..motion_module.transformer.TemporalModule`).

The whole feature is wired here: the node's ``views`` input is a :class:`~..sampling.windows.plan.ContextOptions`
field, the window plan is :mod:`..sampling.windows.plan`'s, and the motion module takes the windows as data.
"""

from __future__ import annotations

import comfy.model_patcher
import torch

from ..errors import OptionsError
from ..sampling.windows.evaluation import current_step, use_context_windows
from ..sampling.windows.plan import ContextOptions, context_windows, fuse_weights
from ..touchpoints import OptionKeys


def motion_views(frames: int, options: ContextOptions, transformer_options: dict) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """The windows of one UNet call for view-windowed motion modules: ``(frame index, fuse weight)`` per
    window, or ``None`` when one window holds every frame (the motion modules then run unwindowed)."""
    if frames <= options.context_length:
        return None
    sigma = transformer_options.get(OptionKeys.SIGMAS)
    step = 0 if sigma is None else current_step(sigma, transformer_options.get(OptionKeys.SAMPLE_SIGMAS))
    windows = context_windows(frames, options, step)
    return [(torch.tensor(w), weight) for w, weight in zip(windows, fuse_weights(windows, frames, options.fuse_method), strict=True)]


def apply_context_options(model: comfy.model_patcher.ModelPatcher, options: ContextOptions) -> comfy.model_patcher.ModelPatcher:
    """A clone of ``model`` (no motion module: AnimDiffApplyContextOptions) that samples in ``options``' windows.

    Views window only the motion modules, so they are refused here: they come through AnimDiffApplyMotionModule."""
    if options.views:
        raise OptionsError("views window only the motion modules' temporal attention, and this MODEL has no motion module: "
                           "turn views off, or connect the context options to AnimDiffApplyMotionModule")
    windowed = model.clone()
    use_context_windows(windowed, options)
    return windowed
