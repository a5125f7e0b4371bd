"""Nodes for context-windowed sampling: long videos with 16-frame temporal attention."""

from __future__ import annotations

from ..animate.views import apply_context_options
from ..sampling.windows.plan import FUSE_METHODS, SCHEDULES, ContextOptions
from .motion import CATEGORY


class AnimDiffContextOptions:
    DESCRIPTION = (
        "Samples videos longer than the motion module's window (16 frames) in overlapping windows whose predictions "
        "are blended at every step. Windows share a model call while ComfyUI's memory rule allows it (faster); "
        "windows_per_call 1 sets memory by the window alone, not the video length. Connect to "
        "AnimDiffApplyMotionModule (or AnimDiffApplyContextOptions for a plain model). Videos no longer than "
        "context_length are sampled exactly as without these options."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("CONTEXT_OPTIONS",)
    OUTPUT_TOOLTIPS = ("How to split the frames into windows and blend them.",)
    FUNCTION = "options"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "context_length": ("INT", {"default": 16, "min": 1, "max": 128,
                                           "tooltip": "Frames per window. Keep it at what the motion module was trained on (16); "
                                                      "it cannot exceed its positional encoding (24 for v1 and HotshotXL, "
                                                      "32 for v2/v3/AnimateDiff-SDXL, 64 for AnimateLCM)."}),
                "context_overlap": ("INT", {"default": 4, "min": 0, "max": 127,
                                            "tooltip": "Frames shared by neighbouring windows. More overlap: smoother transitions, more compute."}),
                "context_stride": ("INT", {"default": 1, "min": 1, "max": 8,
                                           "tooltip": "1: windows of consecutive frames only. N > 1 also adds windows of frames 2, 4, … 2^(N-1) "
                                                      "apart, which keep distant parts of a long video consistent."}),
                "closed_loop": ("BOOLEAN", {"default": False,
                                            "tooltip": "Windows wrap around the end so the last frames blend into the first: for seamless loops."}),
                "schedule": (list(SCHEDULES), {"default": "uniform",
                                         "tooltip": "uniform: sliding windows shifted differently at every step, so seams never stay put. "
                                                    "static: the same sliding windows at every step. batched: back-to-back windows "
                                                    "(ignores context_overlap and context_stride)."}),
                "fuse_method": (list(FUSE_METHODS), {"default": "pyramid",
                                               "tooltip": "How overlapping windows are blended per frame. pyramid: weight falls linearly to the "
                                                          "window edges. flat: plain average. gauss: Gaussian around the window centre. "
                                                          "relative: pyramid, but no fade at the first and last frames of the video."}),
            },
            "optional": {
                "views": ("BOOLEAN", {"default": False,
                                      "tooltip": "Off: the whole model runs per window. On ('views'): the image layers see all frames at "
                                                 "once and only the motion modules' temporal attention runs per window, fused with "
                                                 "fuse_method (FreeNoise's window fusion). Memory is then the whole batch's for the image "
                                                 "layers. Needs AnimDiffApplyMotionModule."}),
                "windows_per_call": ("INT", {"default": 0, "min": 0, "max": 64,
                                             "tooltip": "Most windows evaluated together in one model call (same result). 0: as many as "
                                                        "ComfyUI's memory rule allows, fastest; peak memory grows with the windows "
                                                        "batched, within free memory. 1: one window per call, the lowest peak memory. "
                                                        "SparseCtrl keyframes always run one window per call; ignored with views on."}),
            },
        }

    def options(self, context_length, context_overlap, context_stride, closed_loop, schedule, fuse_method, views=False,
                windows_per_call=0):
        return (ContextOptions(context_length, context_overlap, context_stride, closed_loop, schedule, fuse_method, views,
                               windows_per_call),)


class AnimDiffApplyContextOptions:
    DESCRIPTION = ("Samples a MODEL's latent batch in context windows without a motion module: plain SD images in "
                   "windows, for long image sequences (img2img, ControlNet) that would not fit in memory at once.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("The model, sampling in windows.",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "Any model whose latent batch is a sequence of frames."}),
            "context_options": ("CONTEXT_OPTIONS", {"tooltip": "From AnimDiffContextOptions."}),
        }}

    def apply(self, model, context_options):
        return (apply_context_options(model, context_options),)


NODES = [AnimDiffContextOptions, AnimDiffApplyContextOptions]
DISPLAY_NAMES = {
    "AnimDiffContextOptions": "Context Options (AnimDiff)",
    "AnimDiffApplyContextOptions": "Apply Context Options (AnimDiff)",
}
