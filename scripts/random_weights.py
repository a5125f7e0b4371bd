"""Random weights in the official layouts, for smoke runs and graph tests (never for real use).

- an SD1.5 checkpoint (full-size UNet, CLIP-L and VAE: what ComfyUI's loader accepts as SD1.5),
- an SDXL checkpoint (full-size UNet, CLIP-L, OpenCLIP-G and VAE in the original SGM key layout), for GPU benchmarks,
- a full-size motion module in the v3 layout (or any version's config),
- a full-size CLIP ViT-H/14 vision tower with its projection (IP-Adapter SD1.5's image encoder), as ComfyUI's
  CLIPVisionLoader reads it.

Built from ComfyUI's and this pack's own classes on the meta device, so the key names and
shapes are exactly what the loaders expect; values are seeded, fan-in scaled Gaussians.
Run with the bootstrap's venv and ComfyUI on ``sys.path``.
"""

from __future__ import annotations

import math
from pathlib import Path

import safetensors.torch
import torch

SD15_UNET = dict(
    in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[2, 2, 2, 2], channel_mult=[1, 2, 4, 4],
    transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0], transformer_depth_middle=1, transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    context_dim=768, num_heads=8, use_linear_in_transformer=False, use_spatial_transformer=True, legacy=False,
    image_size=32, use_checkpoint=False, adm_in_channels=None,
)
SDXL_UNET = dict(
    in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[2, 2, 2], channel_mult=[1, 2, 4],
    transformer_depth=[0, 0, 2, 2, 10, 10], transformer_depth_middle=10, transformer_depth_output=[0, 0, 0, 2, 2, 2, 10, 10, 10],
    context_dim=2048, num_head_channels=64, num_heads=-1, use_linear_in_transformer=True, use_spatial_transformer=True,
    legacy=False, adm_in_channels=2816, num_classes="sequential", image_size=32, use_checkpoint=False,
)
SD15_VAE = dict(double_z=True, z_channels=4, resolution=256, in_channels=3, out_ch=3, ch=128, ch_mult=[1, 2, 4, 4],
                num_res_blocks=2, attn_resolutions=[], dropout=0.0)


def meta_shapes(module: torch.nn.Module, prefix: str) -> dict[str, torch.Size]:
    return {prefix + k: v.shape for k, v in module.state_dict().items()}


def sd15_shapes() -> dict[str, torch.Size]:
    from comfy.sd1_clip import SDClipModel

    with torch.device("meta"):
        clip = SDClipModel(device="meta")
    text = {k: v for k, v in meta_shapes(clip.transformer, "cond_stage_model.transformer.").items()
            if "text_projection" not in k}  # not in the original files (ComfyUI would drop it as unexpected)
    return {**unet_vae_shapes(SD15_UNET), **text}


def sdxl_shapes() -> dict[str, torch.Size]:
    """The tensors of an original SDXL checkpoint: CLIP-L under ``conditioner.embedders.0.transformer.``, OpenCLIP-G
    under ``conditioner.embedders.1.model.`` (in the Hugging Face layout ComfyUI also reads there; CLIP-L's unused
    ``logit_scale`` and ``text_projection`` are not in such files)."""
    from comfy.sdxl_clip import SDXLClipModel

    with torch.device("meta"):
        clip = SDXLClipModel(device="meta")
    shapes = unet_vae_shapes(SDXL_UNET)
    for key, value in clip.state_dict().items():
        if key.startswith("clip_l.transformer.text_model."):
            shapes["conditioner.embedders.0." + key.removeprefix("clip_l.")] = value.shape
        elif key.startswith("clip_g."):
            shapes["conditioner.embedders.1.model." + key.removeprefix("clip_g.")] = value.shape
    return shapes


def unet_vae_shapes(unet_config: dict) -> dict[str, torch.Size]:
    import comfy.ops
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    with torch.device("meta"):
        unet = UNetModel(**unet_config, operations=comfy.ops.disable_weight_init, device="meta")
        vae = AutoencoderKL(ddconfig=SD15_VAE, embed_dim=4)
    return {**meta_shapes(unet, "model.diffusion_model."), **meta_shapes(vae, "first_stage_model.")}


