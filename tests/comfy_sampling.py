"""In-process sampling helpers: ComfyUI's own ``comfy.sample.sample`` on small latents."""

from __future__ import annotations

import comfy.sample
import torch

OWN = "use model's own"  # beta_schedule that keeps the checkpoint's, for exact comparisons with the plain model


def noise(frames: int, seed: int = 0) -> torch.Tensor:
    """Initial noise for ``frames`` latents of 4x4 (32x32 pixels)."""
    return torch.randn(frames, 4, 4, 4, generator=torch.Generator().manual_seed(seed))


def sample(model, conds, x_noise, steps=2, cfg=7.5, capture=None):
    """Sampled latents; ``capture`` collects each step's denoised prediction."""
    positive, negative = conds
    callback = (lambda step, x0, x, total: capture.append(x0.clone())) if capture is not None else None
    return comfy.sample.sample(model, x_noise, steps, cfg, "euler", "normal", positive, negative,
                               torch.zeros_like(x_noise), seed=0, callback=callback, disable_pbar=True)
