"""Which frames a UNet call computes, told to patches through ``transformer_options``.

Other packs (IPAdapter-plus, Advanced-ControlNet, …) read AnimateDiff-Evolved's exposed form::

    transformer_options["ad_params"] = {"full_length": F, "context_length": L, "sub_idxs": [frame, ...]}

``sub_idxs`` are the frames of the video computed in this call (a context window, or all
frames), ``full_length`` the video's frame count and ``context_length`` the window length (the
video length without windows). Several windows of equal length may share one call: ``sub_idxs`` then
lists their frames one window after the other, and ``ad_params["windows"]`` (this pack's key, 1
otherwise) says how many; the motion modules see each as its own video. With windows, ``transformer_options["context_window"]`` is also
set to ComfyUI's own :class:`comfy.context_windows.IndexListContextWindow`, as core ComfyUI's
context windows do for patches.
"""

from __future__ import annotations

import inspect

from comfy.context_windows import IndexListContextWindow

AD_PARAMS = "ad_params"
WINDOWS = "windows"  # within ad_params: how many windows of equal length the call's frames are
CONTEXT_WINDOW = "context_window"
# Newer cores (0.33) derive a window's position from the video length and need it; 0.3.75 takes only the indices.
WINDOW_TAKES_LENGTH = "total_frames" in inspect.signature(IndexListContextWindow.__init__).parameters


def window_params(sub_idxs: list[int], full_length: int, context_length: int, windows: int = 1) -> dict:
    """The ``ad_params`` dict (key names but ``windows`` fixed by AnimateDiff-Evolved; other packs read them)."""
    return {"full_length": full_length, "context_length": context_length, "sub_idxs": list(sub_idxs), WINDOWS: windows}


def with_window(model_options: dict, sub_idxs: list[int], full_length: int, context_length: int, windows: int = 1) -> dict:
    """A shallow copy of ``model_options`` whose ``transformer_options`` name the frames of the call's
    ``windows`` windows (``sub_idxs``: their frames, one window after the other)."""
    transformer_options = dict(model_options.get("transformer_options", {}))
    transformer_options[AD_PARAMS] = window_params(sub_idxs, full_length, context_length, windows)
    length = {"total_frames": full_length} if WINDOW_TAKES_LENGTH else {}
    transformer_options[CONTEXT_WINDOW] = IndexListContextWindow(list(sub_idxs), **length)
    return {**model_options, "transformer_options": transformer_options}


def frames_of_call(transformer_options: dict, frames: int) -> tuple[list[int], int]:
    """``(sub_idxs, full_length)`` of a UNet call on videos of ``frames`` frames; without
    ``ad_params`` the call computes the whole video. Sets ``ad_params`` there if missing."""
    params = transformer_options.get(AD_PARAMS)
    if params is None or len(params["sub_idxs"]) != frames:
        params = window_params(range(frames), frames, frames)
        transformer_options[AD_PARAMS] = params
    return params["sub_idxs"], params["full_length"]


def video_length(transformer_options: dict, frames: int) -> int:
    """The frames of each video the motion modules see in a call on ``frames`` frames per cond (after
    :func:`frames_of_call`): one window's length when the call holds several windows."""
    return frames // transformer_options[AD_PARAMS].get(WINDOWS, 1)
