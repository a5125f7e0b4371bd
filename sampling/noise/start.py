"""What sampling starts from: the noise type and FreeInit's passes (one ComfyUI ``OUTER_SAMPLE`` wrapper).

``OUTER_SAMPLE`` wraps a guider's whole sampling and receives the sampler's noise, so every stock
sampler (KSampler, KSamplerAdvanced, SamplerCustom(Advanced)) starts from the rewritten noise, and
FreeInit can run the sampling several times. Both settings live in one wrapper under one key, so the
noise is rewritten before FreeInit's first pass whatever the order of the nodes.
"""

from __future__ import annotations

import dataclasses
import logging

import comfy.model_management
import comfy.patcher_extension
import torch

from .freeinit import FreeInitOptions, reinitialised_noise
from .noise import NoiseOptions, frames_back, frames_first, initial_noise

KEY = "animdiff_start"
OUTER_SAMPLE = comfy.patcher_extension.WrappersMP.OUTER_SAMPLE


def iteration_callback(callback, iteration: int, iterations: int):
    """The sampler's step callback with steps counted over all passes (progress shows the pass)."""
    if callback is None or iterations == 1:
        return callback
    return lambda step, x0, x, total: callback(iteration * total + step, x0, x, total * iterations)


@dataclasses.dataclass(frozen=True)
class SamplingStart:
    """``OUTER_SAMPLE`` wrapper; immutable, so copies of ``model_options`` may share it."""

    noise: NoiseOptions | None = None
    freeinit: FreeInitOptions | None = None

    def __deepcopy__(self, memo):
        return self

    def typed_noise(self, noise: torch.Tensor, seed: int | None) -> torch.Tensor:
        return initial_noise(noise, self.noise, seed) if self.noise else noise

    def __call__(self, executor, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None,
                 disable_pbar=False, seed=None, **kwargs):
        guider = executor.class_obj
        conds = {k: [c.copy() for c in v] for k, v in guider.conds.items()}  # unprocessed, for every pass
        iterations = self.freeinit.iterations if self.freeinit and float(sigmas[0]) > 0 else 1

        def run(start: torch.Tensor, iteration: int) -> torch.Tensor:
            if iterations > 1:
                logging.info("AnimDiff FreeInit: pass %d of %d", iteration + 1, iterations)
                guider.conds = {k: [c.copy() for c in v] for k, v in conds.items()}
            return executor(start, latent_image, sampler, sigmas, denoise_mask, iteration_callback(callback, iteration, iterations),
                            disable_pbar, seed, **kwargs)

        first = self.typed_noise(noise, seed)
        result = run(first, 0)
        if iterations == 1:
            return result
        patcher = guider.model_patcher
        model_sampling = patcher.get_model_object("model_sampling")
        to_model = patcher.model.process_latent_in
        latent = to_model(latent_image) if torch.count_nonzero(latent_image) > 0 else latent_image
        device = result.device
        for k in range(1, iterations):
            comfy.model_management.throw_exception_if_processing_interrupted()
            if self.freeinit.noise == "same":
                new = first
            else:
                generator = torch.Generator().manual_seed((seed or 0) + k)
                new = self.typed_noise(torch.randn(noise.shape, generator=generator, dtype=noise.dtype), (seed or 0) + k)
            start = reinitialised_noise(frames_first(to_model(result)), frames_first(first.to(device)), frames_first(new.to(device)),
                                        frames_first(latent.to(device)), model_sampling, sigmas[0].to(device), self.freeinit)
            result = run(frames_back(start, noise.ndim).to(noise.dtype), k)
        return result


def use_start(patcher, **settings) -> None:
    """Set the noise type (``noise=``) or FreeInit (``freeinit=``) of ``patcher`` (a clone the caller owns),
    keeping the other setting."""
    current = patcher.get_wrappers(OUTER_SAMPLE, KEY)
    start = dataclasses.replace(current[0] if current else SamplingStart(), **settings)
    patcher.remove_wrappers_with_key(OUTER_SAMPLE, KEY)
    patcher.add_wrapper_with_key(OUTER_SAMPLE, KEY, start)
