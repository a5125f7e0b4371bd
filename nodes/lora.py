"""Nodes for MotionLoRA (camera motion) and the v3 domain adapter's alpha."""

from __future__ import annotations

import folder_paths

from ..errors import FileError
from ..image_model.domain_adapter import apply_domain_adapter
from ..motion_module.lora import apply_motion_lora, parse_motion_lora
from ..weight_files import read_state_dict
from .folders import MOTION_LORAS, MOTION_MODELS, resolve
from .motion import CATEGORY

ADAPTER_FOLDERS = (MOTION_MODELS, "loras")


class AnimDiffMotionLoRA:
    DESCRIPTION = ("Adds a MotionLoRA (a learned camera move: zoom, pan, tilt, roll…) to a motion module. Chain several "
                   "nodes to mix moves, each with its own strength. The loaded motion module itself is not changed.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MOTION_MODULE",)
    OUTPUT_TOOLTIPS = ("The motion module with this MotionLoRA (and any earlier ones) applied.",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "motion_module": ("MOTION_MODULE", {"tooltip": "From AnimDiffLoadMotionModule or another AnimDiffMotionLoRA."}),
            "lora_name": (folder_paths.get_filename_list(MOTION_LORAS), {
                "tooltip": "A MotionLoRA in models/animatediff_motion_lora: original v2_lora_*.ckpt, MotionDirector/diffusers "
                           "LoRAs, or this pack's training output."}),
            "strength": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01,
                                   "tooltip": "How strongly the move is applied; 0 = not at all, negative reverses it."}),
        }}

    def apply(self, motion_module, lora_name, strength):
        path = resolve(MOTION_LORAS, lora_name)
        return (apply_motion_lora(motion_module, parse_motion_lora(read_state_dict(path), path.name), path.name, strength),)


class AnimDiffDomainAdapter:
    DESCRIPTION = ("Applies AnimateDiff v3's domain adapter (v3_sd15_adapter.ckpt), a LoRA on the image model fitted to "
                   "the look of the motion module's training videos. alpha 1 reproduces the training setup; lower it "
                   "(0 removes it) for cleaner images from your own checkpoint.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("The model with the adapter at weight alpha.",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        names = sorted({n for folder in ADAPTER_FOLDERS for n in folder_paths.get_filename_list(folder)})
        return {"required": {
            "model": ("MODEL", {"tooltip": "The SD1.5 model (before or after AnimDiffApplyMotionModule)."}),
            "adapter_name": (names, {"tooltip": "The domain adapter file, from models/animatediff_models or models/loras."}),
            "alpha": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01,
                                "tooltip": "Adapter weight: 1 as trained, 0 removes it exactly, negatives push away from the video look."}),
        }}

    def apply(self, model, adapter_name, alpha):
        path = None
        for folder in ADAPTER_FOLDERS:
            try:
                path = resolve(folder, adapter_name)
                break
            except FileError:
                continue
        if path is None:
            raise FileError(adapter_name, f"not found in the {' or '.join(ADAPTER_FOLDERS)} folders")
        return (apply_domain_adapter(model, read_state_dict(path), path.name, alpha),)


NODES = [AnimDiffMotionLoRA, AnimDiffDomainAdapter]
DISPLAY_NAMES = {
    "AnimDiffMotionLoRA": "MotionLoRA (AnimDiff)",
    "AnimDiffDomainAdapter": "Domain Adapter (AnimDiff)",
}
