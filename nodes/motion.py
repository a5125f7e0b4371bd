"""Nodes that load a motion module and put it into a MODEL."""

from __future__ import annotations

import folder_paths

from ..animate.model import apply_motion_module
from ..motion_module import VERSIONS, load_motion_module
from ..sampling.noise.betas import AUTOSELECT, BETA_SCHEDULES
from .folders import MOTION_MODELS, resolve

CATEGORY = "AnimDiff"


class AnimDiffLoadMotionModule:
    DESCRIPTION = ("Loads an AnimateDiff motion module (v1, v2, v3, SDXL, HotshotXL, AnimateLCM, Lightning, or a diffusers "
                   "MotionAdapter) from models/animatediff_models. The layout is read from the weights, never the file name.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MOTION_MODULE",)
    OUTPUT_TOOLTIPS = ("The motion module, with its detected version, base model (SD1.5/SDXL) and frames per window.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model_name": (folder_paths.get_filename_list(MOTION_MODELS), {
                    "tooltip": "A motion-module file in models/animatediff_models (.safetensors preferred; .ckpt/.pt/.pth load as weights only)."}),
            },
            "optional": {
                "version": (["auto", *VERSIONS], {
                    "default": "auto",
                    "tooltip": "Only for files without positional-encoding buffers, where the weights cannot tell: "
                               "v1 and v3 share a layout but v1 normalises the image model over all frames. 'auto' guesses."}),
            },
        }

    def load(self, model_name, version="auto"):
        return (load_motion_module(resolve(MOTION_MODELS, model_name), version),)


class AnimDiffApplyMotionModule:
    DESCRIPTION = ("Animates a Stable Diffusion MODEL: the latent batch becomes the frames of one video and the motion module "
                   "attends across them. Returns a patched copy; the input MODEL stays a plain image model.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("The animated model, for any stock sampler. A latent batch of up to 16 frames, or any length with context options.",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The SD1.5 or SDXL model to animate (the motion module's base must match)."}),
                "motion_module": ("MOTION_MODULE", {"tooltip": "From AnimDiffLoadMotionModule (optionally through AnimDiffMotionLoRA)."}),
                "beta_schedule": (BETA_SCHEDULES, {
                    "default": AUTOSELECT,
                    "tooltip": "Noise schedule. autoselect: the one the module was trained with (sqrt_linear for SD1.5 modules, "
                               "linear 0.00085-0.020 for AnimateDiff-SDXL, the SDXL model's own for HotshotXL, lcm for AnimateLCM). "
                               "'use model's own' keeps the checkpoint's."}),
                "motion_scale": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01,
                                           "tooltip": "Multiplies the temporal residual: 0 gives exactly the plain model, >1 more motion."}),
                "start_percent": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001,
                                            "tooltip": "Where in sampling the motion module starts acting (0 = first step)."}),
                "end_percent": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001,
                                          "tooltip": "Where in sampling it stops acting (1 = last step)."}),
            },
            "optional": {
                "context_options": ("CONTEXT_OPTIONS", {
                    "tooltip": "From AnimDiffContextOptions: sample videos longer than one window (any length) in blended 16-frame windows."}),
                # a socket (forceInput), not a widget: workflows saved before this input keep their widget values
                "motion_scale_schedule": ("STRING", {"forceInput": True,
                                                     "tooltip": "Per-frame multiplier of motion_scale from a text node (e.g. String), such as "
                                                                "'0:1.0, 8:0.3' (FRAME:VALUE, linear between keys, negative frames from the end). "
                                                                "Not connected or empty: 1 for every frame."}),
                "motion_scale_mask": ("MASK", {"tooltip": "Per-region multiplier of motion_scale: one mask for all frames or one per frame "
                                                          "(resized to each UNet level). Black areas stay still, white move fully."}),
                "keyframes": ("MOTION_KEYFRAMES", {"tooltip": "From AnimDiffMotionKeyframe: change the motion strength at chosen points of sampling."}),
            },
        }

    def apply(self, model, motion_module, beta_schedule, motion_scale, start_percent, end_percent, context_options=None,
              motion_scale_schedule="", motion_scale_mask=None, keyframes=None):
        return (apply_motion_module(model, motion_module, beta_schedule, motion_scale, start_percent, end_percent, context_options,
                                    motion_scale_schedule, motion_scale_mask, keyframes or ()),)


NODES = [AnimDiffLoadMotionModule, AnimDiffApplyMotionModule]
DISPLAY_NAMES = {
    "AnimDiffLoadMotionModule": "Load Motion Module (AnimDiff)",
    "AnimDiffApplyMotionModule": "Apply Motion Module (AnimDiff)",
}
