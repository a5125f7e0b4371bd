"""The SparseCtrl network: ComfyUI's ControlNet encoder with AnimateDiff motion modules in its down blocks.

SparseCtrl (Guo et al., arXiv 2311.16933) is a ControlNet copy of the SD1.5 encoder whose input
latent is zeroed: it sees only the condition (keyframes, mask 1 where a keyframe is, 0 elsewhere)
and the timestep, and temporal attention after every spatial layer of the down blocks spreads
the keyframes' information to all frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from comfy.cldm.cldm import ControlNet
from comfy.ldm.modules.diffusionmodules.openaimodel import TimestepEmbedSequential, forward_timestep_embed
from comfy.ldm.modules.diffusionmodules.util import timestep_embedding

from ..motion_module.config import MotionModuleConfig
from ..motion_module.transformer import TemporalModule

KINDS = {"rgb": 4, "scribble": 3}  # condition channels before the mask: VAE latents or image channels


@dataclass(frozen=True)
class SparseCtrlConfig:
    """The shape of a SparseCtrl file: ``kind`` (``rgb``/``scribble``), widths per level, which levels
    have spatial attention, the text-embedding width and the motion modules' encoding length."""

    kind: str
    model_channels: int
    channel_mult: tuple[int, ...]
    attention_levels: tuple[bool, ...]
    context_dim: int
    max_frames: int = 32
    heads: int = 8
    layers_per_level: int = 2

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(self.model_channels * m for m in self.channel_mult)

    @property
    def hint_channels(self) -> int:
        """Condition channels plus the keyframe mask."""
        return KINDS[self.kind] + 1

    @property
    def hint_scale(self) -> int:
        """How much larger the condition is than the latent: 1 for rgb (latents), 8 for scribble (pixels)."""
        return 1 if self.kind == "rgb" else 8

    @property
    def unet_config(self) -> dict:
        """ComfyUI's UNet config of the encoder (``comfy.cldm.cldm.ControlNet`` arguments)."""
        levels = len(self.channel_mult)
        depth = [int(a) for a in self.attention_levels for _ in range(self.layers_per_level)]
        return dict(in_channels=4, model_channels=self.model_channels, num_res_blocks=[self.layers_per_level] * levels,
                    channel_mult=list(self.channel_mult), transformer_depth=depth, transformer_depth_middle=1,
                    transformer_depth_output=[int(a) for a in self.attention_levels for _ in range(self.layers_per_level + 1)],
                    context_dim=self.context_dim, num_heads=self.heads, use_linear_in_transformer=False,
                    use_spatial_transformer=True, legacy=False, image_size=32, use_checkpoint=False, adm_in_channels=None)

    @property
    def motion_config(self) -> MotionModuleConfig:
        """Its motion modules: the v3 design (per-frame GroupNorm) with one temporal attention each."""
        return MotionModuleConfig(version="v3", channels=self.channels, has_mid_block=False, max_frames=self.max_frames,
                                  attention_blocks=1, heads=self.heads)

    def motion_slot(self, level: int, layer: int) -> tuple[int, int]:
        """(input block, position in it) of ``down_blocks.level.motion_modules.layer``: after the
        resnet and, where the level has one, the spatial transformer."""
        return 1 + (self.layers_per_level + 1) * level + layer, 2 if self.attention_levels[level] else 1


class SparseControlNet(ControlNet):
    """``comfy.cldm.cldm.ControlNet`` plus motion modules; ``forward`` takes the frames per video.

    The rgb condition embedding is one 3x3 convolution of the 5-channel (latent + mask) condition;
    the scribble one is ControlNet's usual hint encoder on 4 channels (image + mask).
    """

    def __init__(self, config: SparseCtrlConfig, operations, device=None, dtype=None):
        super().__init__(**config.unet_config, hint_channels=config.hint_channels, operations=operations, device=device, dtype=dtype)
        self.config = config
        if config.kind == "rgb":
            self.input_hint_block = TimestepEmbedSequential(
                operations.conv_nd(2, config.hint_channels, config.model_channels, 3, padding=1, device=device, dtype=dtype))
        for level, channels in enumerate(config.channels):
            for layer in range(config.layers_per_level):
                block, position = config.motion_slot(level, layer)
                assert len(self.input_blocks[block]) == position
                self.input_blocks[block].append(TemporalModule(channels, config.motion_config, operations, device, dtype))

    def forward(self, hint: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, frames: int) -> dict:
        """``hint``: ``(b f) c H W`` conditions with their mask channel; ``timesteps``: ``(b f)``;
        ``context``: ``(b f) tokens dim``. Returns ComfyUI's control dict: ``output`` (one residual per
        input block) and ``middle``. The noisy latent is not an input: SparseCtrl zeroes it."""
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels).to(hint.dtype))
        size = [s // self.config.hint_scale for s in hint.shape[-2:]]
        h = torch.zeros(hint.shape[0], 4, *size, device=hint.device, dtype=hint.dtype)  # set_noisy_sample_input_to_zero
        outputs = []
        for i, (block, zero_conv) in enumerate(zip(self.input_blocks, self.zero_convs, strict=True)):
            for layer in block:
                h = layer(h, frames) if isinstance(layer, TemporalModule) else forward_timestep_embed([layer], h, emb, context)
            if i == 0:
                h = h + self.input_hint_block(hint, emb, context)
            outputs.append(zero_conv(h, emb, context))
        h = self.middle_block(h, emb, context)
        return {"middle": [self.middle_block_out(h, emb, context)], "output": outputs}
