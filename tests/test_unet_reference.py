"""The whole animated UNet against diffusers' UNetMotionModel on identical weights (reduced width).

ComfyUI's own ``UNetModel`` (SD1.5 structure at 1/10 width) runs with our motion modules injected
exactly as during sampling; diffusers' reference is built from the same LDM-format UNet weights by
its own converter and from the same motion-module file by its own single-file loader. Where
diffusers departs from the original AnimateDiff code the reference is patched: its motion-module
GroupNorm is made per frame, and for v1 its ResNet norms and ``conv_norm_out`` span all frames.
"""

from __future__ import annotations

import comfy.ops
import pytest
import torch
from animdiff.motion_module.injection import motion_injected
from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
from einops import rearrange
from random_weights import random_tensors
from reference import diffusers_adapter, patch_motion_norms_per_frame, small_model
from torch import nn

CHANNELS = (32, 64, 128, 128)
CONTEXT = 48
UNET = dict(in_channels=4, out_channels=4, model_channels=32, num_res_blocks=[2, 2, 2, 2], channel_mult=[1, 2, 4, 4],
            transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0], transformer_depth_middle=1,
            transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], context_dim=CONTEXT, num_heads=8,
            use_linear_in_transformer=False, use_spatial_transformer=True, legacy=False, image_size=8,
            use_checkpoint=False, adm_in_channels=None)


class AllFramesGroupNorm(nn.Module):
    """What the original v1 code did by applying ``nn.GroupNorm`` to ``b c f h w`` tensors."""

    def __init__(self, norm, frames):
        super().__init__()
        self.norm, self.frames = norm, frames

    def forward(self, x):
        h = x.shape[-2]
        return rearrange(self.norm(rearrange(x, "(b f) c h w -> b c (f h) w", f=self.frames)), "b c (f h) w -> (b f) c h w", f=self.frames, h=h)


def comfy_unet(seed=0) -> tuple[UNetModel, dict]:
    unet = UNetModel(**UNET, operations=comfy.ops.disable_weight_init, dtype=torch.float32)
    shapes = {k: v.shape for k, v in unet.state_dict().items()}
    state = random_tensors(shapes, seed, dtype=torch.float32)
    # give the norms and biases some spread so that a misplaced norm shows
    gen = torch.Generator().manual_seed(seed + 1)
    state = {k: v + 0.1 * torch.randn(v.shape, generator=gen) if v.ndim == 1 else v for k, v in state.items()}
    unet.load_state_dict(state)
    return unet.eval(), state


def diffusers_unet(ldm_state):
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    reference = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=CHANNELS, layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=CONTEXT, attention_head_dim=8, norm_num_groups=32,
    )
    converted = convert_ldm_unet_checkpoint({f"model.diffusion_model.{k}": v for k, v in ldm_state.items()}, reference.config)
    reference.load_state_dict(converted)
    return reference


def patch_v1_norms(reference, frames):
    from diffusers.models.resnet import ResnetBlock2D

    count = 0
    for module in reference.modules():
        if isinstance(module, ResnetBlock2D):
            module.norm1 = AllFramesGroupNorm(module.norm1, frames)
            module.norm2 = AllFramesGroupNorm(module.norm2, frames)
            count += 2
    reference.conv_norm_out = AllFramesGroupNorm(reference.conv_norm_out, frames)
    return count + 1


def reference_output(version, motion_state, ldm_state, tmp_path, x, t, context, frames, all_frame_norms):
    from diffusers import UNetMotionModel

    adapter = diffusers_adapter(version, motion_state, tmp_path, per_frame=False, channels=CHANNELS)
    reference = UNetMotionModel.from_unet2d(diffusers_unet(ldm_state), adapter)
    assert patch_motion_norms_per_frame(reference) == (21 if version == "v2" else 20)
    if all_frame_norms:
        assert patch_v1_norms(reference, frames) == 2 * (2 * 4 + 2 + 3 * 4) + 1
    with torch.no_grad():
        out = reference.eval()(rearrange(x, "(b f) c h w -> b c f h w", f=frames), t, context.repeat_interleave(frames, 0)).sample
    return rearrange(out, "b c f h w -> (b f) c h w")


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_animated_unet_matches_diffusers(version, tmp_path):
    frames, videos = 8, 2
    network, motion_state = small_model(version, seed=3, channels=CHANNELS)
    unet, ldm_state = comfy_unet()
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(videos * frames, 4, 8, 8, generator=gen)
    context = torch.randn(videos, 5, CONTEXT, generator=gen)
    t = torch.tensor([500.0, 500.0])
    with torch.no_grad():
        with motion_injected(unet, network, frames, 1.0):
            ours = unet(x, t.repeat_interleave(frames), context.repeat_interleave(frames, 0))
        plain = unet(x, t.repeat_interleave(frames), context.repeat_interleave(frames, 0))
    v1_norms = version == "v1"
    theirs = reference_output(version, motion_state, ldm_state, tmp_path / "a", x, t, context, frames, v1_norms)
    other = reference_output(version, motion_state, ldm_state, tmp_path / "b", x, t, context, frames, not v1_norms)
    scale = theirs.abs().max()
    assert (ours - theirs).abs().max() / scale <= 1e-4
    assert (ours - plain).abs().max() / scale > 1e-2  # the motion modules matter at this tolerance
    assert (ours - other).abs().max() / scale > 1e-2  # and so does the v1 cross-frame ResNet GroupNorm
