"""Noise types, FreeInit passes and motion-module-only windows ("views") in ComfyUI's own sampling, on small real models."""

from __future__ import annotations

import comfy.patcher_extension
import comfy.sample
import pytest
import torch
from animdiff.animate.model import apply_motion_module
from animdiff.animate.views import apply_context_options
from animdiff.sampling.noise import betas
from animdiff.sampling.noise.freeinit import FreeInitOptions
from animdiff.sampling.noise.initial import NoiseOptions, initial_noise
from animdiff.sampling.noise.start import use_start
from animdiff.sampling.windows.plan import ContextOptions
from diffusers import DDIMScheduler
from diffusers.pipelines.free_init_utils import FreeInitMixin
from einops import rearrange
from training_models import conditioning, moving_square, small_motion, small_sd15

MULT = (1, 2, 2)  # the smallest SD1.5-shaped UNet a motion module fits
CONDS = (conditioning(1), conditioning(2))
SEED = 7


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def models():
    return small_sd15(mult=MULT), small_motion(mult=MULT)


@pytest.fixture(scope="module")
def animated(models):
    return apply_motion_module(*models, betas.SQRT_LINEAR)


def noise(frames: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(frames, 4, 8, 8, generator=torch.Generator().manual_seed(seed))


def sample(model, x, steps=2, callback=None, latent=None, denoise=1.0):
    latent = torch.zeros_like(x) if latent is None else latent
    return comfy.sample.sample(model, x, steps, 5.0, "euler", "normal", *CONDS, latent, denoise=denoise, seed=SEED,
                               callback=callback, disable_pbar=True)


def with_start(model, **settings):
    model = model.clone()
    use_start(model, **settings)
    return model


def record_passes(model) -> tuple:
    """A clone whose every sampling pass is recorded: (noise it starts from, its result), inside the pack's wrapper."""
    model, passes = model.clone(), []

    def record(executor, x, *args, **kwargs):
        out = executor(x, *args, **kwargs)
        passes.append((x.clone(), out.clone()))
        return out

    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, "test", record)
    return model, passes


def test_default_noise_and_one_freeinit_pass_are_exactly_no_node(animated):
    x = noise(8)
    plain = sample(animated, x)
    assert torch.equal(sample(with_start(animated, noise=NoiseOptions("default")), x), plain)
    assert torch.equal(sample(with_start(animated, freeinit=FreeInitOptions(iterations=1)), x), plain)


def test_the_sampler_starts_from_the_typed_noise(models, animated):
    options = NoiseOptions("FreeNoise", context_length=4, stride=2, seed_offset=3)
    model, passes = record_passes(with_start(animated, noise=options))
    x = noise(12)
    sample(model, x)
    assert torch.equal(passes[0][0], initial_noise(x, options, SEED))
    constant = sample(with_start(models[0], noise=NoiseOptions("constant")), x)  # plain model: frames are independent
    assert all(torch.equal(frame, constant[0]) for frame in constant)


def test_freeinit_second_pass_starts_from_diffusers_reinitialisation(animated):
    """Text-to-video at full denoise: the second pass's noise is diffusers' ``_apply_free_init`` of the first
    pass's result (in model space) with the first noise and the seed + 1 noise; progress counts both passes."""
    options = FreeInitOptions(iterations=2, filter="butterworth", spatial_stop=0.3, temporal_stop=0.3)
    model, passes = record_passes(with_start(animated, freeinit=options))
    x, progress = noise(8), []
    result = sample(model, x, callback=lambda step, x0, xt, total: progress.append((step, total)))
    assert progress == [(0, 4), (1, 4), (2, 4), (3, 4)]
    (first, first_result), (second, second_result) = passes
    assert torch.equal(first, x) and torch.equal(result, second_result)
    assert torch.isfinite(result).all() and not torch.allclose(result, first_result, atol=1e-3)

    # diffusers' _apply_free_init (checked whole in test_noise.py) on the fresh noise ComfyUI draws, (f c h w) from seed + 1
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="linear")  # the AnimateDiff schedule
    video = lambda t: rearrange(t, "f c h w -> 1 c f h w")  # noqa: E731
    fresh = torch.randn(x.shape, generator=torch.Generator().manual_seed(SEED + 1))
    renoised = scheduler.add_noise(video(animated.model.process_latent_in(first_result)), video(x), torch.tensor([999]))
    low_pass = FreeInitMixin._get_free_init_freq_filter(None, (1, 4, 8, 8, 8), "cpu", "butterworth", 4, 0.3, 0.3)
    expected = FreeInitMixin._apply_freq_filter(None, renoised, video(fresh), low_pass)
    torch.testing.assert_close(video(second), expected, rtol=0, atol=1e-5)


