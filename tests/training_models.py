"""Small real ComfyUI models and synthetic moving-shape clips for training tests and the training benchmark.

The image model is ComfyUI's own ``BaseModel`` built from ``comfy.supported_models.SD15`` with a
reduced-width UNet (``channel_mult`` chosen so a reduced motion module fits it), wrapped in a
``ModelPatcher``: the trainer runs on the same objects a checkpoint loader returns.
"""

from __future__ import annotations

import functools

import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.sd
import comfy.sd1_clip
import comfy.supported_models
import comfy.supported_models_base
import torch
from animdiff.motion_module import LoadedMotionModule, MotionModuleConfig, MotionNetwork
from random_weights import random_tensors

CONTEXT = 32


def unet_config(channels: int = 32, mult=(1, 2, 2, 2), context: int = CONTEXT) -> dict:
    """SD1.5's UNet layout (attention on every level but the last) at ``channels`` x ``mult`` widths."""
    levels = len(mult)
    return dict(in_channels=4, out_channels=4, model_channels=channels, num_res_blocks=[2] * levels, channel_mult=list(mult),
                transformer_depth=[1, 1] * (levels - 1) + [0, 0], transformer_depth_middle=1,
                transformer_depth_output=[1, 1, 1] * (levels - 1) + [0, 0, 0], context_dim=context, use_linear_in_transformer=False,
                adm_in_channels=None, use_temporal_attention=False, image_size=32, use_spatial_transformer=True, legacy=False,
                use_checkpoint=False)


def motion_channels(channels: int = 32, mult=(1, 2, 2, 2)) -> tuple[int, ...]:
    return tuple(channels * m for m in mult)


def small_sd15(seed: int = 0, v_prediction: bool = False, channels: int = 32, mult=(1, 2, 2, 2), context: int = CONTEXT,
               device=None, dtype=torch.float32, manual_cast_dtype=None) -> comfy.model_patcher.ModelPatcher:
    """A ComfyUI SD1.5-type model (eps or v-prediction) at reduced width with seeded random weights
    (``channels=320, mult=(1, 2, 4, 4), context=768``: SD1.5's own size). The weights are stored in ``dtype``
    (float32 by default; the same random values rounded for any other); ``manual_cast_dtype`` is the compute
    dtype of weights stored in another (fp8 storage computing in bf16: what ComfyUI's loaders set up)."""
    config = comfy.supported_models.SD15(unet_config(channels, mult, context))
    config.set_inference_dtype(dtype, manual_cast_dtype)
    model_type = comfy.model_base.ModelType.V_PREDICTION if v_prediction else comfy.model_base.ModelType.EPS
    model = comfy.model_base.BaseModel(config, model_type=model_type, device=device or torch.device("cpu"))
    shapes = {k: v.shape for k, v in model.diffusion_model.state_dict().items()}
    state = random_tensors(shapes, seed, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed + 1)  # some spread in norms and biases
    state = {k: v + 0.05 * torch.randn(v.shape, generator=gen) if v.ndim == 1 else v for k, v in state.items()}
    model.diffusion_model.load_state_dict(state)
    return comfy.model_patcher.ModelPatcher(model, load_device=comfy.model_management.get_torch_device(),
                                            offload_device=comfy.model_management.unet_offload_device())


def small_motion_config(version: str = "v3", channels: int = 32, mult=(1, 2, 2, 2)) -> MotionModuleConfig:
    return MotionModuleConfig(version=version, channels=motion_channels(channels, mult), has_mid_block=version == "v2",
                              max_frames=24 if version == "v1" else 32)


