"""PIA image-to-video: an animated MODEL whose UNet input also takes a still's latent and a per-frame affinity.

For a video of ``F`` frames and frame ``f`` (PIA, ``I2VPipeline`` / diffusers' ``prepare_masked_condition``)::

    affinity[f]  = preset[|f - cond_frame|] * strength * schedule[f]     (the preset's last value past its end)
    condition[f] = cat([affinity[f] (1 channel), image_latent[f] (4 channels)])   -> (b f) 5 h w

``image_latent`` is the image's VAE latent in the model's latent scale (one image for every frame, or one per frame);
the condition goes through PIA's input conv (:mod:`..motion_module.image_input`). A call on a context window (or on
several) takes its own frames' affinities and images (``ad_params["sub_idxs"]``), so each window is conditioned as
the whole video is.

The presets are the original code's ``RANGE_LIST`` (``animatediff/utils/util.py``), by the names AnimateDiff-Evolved
gives them; the loop presets are 16 values long (the paper's 16 frames) and, as in the original, continue with
their last value beyond.
"""

from __future__ import annotations

import comfy.model_patcher
import comfy.patcher_extension
import torch
import torch.nn.functional as F
from einops import repeat

from ..errors import FramesError, OptionsError, finite, require_finite
from ..motion_module.image_input import check_image_input, image_input_injected
from ..motion_module.injection import sd_unet
from ..sampling.prompts.frames import frame_values, parse_numbers
from ..sampling.windows.params import frames_of_call
from ..touchpoints import OptionKeys, WrapperKeys

PRESETS: dict[str, list[float]] = {
    "Animation (Small Motion)": [1.0, 0.9, 0.85, 0.85, 0.85, 0.8],
    "Animation (Medium Motion)": [1.0, 0.8, 0.8, 0.8, 0.79, 0.78, 0.75],
    "Animation (Large Motion)": [1.0, 0.8, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.6, 0.5, 0.5],
    "Loop (Small Motion)": [1.0, 0.9, 0.85, 0.85, 0.85, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.85, 0.85, 0.9, 1.0],
    "Loop (Medium Motion)": [1.0, 0.8, 0.8, 0.8, 0.79, 0.78, 0.75, 0.75, 0.75, 0.75, 0.75, 0.78, 0.79, 0.8, 0.8, 1.0],
    "Loop (Large Motion)": [1.0, 0.8, 0.7, 0.7, 0.7, 0.7, 0.6, 0.5, 0.5, 0.6, 0.7, 0.7, 0.7, 0.7, 0.8, 1.0],
    "Style Transfer (Small Motion)": [0.5, 0.4, 0.4, 0.4, 0.35, 0.3],
    "Style Transfer (Medium Motion)": [0.5, 0.4, 0.4, 0.4, 0.35, 0.35, 0.3, 0.25, 0.2],
    "Style Transfer (Large Motion)": [0.5, 0.2],
    "Constant (strength and schedule only)": [1.0],
}


def preset_affinity(preset: str, frames: int, cond_frame: int) -> torch.Tensor:
    """The preset's affinity per frame ``(frames,)``, centred on ``cond_frame`` (negative: from the end), as the
    original ``prepare_mask_coef_by_statistics``."""
    if preset not in PRESETS:
        raise OptionsError(f"unknown PIA preset {preset!r}; choose one of {', '.join(PRESETS)}")
    index = cond_frame + frames if cond_frame < 0 else cond_frame
    if not 0 <= index < frames:
        raise FramesError(f"cond_frame {cond_frame} is outside the video's {frames} frames")
    values = PRESETS[preset]
    return torch.tensor([values[min(abs(f - index), len(values) - 1)] for f in range(frames)], dtype=torch.float32)


