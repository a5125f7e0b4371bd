"""Noise types and FreeInit (sampling/noise/initial.py, sampling/noise/freeinit.py) against diffusers' FreeNoise and FreeInit."""

from __future__ import annotations

from types import SimpleNamespace

import comfy.model_sampling
import pytest
import torch
from animdiff.sampling.noise import betas
from animdiff.sampling.noise.freeinit import FILTERS, FreeInitOptions, low_pass_filter, mix_frequencies, reinitialised_noise
from animdiff.sampling.noise.initial import NoiseOptions, frame_correlation, free_noise, initial_noise
from diffusers import DDIMScheduler
from diffusers.pipelines.free_init_utils import FreeInitMixin
from diffusers.pipelines.free_noise_utils import AnimateDiffFreeNoiseMixin
from einops import rearrange


@pytest.mark.parametrize("frames,length,stride", [(64, 16, 4), (40, 16, 12), (23, 8, 5), (16, 16, 4), (50, 16, 16)])
def test_free_noise_equals_diffusers_shuffle_context(frames, length, stride):
    pipe = SimpleNamespace(_free_noise_context_length=length, _free_noise_context_stride=stride,
                           _free_noise_noise_type="shuffle_context", vae_scale_factor=8)
    reference = AnimateDiffFreeNoiseMixin._prepare_latents_free_noise(
        pipe, 1, 4, frames, 40, 48, torch.float32, "cpu", generator=torch.Generator().manual_seed(frames))
    generator = torch.Generator().manual_seed(frames)  # the same generator state: its noise, then the shuffles
    noise = rearrange(torch.randn(1, 4, frames, 5, 6, generator=generator), "1 c f h w -> f c h w")
    assert torch.equal(free_noise(noise, length, stride, generator), rearrange(reference, "1 c f h w -> f c h w"))


def test_free_noise_frames_are_the_first_windows_frames():
    noise = torch.randn(64, 4, 5, 6, generator=torch.Generator().manual_seed(0))
    out = initial_noise(noise, NoiseOptions("FreeNoise", 16, 4), seed=3)
    assert torch.equal(out[:16], noise[:16])
    for i in range(16, 64):  # every later frame is one of the first window's, from the chunk 16 frames earlier
        (match,) = [j for j in range(16) if torch.equal(out[i], noise[j])]
        assert match % 16 // 4 == i % 16 // 4
    assert not torch.equal(out, initial_noise(noise, NoiseOptions("FreeNoise", 16, 4, seed_offset=1), seed=3))


def test_noise_types():
    noise = torch.randn(24, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    assert initial_noise(noise, NoiseOptions("default"), 0) is noise
    constant = initial_noise(noise, NoiseOptions("constant"), 0)
    assert all(torch.equal(frame, noise[0]) for frame in constant)
    repeated = initial_noise(noise, NoiseOptions("repeated_context", context_length=8), 0)
    assert torch.equal(repeated, torch.cat([noise[:8]] * 3))
    for weight in (0.0, 0.3, 0.8):
        mixed = initial_noise(noise, NoiseOptions("mixed", weight=weight), 5)
        correlation = frame_correlation(mixed)
        off_diagonal = correlation[~torch.eye(24, dtype=torch.bool)]
        assert abs(float(off_diagonal.mean()) - weight) < 0.05
        assert abs(float(mixed.std()) - 1.0) < 0.05
    zeros = torch.zeros(8, 4, 4, 4)
    assert torch.equal(initial_noise(zeros, NoiseOptions("mixed"), 0), zeros)  # disabled noise stays disabled


def test_video_latents_use_their_frame_axis():
    noise = torch.randn(1, 4, 12, 3, 3, generator=torch.Generator().manual_seed(2))  # b c f h w
    constant = initial_noise(noise, NoiseOptions("constant"), 0)
    assert torch.equal(constant, noise[:, :, :1].expand_as(noise))


def test_bad_noise_options_are_explained():
    with pytest.raises(ValueError, match="unknown noise_type 'pink'"):
        NoiseOptions("pink")
    with pytest.raises(ValueError, match="mix_weight must be in"):
        NoiseOptions("mixed", weight=2.0)
    with pytest.raises(ValueError, match="unknown filter 'sinc'"):
        FreeInitOptions(filter="sinc")


def diffusers_filter(shape, options: FreeInitOptions) -> torch.Tensor:
    return FreeInitMixin._get_free_init_freq_filter(None, shape, "cpu", options.filter, options.order,
                                                    options.spatial_stop, options.temporal_stop)


@pytest.mark.parametrize("name", [f for f in FILTERS if f != "box"])
@pytest.mark.parametrize("frames,height,width,d_s,d_t,order", [(16, 8, 8, 0.25, 0.25, 4), (9, 5, 7, 0.4, 0.1, 2), (12, 6, 4, 0.0, 0.3, 4)])
def test_filters_equal_diffusers(name, frames, height, width, d_s, d_t, order):
    options = FreeInitOptions(filter=name, order=order, spatial_stop=d_s, temporal_stop=d_t)
    reference = diffusers_filter((1, 4, frames, height, width), options)
    torch.testing.assert_close(low_pass_filter(frames, height, width, options).expand_as(reference), reference, rtol=0, atol=1e-6)


def test_box_filter_is_the_centre_cuboid():
    mask = low_pass_filter(16, 8, 8, FreeInitOptions(filter="box"))  # half-sizes round(4 * 0.25) = 1, round(8 * 0.25) = 2
    expected = torch.zeros(16, 8, 8)
    expected[6:10, 3:5, 3:5] = 1
    assert torch.equal(mask, expected)


def animatediff_schedule():
    """ComfyUI's AnimateDiff schedule and diffusers' scheduler with the same betas (linear 0.00085-0.012)."""
    class Eps(comfy.model_sampling.ModelSamplingDiscrete, comfy.model_sampling.EPS):
        pass

    sampling = betas.model_sampling_for(betas.SQRT_LINEAR, Eps())
    return sampling, DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="linear", num_train_timesteps=1000)