def small_motion(version: str = "v3", seed: int = 0, channels: int = 32, mult=(1, 2, 2, 2)) -> LoadedMotionModule:
    """A reduced motion module with seeded random weights (a non-zero ``proj_out``: it moves things), float32."""
    model = MotionNetwork(small_motion_config(version, channels, mult), dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith(".pe"):
            state[key] = value
        elif value.ndim == 1 and key.endswith("weight"):  # norms
            state[key] = 1 + 0.05 * torch.randn(value.shape, generator=gen)
        else:
            state[key] = 0.1 * torch.randn(value.shape, generator=gen) / max(1, value.shape[-1]) ** 0.5
    model.load_state_dict(state)
    patcher = comfy.model_patcher.ModelPatcher(model.eval().requires_grad_(False), load_device=comfy.model_management.get_torch_device(),
                                               offload_device=comfy.model_management.unet_offload_device())
    return LoadedMotionModule(f"small_{version}.safetensors", patcher)


def moving_square(frames: int = 16, size: int = 8, row: int = 2, start: int = 0, speed: int = 1, value: float = 5.0) -> torch.Tensor:
    """Unscaled latents ``(frames, 4, size, size)``: a bright 3x3 square moving right ``speed`` px a frame
    (wrapping around), on a dark background; channels differ so the square has a colour."""
    latents = torch.full((frames, 4, size, size), -value / 2)
    colour = torch.tensor([1.0, 0.5, -0.5, 0.8]) * value
    for f in range(frames):
        for dx in range(3):
            x = (start + speed * f + dx) % size
            latents[f, :, row:row + 3, x] = colour[:, None]
    return latents


def conditioning(seed: int, tokens: int = 5, context: int = CONTEXT) -> list:
    """A CONDITIONING with a seeded random context for the reduced UNet."""
    return [[torch.randn(1, tokens, context, generator=torch.Generator().manual_seed(seed)), {}]]


def frozen_snapshot(*modules: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every tensor of ``modules`` (parameters and buffers), keyed by module index and name."""
    return {f"{i}.{k}": v.detach().clone() for i, m in enumerate(modules) for k, v in m.state_dict().items()}


def tiny_vae(seed: int = 0) -> comfy.sd.VAE:
    """ComfyUI's SD VAE class (AutoencoderKL, 8x downscale, 4 latent channels) at width 32, random weights."""
    from comfy.ldm.models.autoencoder import AutoencoderKL

    ddconfig = dict(double_z=True, z_channels=4, resolution=64, in_channels=3, out_ch=3, ch=32, ch_mult=[1, 2, 2, 2], num_res_blocks=1,
                    attn_resolutions=[], dropout=0.0)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in AutoencoderKL(ddconfig=ddconfig, embed_dim=4).state_dict().items()}
    return comfy.sd.VAE(sd=random_tensors(shapes, seed, dtype=torch.float32), config={"params": {"ddconfig": ddconfig, "embed_dim": 4}},
                        dtype=torch.float32)


def tiny_clip(seed: int = 0) -> comfy.sd.CLIP:
    """ComfyUI's SD1.5 CLIP (the real tokenizer) with a 2-layer, 32-wide text model and random weights: its
    conditioning fits the reduced UNet's ``context_dim``."""
    text_config = {"attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0, "eos_token_id": 49407, "hidden_act": "quick_gelu",
                   "hidden_size": CONTEXT, "intermediate_size": 2 * CONTEXT, "layer_norm_eps": 1e-05, "max_position_embeddings": 77,
                   "num_attention_heads": 2, "num_hidden_layers": 2, "pad_token_id": 1, "projection_dim": CONTEXT, "vocab_size": 49408}
    target = comfy.supported_models_base.ClipTarget(comfy.sd1_clip.SD1Tokenizer, comfy.sd1_clip.SD1ClipModel)
    target.params = {"clip_model": functools.partial(comfy.sd1_clip.SDClipModel, textmodel_json_config=text_config,
                                                     return_projected_pooled=False)}
    clip = comfy.sd.CLIP(target, model_options={"dtype": torch.float32})
    shapes = {k: v.shape for k, v in clip.cond_stage_model.state_dict().items() if v.ndim}  # not the unused scalar logit_scale
    clip.cond_stage_model.load_state_dict(random_tensors(shapes, seed, dtype=torch.float32), strict=False)
    return clip
