"""Prompt travel: a per-frame CONDITIONING from a keyframed prompt schedule."""

from __future__ import annotations

from ..sampling.prompts.frames import INTERPOLATIONS
from ..sampling.prompts.schedule import prompt_schedule
from .motion import CATEGORY

EXAMPLE = '0: a cat on a sofa\n16: a cat jumping\n32: a dog on a sofa\n-1: an empty sofa'


class AnimDiffPromptSchedule:
    DESCRIPTION = ("Prompt travel: one prompt per keyframe (FRAME: prompt, one per line; \"0\": \"...\" and 8 = \"...\" also "
                   "work, negative frames count from the end). Each frame gets its own text embedding, blended between "
                   "keyframes (linear) or held (hold). Use it as the positive input of any sampler, with or without "
                   "context windows; set frames to the latent batch size.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("CONDITIONING",)
    OUTPUT_TOOLTIPS = ("One conditioning entry with one embedding (and SDXL pooled output) per frame.",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "clip": ("CLIP", {"tooltip": "The text encoder (from the checkpoint loader); prompts are encoded as by CLIPTextEncode."}),
                "text": ("STRING", {"multiline": True, "default": EXAMPLE,
                                    "tooltip": "One keyframe per line: FRAME: prompt. Frames before the first keyframe take its prompt, "
                                               "frames after the last the last prompt. (word:1.2) weights and embeddings work."}),
                "frames": ("INT", {"default": 16, "min": 1, "max": 100000,
                                   "tooltip": "Length of the video: the batch size of the latent you sample."}),
            },
            "optional": {
                "pre_text": ("STRING", {"multiline": True, "default": "",
                                        "tooltip": "Put before every keyframe's prompt (joined with ', ')."}),
                "app_text": ("STRING", {"multiline": True, "default": "",
                                        "tooltip": "Appended to every keyframe's prompt (joined with ', ')."}),
                "interpolation": (list(INTERPOLATIONS), {"default": "linear",
                                                   "tooltip": "linear: frames between two keyframes blend their embeddings by position. "
                                                              "hold: each frame takes the last keyframe at or before it."}),
            },
        }

    def encode(self, clip, text, frames, pre_text="", app_text="", interpolation="linear"):
        return (prompt_schedule(clip, text, frames, pre_text, app_text, interpolation),)


NODES = [AnimDiffPromptSchedule]
DISPLAY_NAMES = {"AnimDiffPromptSchedule": "Prompt Schedule (AnimDiff)"}
