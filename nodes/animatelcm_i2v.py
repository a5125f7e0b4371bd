"""AnimateLCM-I2V: a reference image's features added into the motion modules of an AnimateLCM-I2V model."""

from __future__ import annotations

from ..animate.animatelcm_i2v import apply_animatelcm_i2v
from .motion import CATEGORY


class AnimDiffApplyAnimateLCMI2V:
    DESCRIPTION = ("AnimateLCM-I2V image-to-video for 4-8 step sampling: the reference image's latent goes through the motion "
                   "module's image encoder, whose features are added into the UNet's down levels before their motion modules. "
                   "Connect a MODEL animated with AnimateLCM_sd15_i2v.ckpt (beta_schedule autoselect: lcm) and a VAE Encode of "
                   "the image; sample with the lcm sampler (sgm_uniform, cfg 1-2). Works in context windows.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("The animated model with the reference image, for any stock sampler.",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "From AnimDiffApplyMotionModule with AnimateLCM-I2V's motion module (AnimateLCM_sd15_i2v.ckpt)."}),
                "ref_latent": ("LATENT", {"tooltip": "The reference image, VAE-encoded (one image); resized to the latent batch's size."}),
                "ref_drift": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 10.0, "step": 0.001,
                                        "tooltip": "How much each frame's encoding may drift from the reference (the original's "
                                                   "motion_scale): the frame position's encoding, times this, is added to the image's."}),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01,
                                       "tooltip": "Multiplies the image features added to the UNet: 0 is the plain AnimateLCM video."}),
                "start_percent": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001,
                                            "tooltip": "Where in sampling the reference starts acting (0 = first step)."}),
                "end_percent": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001,
                                          "tooltip": "Where in sampling it stops acting (1 = last step)."}),
            },
        }

    def apply(self, model, ref_latent, ref_drift, strength, start_percent, end_percent):
        return (apply_animatelcm_i2v(model, ref_latent, ref_drift, strength, start_percent, end_percent),)


NODES = [AnimDiffApplyAnimateLCMI2V]
DISPLAY_NAMES = {"AnimDiffApplyAnimateLCMI2V": "Apply AnimateLCM-I2V Image (AnimDiff)"}
