"""Low-precision UNets: the motion modules compute in the UNet's dtype and the positional encoding stays exact.

Reduced-width ComfyUI SD1.5 models (:mod:`training_models`) whose weights are stored in float32, bf16,
fp16, or fp8 computing in bf16 (ComfyUI's manual cast: what UNETLoader's ``weight_dtype`` fp8_e4m3fn sets
up on a bf16 device), sampled by ComfyUI's own sampler on CPU, one step at cfg 1 (one UNet call).

Tolerances come from the unit roundoff ``u`` of the dtype (the largest relative error of one rounding):
bf16 2^-8, fp16 2^-11, fp8 e4m3 2^-4. One motion module's residual passes through a few roundings of
that size (norms, projections, attention, feed-forward), which do not all add up: 4u bounds it; fp8 weights
are rounded once each, and that rounding dominates: 2u of fp8. Whole-UNet results are compared with the plain
UNet's own error in the same dtype, because the random reduced UNet amplifies rounding (its plain bf16 output
is about 8 % off float32 after one call): the motion modules may not take the model further from float32 than
twice what the image layers alone do (plus 4u).
"""

from __future__ import annotations

import functools

import comfy.model_patcher
import pytest
import torch
from animdiff.animate.model import apply_motion_module
from animdiff.motion_module import LoadedMotionModule, MotionNetwork
from animdiff.motion_module.attention import PositionalEncoding, sinusoidal_encoding
from comfy_sampling import OWN, noise, sample
from training_models import conditioning, small_motion, small_sd15

FP8 = torch.float8_e4m3fn
# name: (UNet storage dtype, ComfyUI manual-cast dtype or None, compute dtype, its unit roundoff)
PRECISIONS = {
    "bf16": (torch.bfloat16, None, torch.bfloat16, 2 ** -8),
    "fp16": (torch.float16, None, torch.float16, 2 ** -11),
    "fp8-bf16": (FP8, torch.bfloat16, torch.bfloat16, 2 ** -4),
    "fp32-bf16": (torch.float32, torch.bfloat16, torch.bfloat16, 2 ** -8),  # ComfyUI's ModelComputeDtype node
}
CONDS = (conditioning(1), conditioning(2))
MOTION = small_motion("v2")  # float32 weights, computed (exact) positional encodings; v2: mid-block modules too


def stored_as(motion: LoadedMotionModule, dtype: torch.dtype) -> LoadedMotionModule:
    """``motion``'s weights stored in ``dtype`` (as the loader stores them when ComfyUI's UNet dtype is ``dtype``)."""
    network = MotionNetwork(motion.config, dtype=dtype)
    network.load_state_dict(motion.network.state_dict())
    patcher = comfy.model_patcher.ModelPatcher(network.eval().requires_grad_(False), torch.device("cpu"), torch.device("cpu"))
    return LoadedMotionModule(f"{motion.name} ({dtype})", patcher)


@functools.cache
def unet(precision: str = "fp32") -> comfy.model_patcher.ModelPatcher:
    """The same random reduced SD1.5 UNet stored (and computing) in ``precision``; ``fp32-bf16`` through
    ``set_model_compute_dtype`` (ComfyUI's ModelComputeDtype node), the others as ComfyUI's loaders build them."""
    if precision == "fp32-bf16":
        model = unet().clone()
        model.set_model_compute_dtype(torch.bfloat16)
        return model
    storage, cast = PRECISIONS[precision][:2] if precision != "fp32" else (torch.float32, None)
    return small_sd15(dtype=storage, manual_cast_dtype=cast)


def one_call(model, motion: LoadedMotionModule | None = None) -> torch.Tensor:
    """The denoised prediction of one UNet call on 4 frames (one euler step at cfg 1), float32."""
    animated = apply_motion_module(model, motion, OWN) if motion else model
    return sample(animated, CONDS, noise(4, 4), steps=1, cfg=1.0)


