"""A draft of one window: frames ``[k, k + L)`` of a long video, sampled with exactly what those frames get in the full run.

The sampler runs on the whole latent batch, so the initial noise (ComfyUI's, or a noise type's, for the whole batch)
is the full run's; the window is evaluated like any context window, so its latents, timesteps, per-frame prompts,
masks and ControlNet hints are the full run's slice (:func:`.evaluation.slice_cond`). The frames outside the window
are not evaluated: their prediction is their own latent, so every sampler leaves them as they are (``denoised = x``).
A draft costs one window per step instead of every window.

In the full run each frame's prediction is fused from every window that holds it, so the final frames differ from
the draft where the neighbouring windows blend in (everywhere but the window's middle, with overlap) and wherever
anchors or NaiveReuse tie windows together; a draft shows the look, the motion and the prompts of the window.
"""

from __future__ import annotations

import torch

from ...errors import FramesError


def draft_window(frames: int, start: int, length: int) -> list[int]:
    """Frames ``[start, start + length)`` of a video of ``frames`` frames (all of it when it is no longer than ``length``);
    raises :class:`FramesError` for a window past the video's end."""
    if start + min(length, frames) > frames:
        raise FramesError(f"the draft window starts at frame {start} and holds {min(length, frames)} frames (context_length), but the video "
                          f"has {frames} frames: it would end past the last frame; use a start from 0 to {max(frames - length, 0)} "
                          "on AnimDiffDraftWindow")
    return list(range(start, start + min(length, frames)))


def outside_window(x_in: torch.Tensor, window: list[int]) -> torch.Tensor:
    """The prediction before the window is added in: ``x_in`` itself outside the window (left as it is), zeros inside."""
    out = x_in.clone()
    out[torch.tensor(window, device=x_in.device)] = 0
    return out