def random_tensors(shapes: dict[str, torch.Size], seed: int, dtype=torch.float16) -> dict[str, torch.Tensor]:
    """Norm weights 1, biases 0, embeddings N(0, 0.02), other weights N(0, 1/fan_in)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in sorted(shapes.items()):
        name = key.rsplit(".", 1)[-1]
        if len(shape) == 1 and name == "weight":
            value = torch.ones(shape)
        elif name == "bias" or name == "position_ids" or name.endswith("_ids"):
            value = torch.zeros(shape) if name == "bias" else torch.arange(shape[-1]).expand(shape).float()
        elif "embedding" in key:
            value = torch.randn(shape, generator=gen) * 0.02
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else shape[0]
            value = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
        out[key] = value.to(dtype)
    return out


def sd15_controlnet_shapes() -> dict[str, torch.Size]:
    import comfy.ops
    from comfy.cldm.cldm import ControlNet

    config = {k: v for k, v in SD15_UNET.items() if k != "out_channels"}
    with torch.device("meta"):
        return meta_shapes(ControlNet(hint_channels=3, **config, operations=comfy.ops.disable_weight_init, device="meta"), "")


def clip_vision_h_shapes() -> dict[str, torch.Size]:
    """CLIP ViT-H/14's vision tower and projection (Hugging Face key names: ``vision_model.*``, ``visual_projection.weight``)
    from ComfyUI's own config, the one its loader picks for a file with ``vision_model.encoder.layers.30.*``: 32 layers of
    width 1280, 257 tokens of 14x14 patches at 224x224, 1024-d image embeds; 632 M parameters."""
    import json

    import comfy.clip_model
    import comfy.clip_vision
    import comfy.ops

    config = json.loads((Path(comfy.clip_vision.__file__).parent / "clip_vision_config_h.json").read_text())
    with torch.device("meta"):
        model = comfy.clip_model.CLIPVisionModelProjection(config, torch.float16, "meta", comfy.ops.disable_weight_init)
    return meta_shapes(model, "")


def write_clip_vision_h(path: Path, seed: int = 9) -> Path:
    """A full-size random CLIP ViT-H/14 vision model (1.26 GB in fp16), which ComfyUI's CLIPVisionLoader accepts."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        safetensors.torch.save_file(random_tensors(clip_vision_h_shapes(), seed), tmp)
        tmp.rename(path)
    return path


def write_sd15_controlnet(path: Path, seed: int = 2) -> Path:
    """A full-size random SD1.5 ControlNet (LDM layout), which ComfyUI's ControlNetLoader accepts."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        safetensors.torch.save_file(random_tensors(sd15_controlnet_shapes(), seed), path)
    return path


def write_sd15_checkpoint(path: Path, seed: int = 0) -> Path:
    return write_checkpoint(path, sd15_shapes, seed)


def write_sdxl_checkpoint(path: Path, seed: int = 0) -> Path:
    """A full-size random SDXL checkpoint (about 7 GB in fp16), which ComfyUI's CheckpointLoaderSimple accepts as SDXL."""
    return write_checkpoint(path, sdxl_shapes, seed)


def write_checkpoint(path: Path, shapes, seed: int) -> Path:
    """``shapes()``'s tensors as random weights at ``path``, written once (through a temporary name)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        safetensors.torch.save_file(random_tensors(shapes(), seed), tmp, metadata={"animdiff": "random test weights"})
        tmp.rename(path)
    return path


def write_motion_module(path: Path, version: str = "v3", seed: int = 1, zero_out: bool = False) -> Path:
    """Full-size random motion-module weights in ``version``'s official layout; ``zero_out``: proj_out
    zero, the untrained module (identity)."""
    from animdiff.motion_module import MotionNetwork
    from animdiff.motion_module.attention import sinusoidal_encoding
    from animdiff.motion_module.config import official_config

    if not path.exists():
        shapes = meta_shapes(MotionNetwork(official_config(version), device="meta"), "")
        tensors = random_tensors({k: s for k, s in shapes.items() if not k.endswith(".pe")}, seed)
        tensors.update({k: sinusoidal_encoding(s[1], s[2]).half() for k, s in shapes.items() if k.endswith(".pe")})
        if zero_out:
            tensors.update({k: torch.zeros_like(v) for k, v in tensors.items() if ".proj_out." in k})
        path.parent.mkdir(parents=True, exist_ok=True)
        safetensors.torch.save_file(tensors, path)
    return path
