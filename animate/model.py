"""Animate a ComfyUI MODEL: clone its patcher and wrap its UNet calls with a motion network."""

from __future__ import annotations

import copy
import weakref

import comfy.model_patcher
import comfy.patcher_extension
import torch

from ..errors import BaseModelError, FramesError, NonFiniteError, OptionsError, require_finite
from ..motion_module.injection import motion_injected, placements, sd_unet
from ..motion_module.loader import LoadedMotionModule
from ..motion_module.network import MotionNetwork
from ..sampling.noise import betas
from ..sampling.prompts.cond_frames import use_cond_frame_check
from ..sampling.windows.evaluation import use_context_windows
from ..sampling.windows.params import frames_of_call, video_length
from ..sampling.windows.plan import ContextOptions
from ..touchpoints import OptionKeys, WrapperKeys
from .strength import MotionKeyframe, MotionStrength
from .views import motion_views


class MotionWrapper:
    """ComfyUI ``DIFFUSION_MODEL`` wrapper running the UNet with the motion modules inside.

    Never copied: it references the motion weights, which a deep copy of ``model_options`` (some
    ComfyUI versions make them) must not duplicate. Its one piece of state says which motion network
    runs with which UNet: multi-GPU deep clones (``deepclone_multigpu``) carry their own copy of the
    motion patcher, but every device's UNet call gets the wrappers of the primary model's options.
    """

    def __init__(self, motion_module: LoadedMotionModule, strength: MotionStrength, sigma_start: float, sigma_end: float,
                 views: ContextOptions | None = None):
        self.motion_module = motion_module
        self.strength = strength
        self.sigma_start = sigma_start
        self.sigma_end = sigma_end
        self.views = views  # context options whose windows only the motion modules use
        self.reference = None  # AnimateLCM-I2V's reference image (:mod:`.animatelcm_i2v`), set on a copy by with_reference
        self.running = weakref.WeakKeyDictionary()  # UNet module -> the motion network its patcher runs

    def __deepcopy__(self, memo):
        return self

    def with_reference(self, reference) -> MotionWrapper:
        """A copy with AnimateLCM-I2V's reference image; it shares ``running`` (the ON_PRE_RUN callback fills it)."""
        copied = copy.copy(self)
        copied.reference = reference
        return copied

    def pre_run(self, patcher: comfy.model_patcher.ModelPatcher) -> None:
        """``ON_PRE_RUN`` callback: ComfyUI calls it on every patcher about to sample (a multi-GPU clone
        included), so each UNet runs the motion network of its own patcher's additional models."""
        attached = patcher.get_additional_models_with_key(WrapperKeys.MOTION_MODULE)
        if attached:
            self.running[patcher.model.diffusion_model] = attached[0].model

    def network(self, unet: torch.nn.Module) -> MotionNetwork:
        return self.running.get(unet, self.motion_module.network)

    def in_range(self, sigmas: torch.Tensor | None) -> bool:
        return sigmas is None or self.sigma_end <= float(sigmas.max()) <= self.sigma_start

    def __call__(self, executor, x, timesteps, context, y, control, transformer_options, **kwargs):
        call = lambda: executor(x, timesteps, context, y, control, transformer_options, **kwargs)  # noqa: E731
        videos = len(transformer_options.get(OptionKeys.COND_OR_UNCOND) or [0])
        if x.shape[0] % videos:
            raise FramesError(f"a batch of {x.shape[0]} latents does not split into {videos} videos (conds) of equal length")
        frames = x.shape[0] // videos
        sub_idxs, full_length = frames_of_call(transformer_options, frames)  # also tells other patches the frames
        sigmas = transformer_options.get(OptionKeys.SIGMAS)
        scale = self.strength.at(sigmas, sub_idxs, full_length, videos) if self.in_range(sigmas) else 0.0
        if isinstance(scale, float) and scale == 0.0:
            return call()
        limit = self.motion_module.config.max_frames
        length = video_length(transformer_options, frames)  # several context windows may share the call
        views = motion_views(length, self.views, transformer_options) if self.views else None
        if length > limit and views is None:
            raise FramesError(
                f"{length} frames in one pass, but {self.motion_module.describe()} has positional encodings for at most "
                f"{limit}. Connect AnimDiffContextOptions to AnimDiffApplyMotionModule to sample in windows of {min(16, limit)}."
            )
        network = self.network(executor.class_obj)
        features = self.reference.features(network, x, length, videos, sigmas) if self.reference is not None else None
        with motion_injected(executor.class_obj, network, length, scale, views, features):
            out = call()
        check_finite_output(out, self.motion_module)
        return out


