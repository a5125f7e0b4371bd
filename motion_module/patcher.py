"""Animate a ComfyUI MODEL: clone its patcher and wrap its UNet calls with a motion model."""

from __future__ import annotations

import comfy.model_patcher
import comfy.patcher_extension
import torch

from ..errors import BaseModelError, FramesError, NonFiniteError, OptionsError
from ..sampling import schedules
from ..sampling.context import ContextOptions
from ..sampling.windowed import use_context_windows
from .injection import motion_injected, placements
from .loader import LoadedMotionModule

KEY = "animdiff"


class MotionWrapper:
    """ComfyUI ``DIFFUSION_MODEL`` wrapper running the UNet with the motion modules inside.

    Immutable, and never copied: it references the motion weights, which a deep copy of
    ``model_options`` (some ComfyUI versions make them) must not duplicate.
    """

    def __init__(self, motion: LoadedMotionModule, scale: float, sigma_start: float, sigma_end: float):
        self.motion = motion
        self.scale = scale
        self.sigma_start = sigma_start
        self.sigma_end = sigma_end

    def __deepcopy__(self, memo):
        return self

    def active(self, sigmas: torch.Tensor | None) -> bool:
        if self.scale == 0.0:
            return False
        if sigmas is None:
            return True
        sigma = float(sigmas.max())
        return self.sigma_end <= sigma <= self.sigma_start

    def __call__(self, executor, x, timesteps, context, y, control, transformer_options, **kwargs):
        call = lambda: executor(x, timesteps, context, y, control, transformer_options, **kwargs)  # noqa: E731
        if not self.active(transformer_options.get("sigmas")):
            return call()
        videos = len(transformer_options.get("cond_or_uncond") or [0])
        if x.shape[0] % videos:
            raise FramesError(f"a batch of {x.shape[0]} latents does not split into {videos} videos (conds) of equal length")
        frames = x.shape[0] // videos
        limit = self.motion.config.max_frames
        if frames > limit:
            raise FramesError(
                f"{frames} frames in one pass, but {self.motion.describe()} has positional encodings for at most "
                f"{limit}. Connect AnimDiffContextOptions to AnimDiffApplyMotionModule to sample in windows of {min(16, limit)}."
            )
        with motion_injected(executor.class_obj, self.motion.model, frames, self.scale):
            out = call()
        check_finite_output(out, self.motion)
        return out


def check_finite_output(out: torch.Tensor, motion: LoadedMotionModule) -> None:
    """One fused reduction per UNet call (on the UNet's output, small next to the call itself): NaN or infinite
    values would make every later step, and so the video, black."""
    if not bool(torch.isfinite(out).all()):
        raise NonFiniteError(f"the model with {motion.describe()} produced NaN or infinite values: the motion module or a "
                             "MotionLoRA holds weights too large for this precision, or motion_scale is too high")


def apply_motion_module(model: comfy.model_patcher.ModelPatcher, motion: LoadedMotionModule, beta_schedule: str,
                        motion_scale: float = 1.0, start_percent: float = 0.0, end_percent: float = 1.0,
                        context_options: ContextOptions | None = None) -> comfy.model_patcher.ModelPatcher:
    """A clone of ``model`` that animates its latent batch; ``model`` itself is not changed.

    Everything is checked before the clone is made, so a bad input never yields a half-patched model.
    """
    unet = getattr(model.model, "diffusion_model", None)
    family = type(model.model.model_config).__name__
    if not hasattr(unet, "input_blocks"):
        raise BaseModelError(f"{motion.name}: motion modules fit SD1.5/SDXL UNets, not a {family} model")
    try:
        placements(unet, motion.config)
    except BaseModelError as err:
        raise BaseModelError(f"{motion.name}: wrong base model: {motion.config.base} motion module ({motion.config.version}) "
                             f"on a {family} model; {err.detail}") from None
    if model.get_wrappers(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, KEY):
        raise OptionsError("this MODEL already has a motion module; apply one per model")
    if not 0.0 <= start_percent <= end_percent <= 1.0:
        raise OptionsError(f"need 0 <= start_percent ({start_percent}) <= end_percent ({end_percent}) <= 1")
    if context_options and context_options.context_length > motion.config.max_frames:
        raise OptionsError(f"context_length {context_options.context_length} is longer than {motion.describe()} allows; "
                           f"use at most {motion.config.max_frames}")

    schedule = schedules.resolve(beta_schedule, motion.config.version)
    sampling = schedules.model_sampling_for(schedule, model.get_model_object("model_sampling"))
    animated = model.clone()
    if sampling is not None:
        animated.add_object_patch("model_sampling", sampling)
    ms = animated.get_model_object("model_sampling")
    wrapper = MotionWrapper(motion, motion_scale, ms.percent_to_sigma(start_percent), ms.percent_to_sigma(end_percent))
    animated.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, KEY, wrapper)
    animated.set_additional_models(KEY, [motion.patcher])
    if context_options:
        use_context_windows(animated, context_options)
    return animated
