"""diffusers as an independent reference, patched where it departs from the original AnimateDiff."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn


class PerFrameGroupNorm(nn.Module):
    """The original ``TemporalTransformer3DModel`` normalises ``(b f) c h w``, each frame alone;
    diffusers' ``AnimateDiffTransformer3D`` calls its norm on ``b c f h w`` (all frames).
    Wrapping the reference's norm with this restores the original behaviour."""

    def __init__(self, norm: nn.GroupNorm):
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # b c f h w
        frames = x.shape[2]
        return rearrange(self.norm(rearrange(x, "b c f h w -> (b f) c h w")), "(b f) c h w -> b c f h w", f=frames)


def patch_motion_norms_per_frame(adapter: nn.Module) -> int:
    """Wrap the input GroupNorm of every diffusers motion module; returns how many were wrapped."""
    from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

    count = 0
    for module in adapter.modules():
        if isinstance(module, AnimateDiffTransformer3D):
            module.norm = PerFrameGroupNorm(module.norm)
            count += 1
    return count
