"""Initial-noise types for videos: how the sampler's noise is correlated across frames.

The sampler's noise ``(frames, c, h, w)`` (one latent per frame; 5-D video latents ``(b, c, frames,
h, w)`` use their frame axis) is rewritten before sampling starts:

- ``default``: unchanged.
- ``constant``: every frame gets frame 0's noise (``ε_i = ε_0``).
- ``repeated_context``: the first window's noise repeated (``ε_i = ε_{i mod L}``). (diffusers' ``repeat_context``
  is no reference: its ``_prepare_latents_free_noise`` compares the context length with the string
  ``"repeat_context"``, so it draws noise for every frame and repeats nothing.)
- ``FreeNoise`` (Qiu et al., arXiv 2310.15169, "noise rescheduling"): the first ``L`` frames keep their
  noise; every later chunk of ``stride`` frames is a random permutation of the chunk ``L`` frames
  earlier, so every window starts from a shuffle of the first window's noise. This is diffusers'
  ``shuffle_context`` (``_prepare_latents_free_noise``), same permutations for the same generator.
- ``mixed``: ``ε_i = √(1-w)·ε_i + √w·η``, one extra noise frame ``η`` shared by all frames: each frame
  still has unit variance and any two frames are correlated by ``w``. ``η`` is the frame after the last
  one of the seed's noise stream (independent of the sampler's noise, which ComfyUI draws from that seed).

Disabled noise (all zeros, e.g. ``KSamplerAdvanced`` with ``add_noise`` off) stays zeros.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import OptionsError, require_finite

NOISE_TYPES = ["default", "constant", "repeated_context", "FreeNoise", "mixed"]


@dataclass(frozen=True)
class NoiseOptions:
    noise_type: str = "default"
    context_length: int = 16
    stride: int = 4
    weight: float = 0.5
    seed_offset: int = 0

    def __post_init__(self):
        require_finite(context_length=self.context_length, window_stride=self.stride, mix_weight=self.weight,
                       seed_offset=self.seed_offset)  # the node's input names
        if self.noise_type not in NOISE_TYPES:
            raise OptionsError(f"unknown noise_type {self.noise_type!r}; choose one of {NOISE_TYPES}")
        if self.context_length < 1 or self.stride < 1:
            raise OptionsError(f"context_length ({self.context_length}) and window_stride ({self.stride}) must be at least 1")
        if not 0.0 <= self.weight <= 1.0:
            raise OptionsError(f"mix_weight must be in [0, 1], got {self.weight}")


def free_noise(noise: torch.Tensor, context_length: int, stride: int, generator: torch.Generator) -> torch.Tensor:
    """FreeNoise's shuffled repetition of the first window. ``noise``: ``(frames, ...)`` -> same shape.

    Chunk by chunk, in order (a chunk may copy from an earlier, already rewritten chunk), as diffusers does.
    """
    noise = noise.clone()
    frames = noise.shape[0]
    for i in range(context_length, frames, stride):
        source = torch.arange(i - context_length, min(frames, i - context_length + stride))
        shuffled = source[torch.randperm(len(source), generator=generator)]
        end = min(frames, i + len(source))
        noise[i:end] = noise[shuffled[: end - i]]
    return noise


def frames_first(noise: torch.Tensor) -> torch.Tensor:
    """``(frames, c, h, w)`` as it is; a 5-D video latent ``(b, c, frames, h, w)`` -> ``(frames, b, c, h, w)``."""
    return noise.movedim(2, 0) if noise.ndim == 5 else noise


def frames_back(noise: torch.Tensor, ndim: int) -> torch.Tensor:
    return noise.movedim(0, 2) if ndim == 5 else noise


def initial_noise(noise: torch.Tensor, options: NoiseOptions, seed: int | None) -> torch.Tensor:
    """The sampler's ``noise`` rewritten to ``options.noise_type``; ``seed`` (the sampler's) plus the seed
    offset drives FreeNoise's permutations and mixed's shared frame."""
    if options.noise_type == "default" or not noise.any():
        return noise
    x = frames_first(noise)
    frames = x.shape[0]
    generator = torch.Generator().manual_seed((seed or 0) + options.seed_offset)
    if options.noise_type == "constant":
        out = x[:1].expand_as(x).clone()
    elif options.noise_type == "repeated_context":
        out = x[torch.arange(frames) % options.context_length]
    elif options.noise_type == "FreeNoise":
        out = free_noise(x.cpu(), options.context_length, options.stride, generator).to(x)
    else:  # mixed
        # one frame past the sampler's: ComfyUI draws its noise from this seed, so η must not be its frame 0
        shared = torch.randn((frames + 1, *x.shape[1:]), generator=generator)[-1].to(x)
        out = math.sqrt(1.0 - options.weight) * x + math.sqrt(options.weight) * shared
    return frames_back(out, noise.ndim)


def frame_correlation(noise: torch.Tensor) -> torch.Tensor:
    """Pearson correlation between the noise of every pair of frames: ``(frames, ...)`` -> ``(frames, frames)``."""
    flat = frames_first(noise).flatten(1).double()
    return torch.corrcoef(flat)
