"""Temporal self-attention: every pixel attends to itself across frames.

Precision: the projections and the attention run in the dtype of their input (ComfyUI's casting layers
cast the stored weights to it); the positional encoding ``pe`` is a float32 buffer whatever the weights'
storage dtype (fp16, bf16 or fp8), cast once to the input's dtype where it is added.
"""

from __future__ import annotations

import math

import torch
from comfy.ldm.modules.attention import optimized_attention
from torch import nn


def sinusoidal_encoding(length: int, dim: int, device=None) -> torch.Tensor:
    """The transformer's sinusoidal encoding, ``(1, length, dim)`` float32: sin on even, cos on odd channels."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(1, length, dim, device=device, dtype=torch.float32)
    pe[0, :, 0::2] = torch.sin(position * div_term)
    pe[0, :, 1::2] = torch.cos(position * div_term)
    return pe


class PositionalEncoding(nn.Module):
    """Adds the frame index encoding ``pe`` ``(1, max_len, dim)``, a buffer that is part of the official files.

    ``pe`` is float32 always: computed so, or a file's values (``load_state_dict`` upcasts them). It is
    never narrowed to the weights' storage dtype, not even by ``module.to(dtype)`` / ``.half()``, which
    still move it between devices; ``forward`` casts the frames it needs once to ``x``'s dtype.
    """

    def __init__(self, dim: int, max_len: int, device=None):
        super().__init__()
        self.register_buffer("pe", sinusoidal_encoding(max_len, dim, device))

    def _apply(self, fn, recurse=True):
        exact = self.pe
        super()._apply(fn, recurse)
        if self.pe.dtype != exact.dtype:  # a dtype cast: keep the float32 values, follow only the device
            self.pe = exact.to(self.pe.device)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (b h w) f c
        return x + self.pe[:, : x.shape[1]].to(x)


class TemporalAttention(nn.Module):
    """The original ``VersatileAttention`` in ``Temporal`` mode, self-attention only.

    Input and output ``(b h w) f c``; the positional encoding is added to the input of
    the query, key and value projections.
    """

    def __init__(self, dim: int, heads: int, max_len: int, operations, device=None, dtype=None):
        super().__init__()
        self.heads = heads
        self.pos_encoder = PositionalEncoding(dim, max_len, device)
        self.to_q = operations.Linear(dim, dim, bias=False, device=device, dtype=dtype)
        self.to_k = operations.Linear(dim, dim, bias=False, device=device, dtype=dtype)
        self.to_v = operations.Linear(dim, dim, bias=False, device=device, dtype=dtype)
        self.to_out = nn.ModuleList([operations.Linear(dim, dim, device=device, dtype=dtype), nn.Dropout(0.0)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pos_encoder(x)
        out = optimized_attention(self.to_q(x), self.to_k(x), self.to_v(x), self.heads)
        return self.to_out[0](out)