def check_finite_output(out: torch.Tensor, motion_module: LoadedMotionModule) -> None:
    """One fused reduction per UNet call (on the UNet's output, small next to the call itself): NaN or infinite
    values would make every later step, and so the video, black."""
    if not bool(torch.isfinite(out).all()):
        raise NonFiniteError(f"the model with {motion_module.describe()} produced NaN or infinite values: the motion module or a "
                             "MotionLoRA holds weights too large for this precision, or motion_scale is too high")


def apply_motion_module(model: comfy.model_patcher.ModelPatcher, motion_module: LoadedMotionModule, beta_schedule: str,
                        motion_scale: float = 1.0, start_percent: float = 0.0, end_percent: float = 1.0,
                        context_options: ContextOptions | None = None, motion_scale_schedule: str | None = None,
                        motion_scale_mask: torch.Tensor | None = None,
                        keyframes: tuple[MotionKeyframe, ...] = ()) -> comfy.model_patcher.ModelPatcher:
    """A clone of ``model`` that animates its latent batch; ``model`` itself is not changed.

    ``motion_scale_schedule``, ``motion_scale_mask`` and ``keyframes`` vary ``motion_scale`` over
    frames, regions and sampling progress (:mod:`.strength`).

    Everything is checked before the clone is made, so a bad input never yields a half-patched model.
    """
    unet = sd_unet(model)
    family = type(model.model.model_config).__name__
    if unet is None:
        raise BaseModelError(f"{motion_module.name}: motion modules fit SD1.5/SDXL UNets, not a {family} model")
    try:
        placements(unet, motion_module.config)
    except BaseModelError as err:
        raise BaseModelError(f"{motion_module.name}: wrong base model: {motion_module.config.base} motion module ({motion_module.config.version}) "
                             f"on a {family} model; {err.detail}") from None
    if model.get_wrappers(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WrapperKeys.MOTION_MODULE):
        raise OptionsError("this MODEL already has a motion module; apply one per model")
    require_finite(motion_scale=motion_scale, start_percent=start_percent, end_percent=end_percent)
    if not 0.0 <= start_percent <= end_percent <= 1.0:
        raise OptionsError(f"need 0 <= start_percent ({start_percent}) <= end_percent ({end_percent}) <= 1")
    if context_options and context_options.context_length > motion_module.config.max_frames:
        raise OptionsError(f"context_length {context_options.context_length} is longer than {motion_module.describe()} allows; "
                           f"use at most {motion_module.config.max_frames}")

    if context_options and context_options.anchors and context_options.anchors.retained():
        held = context_options.context_length + context_options.anchors.retained()
        if held > motion_module.config.max_frames:
            raise OptionsError(f"anchors sharing latents put {context_options.anchors.retained()} reference frames into each window of "
                               f"{context_options.context_length}: {held} frames, more than {motion_module.describe()} allows "
                               f"({motion_module.config.max_frames}); use fewer frames/indexes on AnimDiffContextAnchors, or share attention")
    schedule = betas.schedule_for(beta_schedule, motion_module.config.version)
    sampling = betas.model_sampling_for(schedule, model.get_model_object("model_sampling"))
    ms = sampling or model.get_model_object("model_sampling")
    strength = MotionStrength(motion_scale, motion_scale_schedule, motion_scale_mask, keyframes or (), ms.percent_to_sigma)
    animated = model.clone()
    if sampling is not None:
        animated.add_object_patch("model_sampling", sampling)
    views = context_options if context_options and context_options.views else None
    wrapper = MotionWrapper(motion_module, strength, ms.percent_to_sigma(start_percent), ms.percent_to_sigma(end_percent), views)
    animated.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WrapperKeys.MOTION_MODULE, wrapper)
    animated.add_callback_with_key(comfy.patcher_extension.CallbacksMP.ON_PRE_RUN, WrapperKeys.MOTION_MODULE, wrapper.pre_run)
    animated.set_additional_models(WrapperKeys.MOTION_MODULE, [motion_module.patcher])
    use_cond_frame_check(animated)
    if context_options and (not views or context_options.draft_start >= 0):  # a draft evaluates its one window
        use_context_windows(animated, context_options)
    return animated
