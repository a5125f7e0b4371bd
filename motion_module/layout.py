"""Recognise a motion-module checkpoint from its keys and shapes alone (never its file name).

All known layouts are first renamed to the original AnimateDiff key scheme
(``down_blocks.0.motion_modules.0.temporal_transformer.…``), then measured.
"""

from __future__ import annotations

import re

import torch

from ..errors import FileError
from .config import BASE_CHANNELS, PIA_INPUT_CHANNELS, VERSIONS, MotionModuleConfig

IMAGE_ENCODER = "img_encoder."  # AnimateLCM-I2V's reference encoder, next to the motion modules
MODULE_KEY = re.compile(r"^(down_blocks\.\d+|mid_block|up_blocks\.\d+)\.motion_modules\.(\d+)\.temporal_transformer\.(.+)$")

# diffusers MotionAdapter -> original (the inverse of diffusers' single-file conversion)
DIFFUSERS_RENAMES = [
    (".norm1.", ".norms.0."), (".norm2.", ".norms.1."), (".norm3.", ".ff_norm."),
    (".attn1.", ".attention_blocks.0."), (".attn2.", ".attention_blocks.1."),
]
DIFFUSERS_MODULE = re.compile(r"^((?:down_blocks\.\d+|mid_block|up_blocks\.\d+)\.motion_modules\.\d+)\.(?!temporal_transformer\.)")
HOTSHOT_MODULE = re.compile(r"^((?:down_blocks\.\d+|mid_block|up_blocks\.\d+))\.temporal_attentions\.(\d+)\.")

# Files that are something else, recognised so the error can say what they are.
OTHER_KINDS = [
    (re.compile(r"^(model\.diffusion_model\.|first_stage_model\.|cond_stage_model\.|conditioner\.)"),
     "a Stable Diffusion checkpoint (UNet/VAE/text encoder), not a motion module"),
    (re.compile(r"^(input_blocks|output_blocks|middle_block)\."), "a Stable Diffusion UNet, not a motion module"),
    (re.compile(r"motion_modules\..*_lora[._]|lora_[AB]\.|\.lora\.(up|down)"), "a MotionLoRA, not a motion module"),
    (re.compile(r"attentions\.\d+\..*processor\..*_lora\."), "a domain adapter (image-model LoRA), not a motion module"),
]