class PIACondition:
    """The still (or stills) and the affinity plan; ``condition`` gives one UNet call's ``(b f) 5 h w``."""

    def __init__(self, latents: torch.Tensor, preset: str, cond_frame: int = 0, strength: float = 1.0, schedule: str = ""):
        if not bool(torch.isfinite(latents).all()):
            raise OptionsError("image: its latent holds NaN or infinite values")
        self.latents = latents.float().cpu()  # n 4 H W in the model's latent scale, n = 1 or the video's frames
        preset_affinity(preset, 1, 0)  # an unknown preset is refused here, when the node runs
        self.preset, self.cond_frame = preset, int(cond_frame)
        self.strength = finite(strength, "strength")
        self.schedule = parse_numbers(schedule) if schedule and schedule.strip() else None
        self.affinities: dict[int, torch.Tensor] = {}  # full_length -> (full_length,)

    def affinity(self, full_length: int) -> torch.Tensor:
        if full_length not in self.affinities:
            values = preset_affinity(self.preset, full_length, self.cond_frame) * self.strength
            if self.schedule is not None:
                values = values * frame_values(self.schedule, full_length)
            self.affinities[full_length] = values
        return self.affinities[full_length]

    def condition(self, sub_idxs: list[int], full_length: int, videos: int, size: tuple[int, int]) -> torch.Tensor:
        """The condition of a call on ``videos`` videos (conds) of frames ``sub_idxs`` of ``full_length``, at latent
        ``size``: ``(videos frames) 5 h w``, float32 on the CPU."""
        count = self.latents.shape[0]
        if count not in (1, full_length):
            raise FramesError(f"image: a batch of {count} images for a {full_length}-frame video; give one image (for every "
                              f"frame) or {full_length}, one per frame")
        index = torch.tensor(sub_idxs)
        latents = self.latents if count == 1 else self.latents[index]  # 1|f 4 H W
        if tuple(latents.shape[-2:]) != tuple(size):
            latents = F.interpolate(latents, size=size, mode="bilinear", align_corners=False)
        latents = latents.expand(len(sub_idxs), -1, -1, -1)  # f 4 h w
        affinity = repeat(self.affinity(full_length)[index], "f -> f 1 h w", h=size[0], w=size[1])
        return repeat(torch.cat([affinity, latents], dim=1), "f c h w -> (v f) c h w", v=videos)


class PIAWrapper:
    """ComfyUI ``DIFFUSION_MODEL`` wrapper: the UNet call with PIA's image input for the call's frames."""

    def __init__(self, motion, condition: PIACondition):
        self.motion = motion  # the model's MotionWrapper: which motion network runs with which UNet
        self.condition = condition

    def __deepcopy__(self, memo):
        return self

    def __call__(self, executor, x, timesteps, context, y, control, transformer_options, **kwargs):
        videos = len(transformer_options.get(OptionKeys.COND_OR_UNCOND) or [0])
        if x.shape[0] % videos:
            raise FramesError(f"a batch of {x.shape[0]} latents does not split into {videos} videos (conds) of equal length")
        sub_idxs, full_length = frames_of_call(transformer_options, x.shape[0] // videos)
        condition = self.condition.condition(sub_idxs, full_length, videos, tuple(x.shape[-2:]))
        unet = executor.class_obj
        with image_input_injected(unet, self.motion.network(unet), condition):
            return executor(x, timesteps, context, y, control, transformer_options, **kwargs)


def apply_pia(model: comfy.model_patcher.ModelPatcher, vae, image: torch.Tensor, preset: str, cond_frame: int = 0,
              strength: float = 1.0, schedule: str = "") -> comfy.model_patcher.ModelPatcher:
    """A clone of the animated ``model`` (its motion module PIA's) conditioned on ``image`` ``(n, H, W, C)`` encoded by
    ``vae``; everything is checked before the image is encoded and the clone made."""
    require_finite(cond_frame=cond_frame, strength=strength)
    wrappers = model.get_wrappers(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WrapperKeys.MOTION_MODULE)
    if not wrappers:
        raise OptionsError("model: PIA needs an animated MODEL: connect AnimDiffApplyMotionModule (with PIA's motion module) first")
    if model.get_wrappers(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WrapperKeys.PIA):
        raise OptionsError("model: this MODEL already has a PIA image; apply one per model")
    motion = wrappers[0]
    check_image_input(sd_unet(model), motion.motion_module.network, motion.motion_module.name)
    PIACondition(torch.zeros(1, 4, 1, 1), preset, cond_frame, strength, schedule)  # the preset and schedule, before encoding
    latents = encode_images(vae, model, image)
    if latents.ndim != 4 or latents.shape[1] != 4:
        raise OptionsError(f"image: PIA takes a 4-channel latent per image, the VAE gave {list(latents.shape)}")
    condition = PIACondition(latents, preset, cond_frame, strength, schedule)
    pia = model.clone()
    pia.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WrapperKeys.PIA, PIAWrapper(motion, condition))
    return pia


def encode_images(vae, model: comfy.model_patcher.ModelPatcher, image: torch.Tensor) -> torch.Tensor:
    """``image`` ``(n, H, W, C)`` in [0, 1] -> its latents ``n 4 h w`` in ``model``'s latent scale (PIA's ``x 0.18215``)."""
    if image.ndim != 4 or image.shape[0] < 1:
        raise OptionsError(f"image: expected an IMAGE batch (n, height, width, channels), got shape {list(image.shape)}")
    if not bool(torch.isfinite(image).all()):
        raise OptionsError("image: holds NaN or infinite values")
    return model.get_model_object("latent_format").process_in(vae.encode(image[..., :3]))
