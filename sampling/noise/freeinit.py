"""FreeInit (Wu et al., arXiv 2312.07537): re-initialise the noise from the last result's low frequencies.

After a full sampling pass, the result ``x₀`` is diffused back to the first noise level with the first
noise ``ε₀`` and split in 3-D frequency space (frames, height, width): its low frequencies are kept,
the high frequencies come from new noise, and the next pass starts there. Low spatio-temporal
frequencies carry the layout and the motion; repeating this closes the gap between the noise a
model was trained on and the (too independent) noise it is sampled from, so videos flicker less.

In ComfyUI terms, with ``S(ε, x) = noise_scaling(σ₀, ε, x)`` (the sampler's own start) and ``L`` the
input latent (zeros for text-to-video)::

    start_k = LPF(S(ε₀, x₀^(k-1), exact)) + HPF(S(ε_k, L))

where ``exact`` is the forward process ``x₀ + σ₀ε₀`` (not ComfyUI's ``√(1+σ²)`` shortcut at σ_max).
For text-to-video at full denoise this is diffusers' ``_apply_free_init`` exactly:
``LPF(√ᾱ x₀ + √(1-ᾱ) ε₀) + HPF(ε_k)``. With denoise < 1 (vid2vid) σ₀ is the first sigma of the
shortened schedule: the previous result is re-noised to that level, and the high frequencies come
from the input video noised with new noise, as the first pass started.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.fft as fft

from ..errors import OptionsError, require_finite

FILTERS = ["butterworth", "ideal", "gaussian", "box"]
NOISE_MODES = ["fresh", "same"]


@dataclass(frozen=True)
class FreeInitOptions:
    iterations: int = 3
    filter: str = "butterworth"
    order: int = 4
    spatial_stop: float = 0.25
    temporal_stop: float = 0.25
    noise: str = "fresh"

    def __post_init__(self):
        require_finite(**vars(self))
        if self.iterations < 1:
            raise OptionsError(f"iterations must be at least 1, got {self.iterations}")
        if self.filter not in FILTERS:
            raise OptionsError(f"unknown filter {self.filter!r}; choose one of {FILTERS}")
        if self.noise not in NOISE_MODES:
            raise OptionsError(f"unknown noise mode {self.noise!r}; choose one of {NOISE_MODES}")
        if not (0.0 <= self.spatial_stop <= 1.0 and 0.0 <= self.temporal_stop <= 1.0):
            raise OptionsError(f"spatial_stop ({self.spatial_stop}) and temporal_stop ({self.temporal_stop}) must be in [0, 1]")


def low_pass_filter(frames: int, height: int, width: int, options: FreeInitOptions) -> torch.Tensor:
    """The low-pass mask ``(frames, height, width)`` in fftshift-ed order (zero frequency in the centre).

    ``d²`` is the squared normalised distance from the centre, the temporal axis stretched by
    ``d_s / d_t``; butterworth ``1 / (1 + (d²/d_s²)^n)``, gaussian ``exp(-d² / 2d_s²)``, ideal ``d² ≤ 2d_s``,
    box: a cuboid of half-sizes ``round(H//2 · d_s)`` and ``round(T//2 · d_t)``.
    """
    d_s, d_t = options.spatial_stop, options.temporal_stop
    mask = torch.zeros(frames, height, width)
    if d_s == 0 or d_t == 0:
        return mask
    if options.filter == "box":
        s, t = round(int(height // 2) * d_s), round(frames // 2 * d_t)
        cf, ch, cw = frames // 2, height // 2, width // 2
        mask[cf - t:cf + t, ch - s:ch + s, cw - s:cw + s] = 1.0
        return mask

    def axis(n: int, stretch: float = 1.0) -> torch.Tensor:
        return (stretch * (2 * torch.arange(n, dtype=torch.float64) / n - 1)) ** 2

    d2 = axis(frames, d_s / d_t)[:, None, None] + axis(height)[None, :, None] + axis(width)[None, None, :]
    if options.filter == "butterworth":
        mask = 1 / (1 + (d2 / d_s**2) ** options.order)
    elif options.filter == "gaussian":
        mask = torch.exp(-1 / (2 * d_s**2) * d2)
    else:  # ideal
        mask = (d2 <= d_s * 2).double()
    return mask.float()


def mix_frequencies(x: torch.Tensor, noise: torch.Tensor, low_pass: torch.Tensor) -> torch.Tensor:
    """``x``'s low and ``noise``'s high frequencies over the last three axes ``(..., frames, h, w)``."""
    dims = (-3, -2, -1)
    x_freq = fft.fftshift(fft.fftn(x, dim=dims), dim=dims)
    noise_freq = fft.fftshift(fft.fftn(noise, dim=dims), dim=dims)
    mixed = x_freq * low_pass + noise_freq * (1 - low_pass)
    return fft.ifftn(fft.ifftshift(mixed, dim=dims), dim=dims).real


def max_denoise(model_sampling, sigma: float) -> bool:
    """Whether the sampler treats ``sigma`` as pure noise (``σ ≥ σ_max``), as ComfyUI's samplers decide."""
    sigma_max = float(model_sampling.sigma_max)
    return math.isclose(sigma_max, sigma, rel_tol=1e-05) or sigma > sigma_max


def reinitialised_noise(result: torch.Tensor, first_noise: torch.Tensor, new_noise: torch.Tensor, latent: torch.Tensor,
                        model_sampling, sigma: torch.Tensor, options: FreeInitOptions) -> torch.Tensor:
    """The sampler's noise argument for the next pass (see the module docstring).

    ``result``, ``latent``: model-space latents ``(frames, c, h, w)`` (or ``(frames, b, c, h, w)``);
    ``first_noise``, ``new_noise``: unit noise of that shape; ``sigma``: the schedule's first sigma.
    Returns the same shape.
    """
    full = max_denoise(model_sampling, float(sigma))
    scale = lambda eps, x, md: model_sampling.noise_scaling(sigma, eps, x, max_denoise=md)  # noqa: E731
    renoised = scale(first_noise, result, False)
    fresh = scale(new_noise, latent, full)
    low_pass = low_pass_filter(result.shape[0], *result.shape[-2:], options).to(result.device)
    # the frame axis next to height and width, (f c h w) -> (c f h w), as the FFT runs over the last three
    start = mix_frequencies(renoised.float().movedim(0, -3), fresh.float().movedim(0, -3), low_pass).movedim(-3, 0)
    zeros = torch.zeros_like(start)
    base, unit = scale(zeros, latent.to(start), full), scale(torch.ones_like(start), zeros, full)
    return (start - base) / unit