@pytest.mark.parametrize("name", FILTERS)
def test_one_reinitialisation_equals_diffusers(name):
    """Text-to-video at full denoise: ComfyUI's sampler starts from noise * sqrt(1 + sigma_max^2), so the
    noise handed to the next pass is diffusers' re-initialised latents."""
    options = FreeInitOptions(filter=name, spatial_stop=0.3, temporal_stop=0.2)
    sampling, scheduler = animatediff_schedule()

    def filter_of(**kw):  # diffusers has no box filter: the re-noising and mixing are still diffusers'
        if name == "box":
            return low_pass_filter(*kw["shape"][-3:], options).expand(kw["shape"])
        return FreeInitMixin._get_free_init_freq_filter(None, **kw)

    gen = torch.Generator().manual_seed(4)
    result, first = torch.randn(2, 1, 4, 12, 6, 6, generator=gen)  # b c f h w, as diffusers holds video latents
    pipe = SimpleNamespace(scheduler=scheduler, _free_init_method=name, _free_init_order=options.order,
                           _free_init_spatial_stop_frequency=0.3, _free_init_temporal_stop_frequency=0.2,
                           _free_init_use_fast_sampling=False, _free_init_initial_noise=first, _get_free_init_freq_filter=filter_of,
                           _apply_freq_filter=lambda *a, **kw: FreeInitMixin._apply_freq_filter(None, *a, **kw))
    reference, _ = FreeInitMixin._apply_free_init(pipe, result, 1, 2, "cpu", torch.float32, torch.Generator().manual_seed(9))
    new = torch.randn(1, 4, 12, 6, 6, generator=torch.Generator().manual_seed(9))
    frames_first = lambda x: rearrange(x, "1 c f h w -> f c h w")  # noqa: E731
    ours = reinitialised_noise(frames_first(result), frames_first(first), frames_first(new), torch.zeros(12, 4, 6, 6), sampling,
                               sampling.sigma_max, options)
    torch.testing.assert_close(ours, frames_first(reference), rtol=0, atol=1e-6)


def test_frequency_mixing_equals_diffusers():
    gen = torch.Generator().manual_seed(6)
    x, noise = torch.randn(2, 4, 10, 8, 8, generator=gen)
    low_pass = low_pass_filter(10, 8, 8, FreeInitOptions(filter="gaussian"))
    torch.testing.assert_close(mix_frequencies(x, noise, low_pass), FreeInitMixin._apply_freq_filter(None, x, noise, low_pass),
                               rtol=0, atol=1e-6)


def test_mixed_shared_noise_is_independent_of_the_samplers_noise_from_the_same_seed():
    """ComfyUI's KSampler draws its noise with torch.manual_seed(seed): the shared frame must not be one of those frames."""
    noise = torch.randn(16, 4, 32, 32, generator=torch.Generator().manual_seed(11))
    mixed = initial_noise(noise, NoiseOptions("mixed", weight=0.5), seed=11)
    correlation = frame_correlation(mixed)
    assert abs(float(correlation[0, 1:].mean()) - float(correlation[1, 2:].mean())) < 0.05
