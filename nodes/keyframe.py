"""Keyframes over sampling progress: motion strength that changes during sampling."""

from __future__ import annotations

from ..animate.strength import MotionKeyframe, add_keyframe
from .motion import CATEGORY


class AnimDiffMotionKeyframe:
    DESCRIPTION = ("A keyframe over sampling progress: from start_percent on, the motion module's scale is multiplied by "
                   "scale_multiplier (until the next keyframe). Chain keyframes through prev_keyframes and connect the last "
                   "to AnimDiffApplyMotionModule's keyframes input. One keyframe at 0 with multiplier 1 is the same as none.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MOTION_KEYFRAMES",)
    OUTPUT_TOOLTIPS = ("This keyframe and the earlier ones in the chain, sorted by start_percent.",)
    FUNCTION = "keyframe"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "start_percent": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001,
                                            "tooltip": "Where in sampling this keyframe takes over (0 = first step, 0.5 = half way)."}),
                "scale_multiplier": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01,
                                               "tooltip": "Multiplies motion_scale (and its schedule and mask) from start_percent on; "
                                                          "0 turns the motion module off (exactly the plain model)."}),
            },
            "optional": {
                "prev_keyframes": ("MOTION_KEYFRAMES", {"tooltip": "Earlier keyframes to chain with; one at the same start_percent is replaced."}),
            },
        }

    def keyframe(self, start_percent, scale_multiplier, prev_keyframes=None):
        return (add_keyframe(prev_keyframes, MotionKeyframe(start_percent, scale_multiplier)),)


NODES = [AnimDiffMotionKeyframe]
DISPLAY_NAMES = {"AnimDiffMotionKeyframe": "Motion Keyframe (AnimDiff)"}
