"""Context extras: anchored windows, NaiveReuse, and a draft of one window before a long run."""

from __future__ import annotations

from dataclasses import replace

from ..errors import require_finite
from ..sampling.windows.anchors import ANCHOR_MODES, ANCHOR_SHARES, Anchors, NaiveReuse, parse_indexes
from .motion import CATEGORY

OPTIONS = ("CONTEXT_OPTIONS", {"tooltip": "From AnimDiffContextOptions (or another context-extras node)."})
PERCENT = {"min": 0.0, "max": 1.0, "step": 0.001}


class AnimDiffContextAnchors:
    DESCRIPTION = (
        "Anchored windows: reference frames that every context window shares, against drift and seams in long videos. "
        "attention (AnimateDiff-Evolved's ContextRef): each window's image layers also attend to the reference frames' "
        "self-attention keys and values. latents (ComfyUI's retain lists): the reference frames' latents join every "
        "window's model call, so the motion modules see them too. Videos no longer than context_length are sampled "
        "exactly as without anchors; with anchors each window runs in its own model call."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("CONTEXT_OPTIONS",)
    OUTPUT_TOOLTIPS = ("The context options with anchors (replacing earlier ones).",)
    FUNCTION = "anchor"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "context_options": OPTIONS,
            "share": (list(ANCHOR_SHARES), {"default": "attention",
                                           "tooltip": "attention: the reference frames' keys and values in every window's self-attention "
                                                      "(image layers). latents: the reference frames' latents in every window's call "
                                                      "(needs context_length + reference frames within the motion module's limit)."}),
            "mode": (list(ANCHOR_MODES), {"default": "first",
                                         "tooltip": "first: the video's first frames. sliding: the frames just before each window "
                                                    "(the reference moves along). indexes: the frames listed in indexes."}),
            "frames": ("INT", {"default": 1, "min": 1, "max": 16,
                               "tooltip": "Reference frames of first and sliding. More: stronger tie, more memory and compute."}),
            "indexes": ("STRING", {"default": "0",
                                   "tooltip": "Frames of mode indexes, from 0, separated by commas (e.g. 0, 64). Each must be in the video."}),
            "strength": ("FLOAT", {"default": 1.0, **PERCENT,
                                   "tooltip": "attention only: 0 plain self-attention, 1 full attention to the references (a blend between)."}),
            "start_percent": ("FLOAT", {"default": 0.0, **PERCENT, "tooltip": "Sampling progress where anchors start."}),
            "end_percent": ("FLOAT", {"default": 1.0, **PERCENT, "tooltip": "Sampling progress where anchors end."}),
        }}

    def anchor(self, context_options, share, mode, frames, indexes, strength, start_percent, end_percent):
        anchors = Anchors(mode, frames, parse_indexes(indexes), share, strength, start_percent, end_percent)
        return (replace(context_options, anchors=anchors),)


class AnimDiffNaiveReuse:
    DESCRIPTION = (
        "AnimateDiff-Evolved's NaiveReuse: early in sampling, the first window's prediction is repeated along the video and "
        "mixed into every frame's (weighted_mean of it), so all windows start from one layout. Videos no longer than "
        "context_length are sampled exactly as without it."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("CONTEXT_OPTIONS",)
    OUTPUT_TOOLTIPS = ("The context options with NaiveReuse.",)
    FUNCTION = "reuse"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "context_options": OPTIONS,
            "weighted_mean": ("FLOAT", {"default": 0.95, **PERCENT, "tooltip": "How much of the first window's prediction each frame takes."}),
            "start_percent": ("FLOAT", {"default": 0.0, **PERCENT, "tooltip": "Sampling progress where the reuse starts."}),
            "end_percent": ("FLOAT", {"default": 0.15, **PERCENT, "tooltip": "Sampling progress where the reuse ends."}),
        }}

    def reuse(self, context_options, weighted_mean, start_percent, end_percent):
        return (replace(context_options, naive_reuse=NaiveReuse(weighted_mean, start_percent, end_percent)),)


class AnimDiffDraftWindow:
    DESCRIPTION = (
        "A cheap look before a long run: samples only frames start to start + context_length - 1 of the video, with exactly "
        "the noise, prompts, ControlNet hints and masks those frames get in the full run (same seed and sampler). The "
        "other frames are left as noise: take the window with Latent From Batch (batch_index start, length "
        "context_length) before decoding. The full run's frames will differ: there every frame is blended with the "
        "neighbouring windows that overlap it (and anchors or NaiveReuse tie the windows together), so the draft "
        "shows the window's look, motion and prompts, not its final frames."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("CONTEXT_OPTIONS",)
    OUTPUT_TOOLTIPS = ("The context options sampling only the draft window.",)
    FUNCTION = "draft"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "context_options": OPTIONS,
            "start": ("INT", {"default": 0, "min": 0, "max": 100000,
                              "tooltip": "The window's first frame; start + context_length must not pass the video's end."}),
        }}

    def draft(self, context_options, start):
        require_finite(start=start)
        return (replace(context_options, draft_start=start),)


NODES = [AnimDiffContextAnchors, AnimDiffNaiveReuse, AnimDiffDraftWindow]
DISPLAY_NAMES = {
    "AnimDiffContextAnchors": "Context Anchors (AnimDiff)",
    "AnimDiffNaiveReuse": "Context NaiveReuse (AnimDiff)",
    "AnimDiffDraftWindow": "Draft One Window (AnimDiff)",
}
