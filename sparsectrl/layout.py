"""Recognise a SparseCtrl file from its keys and shapes, and rename it to ComfyUI's ControlNet names.

Two layouts load: the official files (``v3_sd15_sparsectrl_rgb.ckpt``/``…_scribble.ckpt``: flat
original AnimateDiff names, possibly under a ``controlnet`` entry) and diffusers'
``SparseControlNetModel`` files (the same image-layer names, diffusers motion-module names).
The image layers use diffusers' UNet names, mapped by ComfyUI's own ``unet_to_diffusers``.
"""

from __future__ import annotations

import re

import comfy.utils
import torch

from ..errors import FileError
from ..motion_module.layout import describe_keys, to_original_keys
from .model import SparseCtrlConfig

MOTION_KEY = re.compile(r"^down_blocks\.(\d+)\.motion_modules\.(\d+)\.temporal_transformer\.")
PE_SUFFIX = ".pos_encoder.pe"
SCRIBBLE_BLOCKS = 6  # controlnet_cond_embedding.blocks.0-5 between conv_in and conv_out

# Files that are something else, recognised so the error can say what they are and where they load.
NOT_SPARSECTRL = [
    (re.compile(r"_lora[._]|lora_[AB]\.|\.lora\.(up|down)"), "a LoRA, not SparseCtrl"),
    (re.compile(r"^(up_blocks\.\d+|mid_block)\.motion_modules\.|temporal_attentions\."),
     "an AnimateDiff motion module, not SparseCtrl: load it with Load Motion Module (AnimDiff)"),
    (re.compile(r"^(control_model\.)?(input_hint_block|zero_convs)\.|^controlnet_cond_embedding\.|^controlnet_down_blocks\."),
     "a plain ControlNet (no motion modules), not SparseCtrl: load it with the stock Load ControlNet Model node"),
    (re.compile(r"^(model\.diffusion_model\.|first_stage_model\.|cond_stage_model\.)"),
     "a Stable Diffusion checkpoint, not SparseCtrl"),
]


def detect_config(state_dict: dict[str, torch.Tensor], source: str) -> SparseCtrlConfig:
    """The :class:`SparseCtrlConfig` of a state dict in original names (pe buffers may be present)."""
    is_sparsectrl = "controlnet_down_blocks.0.weight" in state_dict and any(MOTION_KEY.match(k) for k in state_dict)
    if not is_sparsectrl:
        for pattern, what in NOT_SPARSECTRL:
            if any(pattern.search(k) for k in state_dict):
                raise FileError(source, f"this is {what}")
        raise FileError(source, f"unknown layout: no SparseCtrl keys found ({describe_keys(state_dict)})")
    if "controlnet_cond_embedding.weight" in state_dict:
        kind, embedding = "rgb", state_dict["controlnet_cond_embedding.weight"]
    elif "controlnet_cond_embedding.conv_in.weight" in state_dict:
        kind, embedding = "scribble", state_dict["controlnet_cond_embedding.conv_in.weight"]
    else:
        raise FileError(source, "unknown layout: SparseCtrl without a controlnet_cond_embedding")
    try:
        model_channels = int(state_dict["conv_in.weight"].shape[0])
        levels = 1 + max(int(k.split(".")[1]) for k in state_dict if k.startswith("down_blocks."))
        widths = [int(state_dict[f"down_blocks.{i}.resnets.0.conv1.weight"].shape[0]) for i in range(levels)]
        attention = tuple(f"down_blocks.{i}.attentions.0.norm.weight" in state_dict for i in range(levels))
        first = attention.index(True)
        context_dim = int(state_dict[f"down_blocks.{first}.attentions.0.transformer_blocks.0.attn2.to_k.weight"].shape[1])
    except (KeyError, ValueError) as err:
        raise FileError(source, f"unknown layout: incomplete SparseCtrl encoder ({err!r} missing)") from None
    pe = next((v for k, v in state_dict.items() if k.endswith(PE_SUFFIX)), None)
    config = SparseCtrlConfig(kind=kind, model_channels=model_channels, channel_mult=tuple(w // model_channels for w in widths),
                              attention_levels=attention, context_dim=context_dim,
                              max_frames=int(pe.shape[1]) if pe is not None else 32)
    if int(embedding.shape[1]) != config.hint_channels:
        raise FileError(source, f"a {kind} SparseCtrl needs {config.hint_channels} condition channels (with the keyframe mask), "
                                f"this file's controlnet_cond_embedding takes {int(embedding.shape[1])}")
    return config


def ldm_names(config: SparseCtrlConfig) -> dict[str, str]:
    """Original/diffusers name -> ComfyUI ``ControlNet`` name, for every tensor outside the motion modules."""
    names = comfy.utils.unet_to_diffusers(config.unet_config)
    for suffix in ("weight", "bias"):
        names[f"controlnet_mid_block.{suffix}"] = f"middle_block_out.0.{suffix}"
        for i in range((config.layers_per_level + 1) * len(config.channel_mult)):  # one per input block
            names[f"controlnet_down_blocks.{i}.{suffix}"] = f"zero_convs.{i}.0.{suffix}"
        if config.kind == "rgb":
            names[f"controlnet_cond_embedding.{suffix}"] = f"input_hint_block.0.{suffix}"
        else:  # ControlNet's hint encoder: convolutions at even indices, SiLUs between
            names[f"controlnet_cond_embedding.conv_in.{suffix}"] = f"input_hint_block.0.{suffix}"
            for i in range(SCRIBBLE_BLOCKS):
                names[f"controlnet_cond_embedding.blocks.{i}.{suffix}"] = f"input_hint_block.{2 * (i + 1)}.{suffix}"
            names[f"controlnet_cond_embedding.conv_out.{suffix}"] = f"input_hint_block.{2 * (SCRIBBLE_BLOCKS + 1)}.{suffix}"
    return names


def to_ldm(state_dict: dict[str, torch.Tensor], config: SparseCtrlConfig) -> dict[str, torch.Tensor]:
    """Rename to :class:`SparseControlNet`'s keys; positional encodings are dropped (the model computes
    them, as the original loader does); names that fit nothing are kept as they are."""
    names = ldm_names(config)
    out = {}
    for key, value in state_dict.items():
        if key.endswith(PE_SUFFIX):
            continue
        match = MOTION_KEY.match(key)
        if match:
            block, position = config.motion_slot(int(match[1]), int(match[2]))
            key = f"input_blocks.{block}.{position}.temporal_transformer.{key[match.end():]}"
        out[names.get(key, key)] = value
    return out


def recognise(state_dict: dict[str, torch.Tensor], source: str) -> tuple[dict[str, torch.Tensor], SparseCtrlConfig]:
    """Any supported SparseCtrl layout -> (the state dict in :class:`SparseControlNet` names, its config)."""
    state_dict, _ = to_original_keys(state_dict)
    config = detect_config(state_dict, source)
    return to_ldm(state_dict, config), config