def test_vid2vid_second_pass_with_nothing_kept_repeats_the_first(animated):
    """denoise < 1: the high frequencies come from the input video noised as the first pass started; with
    stop frequencies 0 (nothing of the result kept) and the same noise, the second pass is the first again."""
    video, x = moving_square(8), noise(8, 1)
    keep_nothing = FreeInitOptions(iterations=2, spatial_stop=0.0, temporal_stop=0.0, noise="same")
    once = sample(animated, x, latent=video, denoise=0.6)
    model, passes = record_passes(with_start(animated, freeinit=keep_nothing))
    twice = sample(model, x, latent=video, denoise=0.6)
    torch.testing.assert_close(passes[1][0], x, rtol=0, atol=1e-5)  # up to the FFT's rounding
    torch.testing.assert_close(twice, once, rtol=1e-3, atol=1e-3)
    refined = sample(with_start(animated, freeinit=FreeInitOptions(iterations=2)), x, latent=video, denoise=0.6)
    assert torch.isfinite(refined).all() and not torch.allclose(refined, once, atol=1e-3)


def test_freeinit_and_free_noise_with_context_windows(models):
    windowed = apply_motion_module(*models, betas.SQRT_LINEAR, context_options=ContextOptions(8, 2, schedule="static"))
    model = with_start(with_start(windowed, freeinit=FreeInitOptions(iterations=2)), noise=NoiseOptions("FreeNoise", 8, 6))
    model, passes = record_passes(model)
    x = noise(20, 2)
    result = sample(model, x, steps=1)
    assert len(passes) == 2 and torch.isfinite(result).all()
    assert torch.equal(passes[0][0], initial_noise(x, NoiseOptions("FreeNoise", 8, 6), SEED))  # either node order: noise first


def test_views_up_to_context_length_are_exactly_no_windows(models, animated):
    x = noise(8, 3)
    views = apply_motion_module(*models, betas.SQRT_LINEAR, context_options=ContextOptions(8, 2, views=True))
    assert torch.equal(sample(views, x), sample(animated, x))


def test_views_run_image_layers_on_all_frames_and_motion_modules_in_windows(models):
    """20 frames, windows of 8: the UNet runs once on all frames (cond + uncond), each motion module on 8-frame windows."""
    unet_batches, motion_frames = [], []

    def unet_calls(executor, x, *args, **kwargs):
        unet_batches.append(x.shape[0])
        return executor(x, *args, **kwargs)

    options = ContextOptions(8, 2, schedule="static", views=True)
    model = apply_motion_module(*models, betas.SQRT_LINEAR, context_options=options)
    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test", unet_calls)
    hooks = [m.register_forward_pre_hook(lambda _m, args: motion_frames.append(args[1]))
             for m in models[1].network.modules() if type(m).__name__ == "TemporalTransformer"]
    try:
        x = noise(20, 4)
        result = sample(model, x, steps=1)
    finally:
        for hook in hooks:
            hook.remove()
    assert unet_batches == [40] and set(motion_frames) == {8}
    whole_model_windows = sample(apply_motion_module(*models, betas.SQRT_LINEAR, context_options=ContextOptions(8, 2, schedule="static")),
                                 x, steps=1)
    assert torch.isfinite(result).all() and not torch.allclose(result, whole_model_windows, atol=1e-4)


def test_views_fuse_each_windows_temporal_residual(models):
    module = models[1].network.module_at("down_blocks.0.motion_modules.0")
    x = torch.randn(2 * 12, 32, 4, 4, generator=torch.Generator().manual_seed(5))  # (b f) c h w: two videos of 12 frames
    windows = [torch.arange(0, 8), torch.arange(4, 12)]
    weights = [torch.tensor([1, 2, 3, 4, 1, 1, 1, 1.0]) / 4, torch.tensor([1, 1, 1, 1, 4, 3, 2, 1.0]) / 4]
    weights[0][4:], weights[1][:4] = 0.5, 0.5  # frames 4-7: half from each window
    out = module(x, 12, 1.0, list(zip(windows, weights, strict=True)))
    videos = rearrange(x, "(b f) c h w -> b f c h w", f=12)
    expected = torch.zeros_like(videos)
    for b in range(2):
        for index, weight in zip(windows, weights, strict=True):
            delta = module.temporal_transformer(videos[b, index], 8)
            expected[b, index] += delta * weight.view(-1, 1, 1, 1)
    torch.testing.assert_close(out, x + rearrange(expected, "b f c h w -> (b f) c h w"), rtol=1e-5, atol=1e-6)
    assert torch.equal(module(x, 12, 1.0, [(torch.arange(12), torch.ones(12))]), module(x, 12))


def test_views_need_a_motion_module(models):
    with pytest.raises(ValueError, match="views window only the motion modules"):
        apply_context_options(models[0], ContextOptions(views=True))
