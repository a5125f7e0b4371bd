"""AnimateLCM-I2V's image encoder (``img_encoder`` in ``AnimateLCM_sd15_i2v.ckpt``): a reference latent to one feature
per UNet down level, added after each level's second resnet (+ attention), before its motion module.

The original (G-U-N/AnimateLCM, ``animatelcm/models/adapter.py: Adapter(cin=4, nums_rb=2, ksize=1, sk=True,
use_conv=False)``), for a video of ``t`` frames::

    x0       = conv_in(reference) + drift * pe[frame]        pe: sinusoidal over the frames, 320 channels
    level i  = block(block(x_{i-1}))                           two blocks per level, ``body.{2i}``, ``body.{2i+1}``
    block(x) = block2(relu(block1(x'))) + x'                  x' = in_conv(avgpool2(x)) in a level's first block (i > 0)

``drift`` is the original's ``motion_scale`` (AnimateDiff-Evolved's ``ref_drift``). Shapes: the reference
``n 4 h w``; each feature ``(n t) c_i h/2^i w/2^i``.
"""

from __future__ import annotations

import math

import comfy.ops
import torch
import torch.nn.functional as F
from einops import repeat
from torch import nn

LATENT_CHANNELS = 4
BLOCKS_PER_LEVEL = 2


def frame_encoding(frames: int, channels: int) -> torch.Tensor:
    """The sinusoidal encoding of frame positions ``(frames, channels)``, float32: sin on even, cos on odd channels."""
    position = torch.arange(frames, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, channels, 2, dtype=torch.float32) * (-math.log(10000.0) / channels))
    encoding = torch.zeros(frames, channels)
    encoding[:, 0::2] = torch.sin(position * rate)
    encoding[:, 1::2] = torch.cos(position * rate)
    return encoding


class EncoderBlock(nn.Module):
    """``block2(relu(block1(x))) + x`` after an optional 2x average pool and 1x1 width change (``in_conv``)."""

    def __init__(self, in_channels: int, channels: int, down: bool, operations, device=None, dtype=None):
        super().__init__()
        self.down = down
        self.in_conv = operations.Conv2d(in_channels, channels, 1, device=device, dtype=dtype) if in_channels != channels else None
        self.block1 = operations.Conv2d(channels, channels, 3, padding=1, device=device, dtype=dtype)
        self.block2 = operations.Conv2d(channels, channels, 1, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: n c h w
        if self.down:  # odd sizes padded by repeating the last row/column, as the original
            x = F.avg_pool2d(F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2), mode="replicate"), 2)
        if self.in_conv is not None:
            x = self.in_conv(x)
        return self.block2(F.relu(self.block1(x))) + x


class ImageEncoder(nn.Module):
    """The encoder; ``state_dict()`` keys as the file's without the ``img_encoder.`` prefix."""

    def __init__(self, channels: tuple[int, ...], device=None, dtype=None, operations=comfy.ops.manual_cast):
        super().__init__()
        self.channels = channels
        self.conv_in = operations.Conv2d(LATENT_CHANNELS, channels[0], 3, padding=1, device=device, dtype=dtype)
        blocks = []
        for level, width in enumerate(channels):
            for j in range(BLOCKS_PER_LEVEL):
                first = level > 0 and j == 0
                blocks.append(EncoderBlock(channels[level - 1] if first else width, width, first, operations, device, dtype))
        self.body = nn.ModuleList(blocks)

    def forward(self, reference: torch.Tensor, frames: int, drift: float) -> list[torch.Tensor]:
        """``reference`` ``n 4 h w`` (one latent per video) -> one feature per level, ``(n frames) c h w`` each."""
        x = repeat(self.conv_in(reference), "n c h w -> (n f) c h w", f=frames)
        encoding = frame_encoding(frames, self.channels[0]).to(x)  # f c
        x = x + drift * repeat(encoding, "f c -> (n f) c 1 1", n=reference.shape[0])
        features = []
        for level in range(len(self.channels)):
            for block in self.body[level * BLOCKS_PER_LEVEL:(level + 1) * BLOCKS_PER_LEVEL]:
                x = block(x)
            features.append(x)
        return features

