"""The AnimateDiff motion module: a residual temporal transformer after an image layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .attention import TemporalAttention


def frames_as_height(x: torch.Tensor, frames: int) -> torch.Tensor:
    """``(b f) c h w -> b c (f h) w``: the frames of each video stacked as one tall image, so that a GroupNorm
    computes one set of statistics per video (AnimateDiff-SDXL's motion norm, v1/HotshotXL's image norms)."""
    return rearrange(x, "(b f) c h w -> b c (f h) w", f=frames)


def height_as_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """The inverse of :func:`frames_as_height`: ``b c (f h) w -> (b f) c h w``."""
    return rearrange(x, "b c (f h) w -> (b f) c h w", f=frames)


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, operations, device=None, dtype=None):
        super().__init__()
        self.proj = operations.Linear(dim_in, dim_out * 2, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, gate = self.proj(x).chunk(2, dim=-1)
        return hidden * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, inner: int, operations, device=None, dtype=None):
        super().__init__()
        self.net = nn.ModuleList([
            GEGLU(dim, inner, operations, device, dtype),
            nn.Dropout(0.0),
            operations.Linear(inner, dim, device=device, dtype=dtype),
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class TemporalTransformerBlock(nn.Module):
    """Pre-LayerNorm temporal self-attentions, then a GEGLU feed-forward; all residual."""

    def __init__(self, dim, heads, max_len, attention_blocks, ff_inner, operations, device=None, dtype=None):
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            TemporalAttention(dim, heads, max_len, operations, device, dtype) for _ in range(attention_blocks)
        )
        self.norms = nn.ModuleList(
            operations.LayerNorm(dim, device=device, dtype=dtype) for _ in range(attention_blocks)
        )
        self.ff = FeedForward(dim, ff_inner, operations, device, dtype)
        self.ff_norm = operations.LayerNorm(dim, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (b h w) f c
        for attention, norm in zip(self.attention_blocks, self.norms, strict=True):
            x = attention(norm(x)) + x
        return self.ff(self.ff_norm(x)) + x


class TemporalTransformer(nn.Module):
    """GroupNorm -> proj_in -> temporal transformer blocks -> proj_out; returns the residual.

    ``norm_across_frames`` makes the input GroupNorm share statistics across all frames of
    a video (AnimateDiff-SDXL); otherwise each frame is normalised on its own.
    """

    def __init__(self, channels, heads, max_len, layers, attention_blocks, ff_inner, norm_across_frames,
                 operations, device=None, dtype=None):
        super().__init__()
        self.norm_across_frames = norm_across_frames
        self.norm = operations.GroupNorm(32, channels, eps=1e-6, affine=True, device=device, dtype=dtype)
        self.proj_in = operations.Linear(channels, channels, device=device, dtype=dtype)
        self.transformer_blocks = nn.ModuleList(
            TemporalTransformerBlock(channels, heads, max_len, attention_blocks, ff_inner, operations, device, dtype)
            for _ in range(layers)
        )
        self.proj_out = operations.Linear(channels, channels, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """``x``: ``(b f) c h w`` -> the temporal residual, same shape."""
        height, width = x.shape[-2:]
        if self.norm_across_frames:
            h = rearrange(self.norm(frames_as_height(x, frames)), "b c (f h) w -> (b h w) f c", f=frames)
        else:
            h = rearrange(self.norm(x), "(b f) c h w -> (b h w) f c", f=frames)
        h = self.proj_in(h)
        for block in self.transformer_blocks:
            h = block(h)
        h = self.proj_out(h)
        return rearrange(h, "(b h w) f c -> (b f) c h w", f=frames, h=height, w=width)


class TemporalModule(nn.Module):
    """One ``VanillaTemporalModule``: ``x + scale * temporal_transformer(x)``, computed and returned in ``x``'s
    dtype (the UNet's activations: no float32 round trip; a tensor ``scale`` comes in that dtype too)."""

    def __init__(self, channels, config, operations, device=None, dtype=None):
        super().__init__()
        self.temporal_transformer = TemporalTransformer(
            channels, config.heads, config.max_frames, config.transformer_layers, config.attention_blocks,
            config.ff_mult * channels, config.motion_norm_across_frames, operations, device, dtype,
        )

    def forward(self, x: torch.Tensor, frames: int, scale: float | torch.Tensor = 1.0, views=None) -> torch.Tensor:
        """``scale``: a float, or a tensor broadcasting to ``x`` (per frame/pixel, ``(b f) 1 h w``).
        ``views``: ``(frame index, fuse weight)`` windows to run the temporal transformer in (None: all frames)."""
        delta = self.temporal_transformer(x, frames) if views is None else self.fused_views(x, frames, views)
        return x + delta if not torch.is_tensor(scale) and scale == 1.0 else x + scale * delta

    def fused_views(self, x: torch.Tensor, frames: int, views) -> torch.Tensor:
        """The temporal residual per window of frames, fused by the windows' weights. ``x``: ``(b f) c h w``."""
        video = rearrange(x, "(b f) c h w -> b f c h w", f=frames)
        fused = torch.zeros_like(video)
        for index, weight in views:
            index = index.to(x.device)
            part = rearrange(video[:, index], "b v c h w -> (b v) c h w")
            delta = rearrange(self.temporal_transformer(part, len(index)), "(b v) c h w -> b v c h w", v=len(index))
            fused.index_add_(1, index, delta * weight.to(delta).view(1, -1, 1, 1, 1))
        return rearrange(fused, "b f c h w -> (b f) c h w")