@functools.cache
def denoised(precision: str = "fp32", motion_dtype: torch.dtype | None = None) -> torch.Tensor:
    """:func:`one_call` of :func:`unet` (``precision``), plain or with :data:`MOTION` stored in ``motion_dtype``."""
    return one_call(unet(precision), stored_as(MOTION, motion_dtype) if motion_dtype else None)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def record_dtypes(module: torch.nn.Module) -> tuple[dict[str, set], list]:
    """Forward hooks on every submodule of ``module``: class name -> the dtypes of its tensor inputs and outputs."""
    seen: dict[str, set] = {}

    def hook(layer, args, out):
        tensors = [a for a in args if torch.is_tensor(a)] + [out]
        seen.setdefault(type(layer).__name__, set()).update(t.dtype for t in tensors)

    return seen, [m.register_forward_hook(hook) for m in module.modules()]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_motion_modules_compute_in_the_unets_dtype(precision):
    """Every layer of the motion modules (projections, norms, attention, positional encoding, the residual
    handed back to the UNet, scaled by a per-pixel mask) sees and returns the UNet's compute dtype: no float32
    round trip, no dtype error, with float32 motion weights (ComfyUI's casting layers cast them per call)."""
    compute = PRECISIONS[precision][2]
    seen, handles = record_dtypes(MOTION.network)
    try:
        animated = apply_motion_module(unet(precision), MOTION, OWN, motion_scale_mask=torch.full((1, 32, 32), 0.7))
        out = sample(animated, CONDS, noise(4, 4), steps=1, cfg=1.0)
    finally:
        for handle in handles:
            handle.remove()
    assert bool(torch.isfinite(out).all())
    assert {"Linear", "LayerNorm", "GroupNorm", "PositionalEncoding", "TemporalAttention", "TemporalModule"} <= set(seen)
    assert {name: dtypes for name, dtypes in seen.items() if dtypes != {compute}} == {}


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_low_precision_animated_model_stays_as_close_to_float32_as_the_plain_unet(precision):
    compute, u = PRECISIONS[precision][2:]
    plain_error = relative_error(denoised(precision), denoised())
    animated = denoised(precision, compute)
    animated_error = relative_error(animated, denoised("fp32", torch.float32))
    assert bool(torch.isfinite(animated).all())
    assert animated_error <= 2 * plain_error + 4 * u, (animated_error, plain_error)


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp8-bf16"])
def test_one_motion_module_is_within_rounding_of_float32(precision):
    """One motion module's residual with its weights stored in the low dtype, computing in the UNet's: within
    4u of float32; fp8 weights: within 2u of their own dtype (one rounding per weight, which dominates)."""
    _, cast, compute, u = PRECISIONS[precision]
    storage = FP8 if cast else compute
    x = torch.randn(2 * 16, 64, 8, 8, generator=torch.Generator().manual_seed(0))  # (b f) c h w, 2 videos of 16 frames
    key = "down_blocks.1.motion_modules.0"
    exact = MOTION.network.module_at(key).temporal_transformer(x, 16)
    low = stored_as(MOTION, storage).network.module_at(key).temporal_transformer(x.to(compute), 16)
    assert low.dtype == compute
    assert relative_error(low, exact) <= (2 * u if storage == FP8 else 4 * u)


def test_windowed_motion_modules_fuse_in_the_unets_dtype():
    """Views (motion modules in windows, fused by weight: the context-options path) in bf16: the fused residual
    stays bf16 and within 4u of float32 (each frame sums at most two windows' weighted residuals)."""
    x = torch.randn(24, 64, 8, 8, generator=torch.Generator().manual_seed(1))  # (b f) c h w, one video of 24 frames
    ramp = torch.linspace(0.1, 1.0, 16)
    views = [(torch.arange(0, 16), torch.cat([torch.ones(8), ramp.flip(0)[8:]])), (torch.arange(8, 24), torch.cat([ramp[:8], torch.ones(8)]))]
    key = "mid_block.motion_modules.0"
    exact = MOTION.network.module_at(key).fused_views(x, 24, views)
    low = stored_as(MOTION, torch.bfloat16).network.module_at(key)
    assert low(x.bfloat16(), 24, views=views).dtype == torch.bfloat16
    fused = low.fused_views(x.bfloat16(), 24, views)
    assert fused.dtype == torch.bfloat16
    assert relative_error(fused, exact) <= 4 * 2 ** -8


def test_positional_encoding_stays_exact_float32_with_fp8_weights():
    network = MotionNetwork(MOTION.config, dtype=FP8)
    encodings = [m.pe for m in network.modules() if isinstance(m, PositionalEncoding)]
    assert encodings and all(pe.dtype == torch.float32 for pe in encodings)
    assert all(torch.equal(pe, sinusoidal_encoding(pe.shape[1], pe.shape[2])) for pe in encodings)
    assert {p.dtype for p in network.parameters()} == {FP8}

    half_file = {k: v.half() for k, v in MOTION.network.state_dict().items()}  # a file's fp16 pe: its values, upcast
    network.load_state_dict(half_file)
    pe_keys = [k for k in half_file if k.endswith(".pe")]
    assert all(torch.equal(network.get_buffer(k), half_file[k].float()) for k in pe_keys)
    network.to(torch.bfloat16)  # a cast of the whole network converts the weights, never the encoding
    assert {p.dtype for p in network.parameters()} == {torch.bfloat16}
    assert all(network.get_buffer(k).dtype == torch.float32 and torch.equal(network.get_buffer(k), half_file[k].float()) for k in pe_keys)


def test_fp8_storage_with_bf16_compute_samples_close_to_bf16():
    """UNet and motion weights stored in fp8, computing in bf16: finite, as close to the bf16 model as the
    plain fp8 UNet is to the plain bf16 one; the encoding is added as the float32 sinusoid rounded once to bf16."""
    fp8_motion = stored_as(MOTION, FP8)
    added = []
    handles = [m.register_forward_hook(lambda m, args, out: added.append((args[0], out, m.pe)))
               for m in fp8_motion.network.modules() if isinstance(m, PositionalEncoding)]
    try:
        animated = one_call(unet("fp8-bf16"), fp8_motion)
    finally:
        for handle in handles:
            handle.remove()
    plain_error = relative_error(denoised("fp8-bf16"), denoised("bf16"))
    animated_error = relative_error(animated, denoised("bf16", torch.bfloat16))
    assert bool(torch.isfinite(animated).all())
    assert animated_error <= 2 * plain_error + 4 * PRECISIONS["fp8-bf16"][3], (animated_error, plain_error)
    assert added
    for x, out, pe in added:  # x: (b h w) f c
        assert pe.dtype == torch.float32 and x.dtype == out.dtype == torch.bfloat16
        assert torch.equal(out, x + sinusoidal_encoding(pe.shape[1], pe.shape[2])[:, : x.shape[1]].to(torch.bfloat16))