def to_original_keys(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """Rename diffusers ``MotionAdapter`` and HotshotXL keys to the original scheme.

    Returns the renamed dict and the scheme found: ``original``, ``diffusers`` or ``hotshotxl``.
    """
    out, scheme = {}, "original"
    for key, value in state_dict.items():
        if HOTSHOT_MODULE.match(key):
            scheme = "hotshotxl"
            key = HOTSHOT_MODULE.sub(r"\1.motion_modules.\2.temporal_transformer.", key)
            key = key.replace(".pos_encoder.positional_encoding", ".pos_encoder.pe")
        elif DIFFUSERS_MODULE.match(key):
            scheme = "diffusers"
            key = DIFFUSERS_MODULE.sub(r"\1.temporal_transformer.", key)
            for old, new in DIFFUSERS_RENAMES:
                key = key.replace(old, new)
            if key.endswith(".pos_embed.pe"):  # one buffer per block, shared by its attentions
                block = key.removesuffix("pos_embed.pe")
                for i in (0, 1):
                    out[f"{block}attention_blocks.{i}.pos_encoder.pe"] = value
                continue
        out[key] = value
    return out, scheme


def describe_keys(keys, limit: int = 3) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return f"{len(keys)} tensors, e.g. {shown}" if keys else "no tensors"


def detect_config(state_dict: dict[str, torch.Tensor], source: str, version: str = "auto",
                  scheme: str = "original") -> MotionModuleConfig:
    """The :class:`MotionModuleConfig` of an original-scheme state dict (``scheme``: where it came from).

    ``version`` overrides the guess only where the weights cannot tell (a file without
    positional-encoding buffers: v1 or v3, v2 or AnimateLCM); it must fit the weights' base family,
    mid block and positional-encoding length, or the file is refused naming both.
    """
    modules = {}
    for key, value in state_dict.items():
        match = MODULE_KEY.match(key)
        if match:
            modules.setdefault((match[1], int(match[2])), {})[match[3]] = value
    if not any("proj_in.weight" in tensors for tensors in modules.values()):
        for pattern, what in OTHER_KINDS:
            if any(pattern.search(k) for k in state_dict):
                raise FileError(source, f"this is {what}")
        raise FileError(source, f"unknown layout: no AnimateDiff motion-module keys found ({describe_keys(state_dict)})")

    def level_count(prefix: str) -> int:
        levels = {int(name.split(".")[1]) for name, _ in modules if name.startswith(prefix)}
        if levels != set(range(len(levels))):
            raise FileError(source, f"unknown layout: {prefix} levels {sorted(levels)} are not contiguous")
        return len(levels)

    def width(block: str) -> int:
        weight = modules.get((block, 0), {}).get("proj_in.weight")
        if weight is None:
            raise FileError(source, f"unknown layout: {block}.motion_modules.0 has no proj_in.weight")
        return int(weight.shape[0])

    levels = level_count("down_blocks")
    if level_count("up_blocks") != levels:
        raise FileError(source, "unknown layout: different numbers of down and up levels")
    channels = tuple(width(f"down_blocks.{i}") for i in range(levels))
    base = next((b for b, c in BASE_CHANNELS.items() if c == channels), None)
    if base is None:
        known = ", ".join(f"{name} {list(widths)}" for name, widths in BASE_CHANNELS.items())
        raise FileError(source, f"unknown layout: motion modules of widths {list(channels)} fit no supported base model ({known})")

    first = modules[("down_blocks.0", 0)]
    per_level = lambda prefix: max(i for name, i in modules if name.startswith(prefix)) + 1  # noqa: E731
    try:
        layers = 1 + max(int(k.split(".")[1]) for k in first if k.startswith("transformer_blocks."))
        attention_blocks = 1 + max(int(k.split(".")[3]) for k in first if ".attention_blocks." in k)
        ff_width = feed_forward_width(first)
    except (KeyError, ValueError) as err:
        raise FileError(source, f"unknown layout: down_blocks.0.motion_modules.0 is incomplete ({err!r} missing)") from None
    pe = first.get("transformer_blocks.0.attention_blocks.0.pos_encoder.pe")
    pe_len = int(pe.shape[1]) if pe is not None else None
    has_mid = ("mid_block", 0) in modules
    conv_in = pia_input_channels(state_dict, channels[0], base, source)
    image_encoder = any(k.startswith(IMAGE_ENCODER) for k in state_dict)
    if image_encoder and base != "SD1.5":
        raise FileError(source, f"AnimateLCM-I2V's image encoder (img_encoder.*) next to {base} motion modules: it exists for "
                                "SD1.5 only (a mixed-up file)")

    guess = guess_version(base, has_mid, pe_len, hotshot=scheme == "hotshotxl", pia=conv_in is not None)
    if version == "auto":
        version = guess
    elif version not in VERSIONS:
        raise FileError(source, f"unknown version {version!r}; choose one of {', '.join(VERSIONS)}")
    if VERSIONS[version][0] != base:
        raise FileError(source, f"version {version} is for {VERSIONS[version][0]}, but these weights are a {base} motion module")
    contradiction = version_contradiction(version, has_mid, pe_len, conv_in is not None)
    if contradiction:
        raise FileError(source, f"version {version} contradicts the weights: {contradiction} (they are {guess}); the version "
                                "input only chooses where the weights cannot tell: use auto")
    return MotionModuleConfig(
        version=version, channels=channels, has_mid_block=has_mid,
        max_frames=pe_len or VERSIONS[version][1],
        down_modules=per_level("down_blocks"), up_modules=per_level("up_blocks"),
        transformer_layers=layers, attention_blocks=attention_blocks,
        ff_mult=ff_width // channels[0], conv_in_channels=conv_in, image_encoder=image_encoder,
    )


def pia_input_channels(state_dict: dict[str, torch.Tensor], width: int, base: str, source: str) -> int | None:
    """PIA's input conv: ``conv_in.weight`` ``[320, 9, 3, 3]`` (+ bias) next to the motion modules; None without one."""
    weight = state_dict.get("conv_in.weight")
    if weight is None:
        return None
    expected = [width, PIA_INPUT_CHANNELS, 3, 3]
    if base != "SD1.5":
        raise FileError(source, f"a PIA input conv (conv_in.weight) next to {base} motion modules: PIA exists for SD1.5 only "
                                "(a mixed-up file)")
    if list(weight.shape) != expected:
        raise FileError(source, f"conv_in.weight has shape {list(weight.shape)}, PIA's input conv is {expected} (latent 4 + "
                                "affinity 1 + image latent 4 channels): a damaged or mixed-up file")
    return PIA_INPUT_CHANNELS


def recognise(state_dict: dict[str, torch.Tensor], source: str, version: str = "auto"
              ) -> tuple[dict[str, torch.Tensor], MotionModuleConfig]:
    """Any supported key scheme -> (the state dict in original names, its config)."""
    state_dict, scheme = to_original_keys(state_dict)
    return state_dict, detect_config(state_dict, source, version, scheme)


def feed_forward_width(module: dict[str, torch.Tensor]) -> int:
    """The feed-forward's inner width, as most of its tensors have it (GEGLU ``net.0.proj`` is twice as wide), so that a
    shape error is reported on the one tensor that disagrees."""
    prefix = "transformer_blocks.0.ff.net."
    widths = [int(module[prefix + "0.proj.weight"].shape[0]) // 2, int(module[prefix + "2.weight"].shape[1])]
    if prefix + "0.proj.bias" in module:
        widths.insert(1, int(module[prefix + "0.proj.bias"].shape[0]) // 2)
    return max(widths, key=widths.count)  # ties: the first, net.0


def version_contradiction(version: str, has_mid: bool, pe_len: int | None, has_conv_in: bool = False) -> str | None:
    """Why weights with (or without) a mid block, positional encodings of ``pe_len`` frames (None: none stored) and PIA's
    input conv cannot be ``version``; None if they can."""
    if has_conv_in != (version == "pia"):
        return f"{'PIA has' if version == 'pia' else f'{version} has no'} input conv (conv_in), these weights " \
               f"{'have one' if has_conv_in else 'have none'}"
    needs_mid = version in ("v2", "animatelcm")
    if has_mid != needs_mid:
        return f"{version} {'has' if needs_mid else 'has no'} mid block, these weights {'have' if has_mid else 'have none'}"
    if pe_len is not None and pe_len != VERSIONS[version][1]:
        return f"{version} has positional encodings for {VERSIONS[version][1]} frames, these weights for {pe_len}"
    return None


def guess_version(base: str, has_mid: bool, pe_len: int | None, hotshot: bool, pia: bool = False) -> str:
    """The most likely version for weights that carry no version tag."""
    if pia:
        return "pia"
    if base == "SDXL":
        return "hotshotxl" if hotshot else "sdxl"
    if has_mid:  # AnimateLCM is the v2 layout without (or with 64-long) encodings
        return "animatelcm" if pe_len in (None, 64) else "v2"
    return "v1" if pe_len == 24 else "v3"
