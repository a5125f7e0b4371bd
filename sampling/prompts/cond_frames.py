"""Per-frame conditioning against the video it samples: the frame counts must agree.

A conditioning whose tensors have one row per frame (prompt travel from ``AnimDiffPromptSchedule``, or any
CONDITIONING whose batch is not 1) conditions frame ``i`` of the latent batch with row ``i``. ComfyUI fits a cond
of ``n`` rows to a batch of ``N`` latents with ``comfy.utils.repeat_to_batch_size``: ``n > N`` keeps the first ``N``
rows, ``n < N`` tiles the rows (``row = i mod n``) and cuts the last copy short. The rule kept here:

- ``n == 1`` or ``n == N``: as ComfyUI does;
- ``n`` divides ``N``: whole copies of the ``n`` frames, back to back (a 16-frame schedule looped over a 32-frame
  video), exactly ComfyUI's tiling, kept because it is a deliberate, lossless use;
- anything else is refused at sampling, naming both counts: ``n > N`` would drop the last ``N - n`` rows' prompts
  silently, and a tiling that does not divide ``N`` restarts the schedule part-way (frames 8-11 of a 12-frame video
  taking frames 0-3 of an 8-frame schedule).

Context windows cut each window's rows out of the tiled cond (:func:`video_rows`), so a window sees the rows the
whole video would: sampling with and without windows conditions every frame alike.
"""

from __future__ import annotations

import comfy.patcher_extension
import comfy.utils
import torch

from ...errors import FramesError
from ...touchpoints import WrapperKeys

# OUTER_SAMPLE: the guider's conds and the sampler's noise of the whole video; PREPARE_SAMPLING would see the
# one-window shape the context windows' memory estimate passes on.
OUTER_SAMPLE = comfy.patcher_extension.WrappersMP.OUTER_SAMPLE
PER_FRAME = ("cross_attn", "pooled_output")  # the per-frame parts of a conditioning entry (text embedding, SDXL pooled)


def rows(value) -> int | None:
    """The number of rows (the leading dimension) of a tensor that has one; ``None`` for a 0-d tensor or no tensor."""
    return value.shape[0] if torch.is_tensor(value) and value.ndim > 0 else None


def fits(count: int, frames: int) -> bool:
    """Whether a cond of ``count`` rows conditions a ``frames``-frame video as one row per frame (see the module)."""
    return count == 1 or frames % count == 0


def video_rows(value, frames: int) -> torch.Tensor | None:
    """A cond tensor with one row per frame of a ``frames``-frame video: as it is when it has ``frames`` rows, tiled
    as ComfyUI tiles it (``repeat_to_batch_size``) when it has more than one row and another count; ``None`` for
    anything that is no such tensor (one row, or no tensor), which every frame shares."""
    count = rows(value)
    if count is None or count == 1:
        return None
    return value if count == frames else comfy.utils.repeat_to_batch_size(value, frames)


def check_cond_frames(conds: dict, frames: int) -> None:
    """Refuse a per-frame conditioning whose frame count does not fit the ``frames`` latents (:func:`fits`).
    ``conds``: the guider's conditionings by name (``positive``, ``negative``), entries as ComfyUI converted them."""
    for name, entries in (conds or {}).items():
        for entry in entries or ():
            for part in PER_FRAME:
                count = rows(entry.get(part))
                if count is not None and not fits(count, frames):
                    raise FramesError(
                        f"the {name} conditioning has {count} frames (one embedding per frame, e.g. from AnimDiffPromptSchedule) "
                        f"but the latent batch has {frames}: set the frames input of AnimDiffPromptSchedule (or the node that "
                        f"made it) to {frames}, or the latent's batch_size to {count}. A conditioning with fewer frames must "
                        f"divide the batch (it then repeats, as ComfyUI repeats conds); one with more would lose frames")


class CondFrameCheck:
    """``OUTER_SAMPLE`` wrapper running :func:`check_cond_frames` on the guider's conds and the sampler's noise
    ``(frames, c, h, w)`` before anything is loaded or run; stateless, so copies of ``model_options`` may share it."""

    def __deepcopy__(self, memo):
        return self

    def __call__(self, executor, noise, *args, **kwargs):
        check_cond_frames(executor.class_obj.conds, noise.shape[0])
        return executor(noise, *args, **kwargs)


def use_cond_frame_check(patcher) -> None:
    """Check the conds of every sampling with ``patcher`` (a clone the caller owns) against its latent batch; once."""
    if not patcher.get_wrappers(OUTER_SAMPLE, WrapperKeys.COND_FRAMES):
        patcher.add_wrapper_with_key(OUTER_SAMPLE, WrapperKeys.COND_FRAMES, CondFrameCheck())
