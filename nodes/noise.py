"""Nodes for the initial noise of a video: noise types (FreeNoise, …) and FreeInit's re-initialisation."""

from __future__ import annotations

from ..sampling.noise.freeinit import FILTERS, NOISE_MODES, FreeInitOptions
from ..sampling.noise.initial import NOISE_TYPES, NoiseOptions
from ..sampling.noise.start import use_start
from .motion import CATEGORY


class AnimDiffNoise:
    DESCRIPTION = ("Sets how the sampler's noise is correlated across frames, for every stock sampler. FreeNoise (noise "
                   "rescheduling): each later window starts from a shuffle of the first window's noise, which keeps long "
                   "videos with context windows consistent. constant: one noise for all frames; repeated_context: the first "
                   "window's noise repeated; mixed: each frame's own noise blended with one shared noise; default: unchanged.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("The model, sampling from this noise.",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "Any model whose latent batch is a sequence of frames (animated or plain)."}),
            "noise_type": (list(NOISE_TYPES), {"default": "FreeNoise",
                                         "tooltip": "default: the sampler's noise as it is. constant: frame 0's noise on every frame. "
                                                    "repeated_context: the first context_length frames' noise, repeated. FreeNoise: later "
                                                    "windows reuse the first window's noise, shuffled in chunks of window_stride frames. "
                                                    "mixed: sqrt(1-w)·own + sqrt(w)·shared noise (frames correlated by mix_weight)."}),
            "context_length": ("INT", {"default": 16, "min": 1, "max": 128,
                                       "tooltip": "repeated_context and FreeNoise: frames of the first window (match the context options)."}),
            "window_stride": ("INT", {"default": 4, "min": 1, "max": 128,
                                      "tooltip": "FreeNoise: frames per shuffled chunk, i.e. the distance between window starts "
                                                 "(diffusers' context_stride; context_length - context_overlap of your context options)."}),
            "mix_weight": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01,
                                     "tooltip": "mixed: the share of the common noise, which is also the correlation between any two frames."}),
            "seed_offset": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFF,
                                    "tooltip": "Added to the sampler's seed for FreeNoise's shuffles and mixed's shared noise."}),
        }}

    def apply(self, model, noise_type, context_length, window_stride, mix_weight, seed_offset):
        options = NoiseOptions(noise_type, context_length, window_stride, mix_weight, seed_offset)
        typed = model.clone()
        use_start(typed, noise=options)
        return (typed,)


class AnimDiffFreeInit:
    DESCRIPTION = ("FreeInit: samples the video several times; after each pass the result is noised back to the first noise "
                   "level and its low spatio-temporal frequencies (layout, motion) are kept while the high ones come from new "
                   "noise. Less flicker and more consistent motion, at iterations times the sampling time. With denoise < 1 "
                   "the result is re-noised to the first sigma of the shortened schedule and the high frequencies come from "
                   "the input video noised afresh. iterations 1 samples exactly as without this node.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("The model, sampling in FreeInit passes (progress counts the steps of all passes).",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The animated model (with or without context options)."}),
            "iterations": ("INT", {"default": 3, "min": 1, "max": 10,
                                   "tooltip": "Sampling passes (1 = plain sampling). Each costs a full sampling run."}),
            "filter": (list(FILTERS), {"default": "butterworth",
                                 "tooltip": "Low-pass filter over frames x height x width: butterworth (smooth, sharper with order), "
                                            "gaussian (smoothest), ideal (hard sphere), box (hard cuboid)."}),
            "order": ("INT", {"default": 4, "min": 1, "max": 16, "tooltip": "butterworth only: higher is closer to ideal."}),
            "spatial_stop": ("FLOAT", {"default": 0.25, "min": 0.0, "max": 1.0, "step": 0.01,
                                       "tooltip": "Normalised spatial stop frequency: how much of the result's spatial layout is kept."}),
            "temporal_stop": ("FLOAT", {"default": 0.25, "min": 0.0, "max": 1.0, "step": 0.01,
                                        "tooltip": "Normalised temporal stop frequency: how much of the result's motion is kept."}),
            "noise": (list(NOISE_MODES), {"default": "fresh",
                                    "tooltip": "High frequencies of each new pass: fresh noise (seed + pass, as the paper) or the "
                                               "same noise as the first pass."}),
        }}

    def apply(self, model, iterations, filter, order, spatial_stop, temporal_stop, noise):
        options = FreeInitOptions(iterations, filter, order, spatial_stop, temporal_stop, noise)
        reinitialised = model.clone()
        use_start(reinitialised, freeinit=options)
        return (reinitialised,)


NODES = [AnimDiffNoise, AnimDiffFreeInit]
DISPLAY_NAMES = {
    "AnimDiffNoise": "Noise Type (AnimDiff)",
    "AnimDiffFreeInit": "FreeInit (AnimDiff)",
}
