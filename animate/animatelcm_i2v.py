"""AnimateLCM-I2V: an animated MODEL whose motion modules also get a reference image's features.

For each UNet call in which the reference acts (``start_percent`` to ``end_percent`` of sampling) and the motion
module runs, the motion network's image encoder (:mod:`..motion_module.image_encoder`) turns the reference latent into
one feature per down level for a video of the call's window length ``L`` (frame positions ``0 .. L-1``, as the
original encodes the frames of the sample it is given), and ::

    h = resnet (+ attention) of the level's second layer;   h = h + strength * feature[level];   h = motion_module(h)

A call holding several windows, or the cond and uncond videos, gets the same features for each (one reference image).
"""

from __future__ import annotations

import comfy.model_patcher
import comfy.patcher_extension
import torch
import torch.nn.functional as F
from einops import repeat

from ..errors import BaseModelError, OptionsError, require_finite
from ..touchpoints import WrapperKeys

FEATURE_MODULE = 1  # the feature of down level i goes in before motion module i.1 (after the level's second resnet)


class ImageReference:
    """The reference latent ``1 4 H W`` (the model's latent scale), its drift and strength, and where in sampling it acts."""

    def __init__(self, latent: torch.Tensor, drift: float, strength: float, sigma_start: float, sigma_end: float):
        self.latent = latent.float().cpu()
        self.drift, self.strength = float(drift), float(strength)
        self.sigma_start, self.sigma_end = sigma_start, sigma_end

    def features(self, network, x: torch.Tensor, length: int, videos: int, sigmas: torch.Tensor | None) -> dict | None:
        """Motion-module key -> the feature added before it, ``(videos windows length) c h w`` (v n f); None out of range."""
        if sigmas is not None and not self.sigma_end <= float(sigmas.max()) <= self.sigma_start:
            return None
        windows = x.shape[0] // (videos * length)
        latent = self.latent
        if tuple(latent.shape[-2:]) != tuple(x.shape[-2:]):
            latent = F.interpolate(latent, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
        features = network.img_encoder(latent.to(device=x.device, dtype=x.dtype), length, self.drift)  # each (1 length) c h w
        return {f"down_blocks.{level}.motion_modules.{FEATURE_MODULE}":
                self.strength * repeat(feature, "f c h w -> (v n f) c h w", v=videos, n=windows)
                for level, feature in enumerate(features)}


def apply_animatelcm_i2v(model: comfy.model_patcher.ModelPatcher, ref_latent: dict, drift: float = 0.0, strength: float = 1.0,
                         start_percent: float = 0.0, end_percent: float = 1.0) -> comfy.model_patcher.ModelPatcher:
    """A clone of the animated ``model`` (its motion module AnimateLCM-I2V's) with ``ref_latent`` (a LATENT, one image) as
    the reference; everything is checked before the clone is made."""
    require_finite(ref_drift=drift, strength=strength, start_percent=start_percent, end_percent=end_percent)
    if not 0.0 <= start_percent <= end_percent <= 1.0:
        raise OptionsError(f"need 0 <= start_percent ({start_percent}) <= end_percent ({end_percent}) <= 1")
    kind = comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL
    wrappers = model.get_wrappers(kind, WrapperKeys.MOTION_MODULE)
    if not wrappers:
        raise OptionsError("model: AnimateLCM-I2V needs an animated MODEL: connect AnimDiffApplyMotionModule (with "
                           "AnimateLCM_sd15_i2v.ckpt) first")
    motion = wrappers[0]
    if motion.motion_module.network.img_encoder is None:
        raise BaseModelError(f"{motion.motion_module.name}: a {motion.motion_module.config.version} motion module has no image "
                             "encoder (img_encoder); load AnimateLCM_sd15_i2v.ckpt for AnimateLCM-I2V")
    if motion.reference is not None:
        raise OptionsError("model: this MODEL already has an AnimateLCM-I2V reference; apply one per model")
    samples = ref_latent.get("samples") if isinstance(ref_latent, dict) else None
    if samples is None or samples.ndim != 4 or samples.shape[0] != 1 or samples.shape[1] != 4:
        shape = list(samples.shape) if samples is not None else type(ref_latent).__name__
        raise OptionsError(f"ref_latent: one SD1.5 latent (1, 4, h, w) of the reference image (VAE Encode of one image), got {shape}")
    if not bool(torch.isfinite(samples).all()):
        raise OptionsError("ref_latent: holds NaN or infinite values")
    latent = model.get_model_object("latent_format").process_in(samples)
    ms = model.get_model_object("model_sampling")
    reference = ImageReference(latent, drift, strength, ms.percent_to_sigma(start_percent), ms.percent_to_sigma(end_percent))
    animated = model.clone()
    animated.remove_wrappers_with_key(kind, WrapperKeys.MOTION_MODULE)
    animated.add_wrapper_with_key(kind, WrapperKeys.MOTION_MODULE, motion.with_reference(reference))
    return animated
