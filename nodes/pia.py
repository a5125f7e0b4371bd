"""PIA image-to-video: a still (or one per frame) fed into the animated UNet's input, with the paper's motion presets."""

from __future__ import annotations

from ..animate.pia import PRESETS, apply_pia
from .motion import CATEGORY


class AnimDiffApplyPIA:
    DESCRIPTION = ("PIA (Personalized Image Animator) image-to-video: every frame's UNet input also gets the image's latent and "
                   "an affinity (how much the frame keeps of the image), through PIA's 9-channel input conv. Connect a MODEL "
                   "animated with PIA's motion module (pia.ckpt in models/animatediff_models). The presets are the paper's: "
                   "animation (small/medium/large motion), loops and style transfer. Works with context windows (each window "
                   "gets its own frames' affinity and image), MotionLoRA, prompt travel and SparseCtrl.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("The animated model conditioned on the image, for any stock sampler (start from an empty latent batch).",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "From AnimDiffApplyMotionModule with PIA's motion module (pia.ckpt) on an SD1.5 model."}),
                "vae": ("VAE", {"tooltip": "Encodes the image (the checkpoint's VAE)."}),
                "image": ("IMAGE", {"tooltip": "The still to animate (one image, used for every frame), or one image per frame. "
                                               "Best at the video's size; its latent is resized to the latent batch's size."}),
                "preset": (list(PRESETS), {"default": "Animation (Medium Motion)",
                                           "tooltip": "The paper's affinity per frame, by distance from cond_frame: more motion "
                                                      "= lower affinity. Loops return to the image at frame 15 (16-frame presets); "
                                                      "style transfer keeps less of the image. Constant: 1 for every frame."}),
                "cond_frame": ("INT", {"default": 0, "min": -10000, "max": 10000,
                                       "tooltip": "The frame that shows the image (affinities fall off from it); negative counts from the end."}),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01,
                                       "tooltip": "Multiplies every frame's affinity: lower moves further from the image."}),
            },
            "optional": {
                "strength_schedule": ("STRING", {"forceInput": True,
                                                 "tooltip": "Per-frame multiplier of the affinity from a text node, such as "
                                                            "'0:1.0, 15:0.5' (FRAME:VALUE, linear between keys, negative frames from "
                                                            "the end). Not connected or empty: 1 for every frame."}),
            },
        }

    def apply(self, model, vae, image, preset, cond_frame, strength, strength_schedule=""):
        return (apply_pia(model, vae, image, preset, cond_frame, strength, strength_schedule),)


NODES = [AnimDiffApplyPIA]
DISPLAY_NAMES = {"AnimDiffApplyPIA": "Apply PIA Image (AnimDiff)"}
