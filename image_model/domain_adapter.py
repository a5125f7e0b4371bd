"""The v3 domain adapter: a LoRA on the image model's attention, ``Q = W z + alpha * up @ down z``.

ComfyUI's own LoRA machinery already reads this file's key format (diffusers processor names)
with the original's math, so the adapter is applied through it: as weight patches on a clone
of the MODEL, computed once per load. This module adds the checks: the file must be a domain
adapter, every one of its layers must land on the model, and ``alpha`` 0 removes it exactly.
"""

from __future__ import annotations

import re

import comfy.lora
import comfy.model_patcher
import torch

from ..errors import FileError, finite
from ..motion_module.layout import MODULE_KEY, to_original_keys
from ..weight_files import check_floating

ADAPTER_KEY = re.compile(r"^(?:unet\.)?(?P<layer>(?:down_blocks|up_blocks)\.\d+\.attentions\.\d+|mid_block\.attentions\.\d+)"
                         r"\.transformer_blocks\.\d+\.attn[12]\.processor\.to_(?:q|k|v|out)_lora\.(?:down|up)\.weight$")


def check_domain_adapter(state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Raise a clear error unless ``state_dict`` is an image-model attention LoRA (the v3 adapter layout)."""
    if any(MODULE_KEY.match(k) for k in to_original_keys(state_dict)[0]):
        raise FileError(source, "this is a motion module (or MotionLoRA), not a domain adapter; "
                                           "load it with AnimDiffLoadMotionModule / AnimDiffMotionLoRA")
    if not any(ADAPTER_KEY.match(k) for k in state_dict):
        raise FileError(source, "not a domain adapter: no image-model attention LoRA "
                                           "(…attentions.N.transformer_blocks.N.attnX.processor.to_q_lora.down.weight) found")
    check_floating(state_dict, source)


def apply_domain_adapter(model: comfy.model_patcher.ModelPatcher, state_dict: dict[str, torch.Tensor], source: str,
                         alpha: float) -> comfy.model_patcher.ModelPatcher:
    """A clone of ``model`` with the adapter at weight ``alpha`` (0: the model unchanged)."""
    finite(alpha, "alpha")
    check_domain_adapter(state_dict, source)
    patched = model.clone()
    if alpha == 0.0:
        return patched
    key_map = comfy.lora.model_lora_keys_unet(model.model, {})
    layers = {k.rsplit("_lora.", 1)[0] for k in state_dict if "_lora." in k}
    missing = sorted(layer for layer in layers if layer not in key_map)
    if missing:
        raise FileError(source, f"{len(missing)} of {len(layers)} adapter layers do not exist in this model "
                                           f"(e.g. {missing[0]}): is it an SD1.5 model?")
    patched.add_patches(comfy.lora.load_lora(state_dict, key_map, log_missing=False), alpha)
    return patched
