"""The node that loads a SparseCtrl file as a CONTROL_NET for the stock Apply ControlNet node."""

from __future__ import annotations

import folder_paths

from ..sparsectrl import load_sparsectrl
from .folders import resolve

CATEGORY = "AnimDiff"
CONTROLNETS = "controlnet"  # ComfyUI's folder, where users keep the SparseCtrl files


class AnimDiffLoadSparseCtrl:
    DESCRIPTION = ("Loads a SparseCtrl encoder (AnimateDiff v3's v3_sd15_sparsectrl_rgb / _scribble, or a diffusers "
                   "SparseControlNetModel) from models/controlnet. Connect it to the stock Apply ControlNet node: its images are "
                   "the keyframes, in order. RGB keyframes are encoded with the VAE connected there (required); scribbles "
                   "(white lines on black) are used as they are. Frames without a keyframe are steered through the motion modules.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("CONTROL_NET",)
    OUTPUT_TOOLTIPS = ("The SparseCtrl control for Apply ControlNet (Advanced): strength, start/end percent and context windows work as usual.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "sparsectrl_name": (folder_paths.get_filename_list(CONTROLNETS), {
                    "tooltip": "A SparseCtrl file in models/controlnet; the rgb or scribble kind is read from the weights."}),
                "frame_indices": ("STRING", {
                    "default": "",
                    "tooltip": "The video frame of each keyframe image, in order, counted from 0: '0' (image-to-video), '0,8,15'. "
                               "Empty: the images are spread evenly from the first to the last frame."}),
            },
        }

    def load(self, sparsectrl_name, frame_indices):
        return (load_sparsectrl(resolve(CONTROLNETS, sparsectrl_name), frame_indices),)


NODES = [AnimDiffLoadSparseCtrl]
DISPLAY_NAMES = {"AnimDiffLoadSparseCtrl": "Load SparseCtrl (AnimDiff)"}
