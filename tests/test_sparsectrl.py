"""sparsectrl/: the official layouts, numerics against diffusers' SparseControlNetModel, keyframe placement
(with context windows), and the errors a user can run into. All in-process on real ComfyUI objects."""

from __future__ import annotations

import math
import re

import comfy.latent_formats
import comfy.model_base
import comfy.ops
import comfy.supported_models
import pytest
import torch
from animdiff.errors import BaseModelError, FileError, FramesError, OptionsError
from animdiff.sampling.windows.evaluation import slice_control
from animdiff.sparsectrl import SparseControlNet, SparseCtrl, build_sparse_controlnet, keyframe_positions, parse_frame_indices, recognise
from einops import rearrange
from manifests import manifest, meta_state_dict
from reference import patch_motion_norms_per_frame

KINDS = ["rgb", "scribble"]
CHANNELS = (32, 64, 128, 128)
CONTEXT = 48
FRAMES, VIDEOS, LATENT = 8, 2, 8


@pytest.mark.parametrize("kind", KINDS)
def test_official_layout_rebuilt_exactly(kind):
    name = f"v3_sd15_sparsectrl_{kind}"
    info = manifest(name)
    state_dict, config = recognise(meta_state_dict(name), name)
    assert (config.kind, config.channels, config.context_dim, config.max_frames) == (kind, (320, 640, 1280, 1280), 768, 32)
    model = SparseControlNet(config, comfy.ops.disable_weight_init, device="meta")
    expected = {k: list(v.shape) for k, v in model.state_dict().items() if not k.endswith(".pe")}
    assert {k: list(v.shape) for k, v in state_dict.items()} == expected  # every non-pe tensor of the file, nothing else
    assert len(expected) == len([k for k in info["keys"] if not k.endswith(".pe")])
    assert sum(p.numel() for p in model.parameters()) == info["param_count_without_pe"]


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Every parameter random (zero-initialised convolutions included), norms near 1."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 1:
                p.copy_((1.0 if name.endswith("weight") and "norm" in name else 0.0) + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(math.prod(p.shape[1:])))


def diffusers_sparsectrl(kind: str, seed: int = 0):
    """diffusers' model at reduced width, random weights, motion GroupNorm made per frame as in the original."""
    from diffusers import SparseControlNetModel

    reference = SparseControlNetModel(conditioning_channels=4 if kind == "rgb" else 3, use_simplified_condition_embedding=kind == "rgb",
                                      concat_conditioning_mask=True, block_out_channels=CHANNELS, cross_attention_dim=CONTEXT,
                                      motion_max_seq_length=32, motion_num_attention_heads=8)
    randomise(reference, seed)
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    assert patch_motion_norms_per_frame(reference) == 8
    return reference.eval(), state


def original_names(diffusers_state: dict) -> dict:
    """diffusers' motion-module names back to the original file's (the image layers share their names)."""
    out = {}
    for key, value in diffusers_state.items():
        if ".motion_modules." in key:
            head, tail = key.split(".motion_modules.")
            number, rest = tail.split(".", 1)
            rest = (rest.replace("norm1.", "norms.0.").replace("norm3.", "ff_norm.").replace("attn1.", "attention_blocks.0.")
                    .replace("pos_embed.pe", "attention_blocks.0.pos_encoder.pe"))
            key = f"{head}.motion_modules.{number}.temporal_transformer.{rest}"
        out[key] = value
    return out


def test_original_names_are_what_diffusers_converts_from():
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    _, state = diffusers_sparsectrl("rgb")
    original = original_names(state)
    converted = convert_animatediff_checkpoint_to_diffusers(original)
    assert converted.keys() == {k for k in state if not k.endswith(".pe")}
    assert any(".temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q." in k for k in original)


def conditions(kind: str, indices, seed: int = 5):
    """Keyframe conditions ``b c f H W`` (zeros off the keyframes) and the mask ``b 1 f H W``."""
    gen = torch.Generator().manual_seed(seed)
    channels, size = (4, LATENT) if kind == "rgb" else (3, LATENT * 8)
    cond = torch.zeros(VIDEOS, channels, FRAMES, size, size)
    mask = torch.zeros(VIDEOS, 1, FRAMES, size, size)
    cond[:, :, indices] = torch.rand(VIDEOS, channels, len(indices), size, size, generator=gen)
    mask[:, :, indices] = 1.0
    return cond, mask


def ours(model, cond, mask, timesteps, context):
    hint = rearrange(torch.cat([cond, mask], 1), "b c f h w -> (b f) c h w")
    with torch.no_grad():
        out = model(hint, timesteps.repeat_interleave(FRAMES), context.repeat_interleave(FRAMES, 0), FRAMES)
    return out["output"], out["middle"][0]


@pytest.mark.parametrize("kind", KINDS)
def test_residuals_match_diffusers(kind):
    reference, state = diffusers_sparsectrl(kind)
    gen = torch.Generator().manual_seed(1)
    context = torch.randn(VIDEOS, 5, CONTEXT, generator=gen)
    timesteps = torch.tensor([500.0, 20.0])
    cond, mask = conditions(kind, [1, 6])
    with torch.no_grad():
        down, mid = reference(torch.randn(VIDEOS, 4, FRAMES, LATENT, LATENT, generator=gen), timesteps,
                              context.repeat_interleave(FRAMES, 0), cond, conditioning_mask=mask, return_dict=False)
    for layout, weights in {"original": original_names(state), "diffusers": state}.items():
        model = build_sparse_controlnet(weights, f"{layout}.safetensors", torch.float32, comfy.ops.disable_weight_init)
        outputs, middle = ours(model, cond, mask, timesteps, context)
        assert len(outputs) == len(down) == 12
        for mine, theirs in [*zip(outputs, down, strict=True), (middle, mid)]:
            assert mine.shape == theirs.shape
            assert (mine - theirs).abs().max() / theirs.abs().max() <= 1e-4, layout
    moved, _ = ours(model, *conditions(kind, [2, 6]), timesteps, context)
    assert (moved[-1] - down[-1]).abs().max() / down[-1].abs().max() > 1e-2  # where the keyframes are matters


def test_frame_indices_and_their_errors():
    assert parse_frame_indices("") is None and parse_frame_indices(" 0, 8 ,15") == (0, 8, 15)
    assert keyframe_positions(None, 1, 16) == [0] and keyframe_positions(None, 3, 16) == [0, 8, 15]
    assert keyframe_positions((0, 20, 47), 3, 48) == [0, 20, 47]
    for text, problem in [("0,a", "separated by commas"), ("-1", "start at 0"), ("3,3", "one keyframe only")]:
        with pytest.raises(OptionsError, match=f"frame_indices .*{problem}"):
            parse_frame_indices(text)
    with pytest.raises(FramesError, match="frame_indices 16: the video has 16 frames"):
        keyframe_positions((0, 16), 2, 16)
    with pytest.raises(FramesError, match="5 keyframe images for a 4-frame video"):
        keyframe_positions(None, 5, 4)


@pytest.mark.parametrize("name, what", [("v3_sd15_mm", "AnimateDiff motion module"), ("mm_sdxl_v10_beta", "AnimateDiff motion module")])
def test_motion_module_given_as_sparsectrl_is_refused(name, what):
    with pytest.raises(FileError, match=f"{name}: this is an {what}, not SparseCtrl"):
        recognise(meta_state_dict(name), name)


def test_plain_controlnet_given_as_sparsectrl_is_refused():
    from random_weights import sd15_controlnet_shapes

    ldm = {k: torch.empty(s, device="meta") for k, s in sd15_controlnet_shapes().items()}
    with pytest.raises(FileError, match="cn.safetensors: this is a plain ControlNet .*Load ControlNet Model"):
        recognise(ldm, "cn.safetensors")
    _, state = diffusers_sparsectrl("scribble")  # diffusers' layout without its motion modules: a diffusers ControlNet
    plain = {k: v for k, v in state.items() if ".motion_modules." not in k}
    with pytest.raises(FileError, match="this is a plain ControlNet"):
        recognise(plain, "cn.safetensors")


def test_damaged_file_is_refused_with_the_tensor_named():
    _, state = diffusers_sparsectrl("rgb")
    state = original_names(state)
    del state["controlnet_down_blocks.3.weight"]
    with pytest.raises(FileError, match="bad.ckpt: does not match the SparseCtrl rgb layout: missing tensor zero_convs.3.0.weight"):
        build_sparse_controlnet(state, "bad.ckpt", torch.float32)


def test_tensor_of_the_wrong_kind_is_refused_naming_it_and_half_precision_loads():
    _, state = diffusers_sparsectrl("rgb")
    state = original_names(state)
    build_sparse_controlnet({k: v.to(torch.bfloat16) for k, v in state.items()}, "bf16.ckpt", torch.float32)
    bad = sorted(state)[0]
    with pytest.raises(FileError, match=rf"bad.ckpt: tensor {re.escape(bad)} is int32 \(integer\), but weights must be floating point"):
        build_sparse_controlnet({**state, bad: state[bad].to(torch.int32)}, "bad.ckpt", torch.float32)


def small_control(kind: str, indices=None) -> SparseCtrl:
    _, state = diffusers_sparsectrl(kind)
    return SparseCtrl(build_sparse_controlnet(state, f"{kind}.safetensors", torch.float32), indices, f"{kind}.safetensors")


class TinyVae:
    """Only what SparseCtrl asks of a ComfyUI VAE (the real one is exercised through the server tests)."""

    latent_channels = 4


def test_rgb_without_vae_and_wrong_index_counts_are_refused_on_apply():
    rgb = small_control("rgb", (0, 5))
    images = torch.rand(2, 3, 64, 64)
    with pytest.raises(OptionsError, match="rgb.safetensors is an RGB SparseCtrl.*Connect your checkpoint's VAE to the vae input"):
        rgb.copy().set_cond_hint(images)
    for count in (1, 3):
        with pytest.raises(OptionsError, match=f"frame_indices lists 2 frames \\(0, 5\\) but Apply ControlNet got {count} keyframe images"):
            rgb.copy().set_cond_hint(torch.rand(count, 3, 64, 64), vae=TinyVae())
    scribble = small_control("scribble").copy().set_cond_hint(images, vae=TinyVae())
    assert scribble.vae is None  # scribbles are never VAE-encoded, whatever is connected


def small_sd(sdxl: bool):
    from training_models import unet_config

    if sdxl:
        config = comfy.supported_models.SDXL({**unet_config(32, (1, 2, 2), 2048), "adm_in_channels": 2816,
                                              "transformer_depth": [0, 0, 1, 1, 1, 1], "transformer_depth_output": [0] * 3 + [1] * 6})
        return comfy.model_base.SDXL(config, device="meta")
    from training_models import small_sd15

    return small_sd15(channels=32, mult=(1, 2, 4, 4), context=CONTEXT).model


def test_sd15_sparsectrl_on_sdxl_is_refused():
    control = small_control("scribble").copy().set_cond_hint(torch.rand(1, 3, 64, 64))
    with pytest.raises(BaseModelError, match="scribble.safetensors is an SD1.5 SparseCtrl; it cannot steer this SDXL model"):
        control.pre_run(small_sd(sdxl=True), lambda p: 999.0 * (1 - p))


def run_control(control, frames, batched=2, seed=3):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batched * frames, 4, LATENT, LATENT, generator=gen)
    cond = {"c_crossattn": torch.randn(batched, 5, CONTEXT, generator=gen).repeat_interleave(frames, 0)}
    sigma = torch.full((batched * frames,), 3.0)
    with torch.no_grad():
        return control.get_control(x, sigma, cond, batched, {})


def test_windows_see_their_keyframes_at_their_positions():
    base = small_sd(sdxl=False)
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    video = small_control("scribble", (0, 20, 47)).copy().set_cond_hint(images, strength=0.7)
    video.pre_run(base, lambda p: 999.0 * (1 - p))
    window = torch.arange(8, 24)  # holds frame 20 at position 12
    sliced = slice_control(video, window, 48)
    assert sliced is not video and sliced.window == list(range(8, 24)) and video.window is None
    hint = sliced.hint(16, LATENT, LATENT)
    assert hint[:, -1].amax(dim=(1, 2)).tolist() == [1.0 if i == 12 else 0.0 for i in range(16)]
    assert torch.equal(hint[12, :3], images[1])
    # the window's residuals are those of a 16-frame video with that keyframe at frame 12
    alone = small_control("scribble", (12,)).copy().set_cond_hint(images[1:2], strength=0.7)
    alone.control_model = video.control_model
    alone.pre_run(base, lambda p: 999.0 * (1 - p))
    windowed, direct = run_control(sliced, 16, batched=1), run_control(alone, 16, batched=1)
    for a, b in zip(windowed["output"], direct["output"], strict=True):
        assert torch.equal(a, b)
    # a window without keyframes runs on the all-zero condition, as the original does for frames without one
    empty = slice_control(video, torch.arange(24, 40), 48)
    assert empty.hint(16, LATENT, LATENT).abs().max() == 0
    residual = run_control(empty, 16, batched=1)["output"][-1]
    assert residual.abs().max() > 0 and not torch.equal(residual, windowed["output"][-1])
    video.cleanup()
    assert video.encoded == {}


def test_too_many_frames_without_windows_is_refused():
    control = small_control("scribble").copy().set_cond_hint(torch.rand(1, 3, 64, 64))
    control.pre_run(small_sd(sdxl=False), lambda p: 999.0 * (1 - p))
    with pytest.raises(FramesError, match="sees at most 32 frames at once and got 40: connect AnimDiffContextOptions"):
        run_control(control, 40, batched=1)


def test_official_ckpt_wrapping_is_unwrapped(tmp_path):
    from animdiff.sparsectrl import load_sparsectrl

    _, state = diffusers_sparsectrl("rgb")
    path = tmp_path / "v3_sd15_sparsectrl_rgb.ckpt"
    torch.save({"controlnet": original_names(state), "animatediff_config": {"note": "dropped"}}, path)
    control = load_sparsectrl(path, "0, 15")
    assert (control.kind, control.frame_indices, control.name) == ("rgb", (0, 15), path.name)
    loaded = control.control_model.state_dict()["zero_convs.3.0.weight"]
    assert torch.equal(loaded.float(), state["controlnet_down_blocks.3.weight"])


@pytest.mark.parametrize("storage, operations, bound", [(torch.bfloat16, comfy.ops.disable_weight_init, 24 * 2 ** -8),
                                                        (torch.float8_e4m3fn, comfy.ops.manual_cast, 8 * 2 ** -4)])
def test_low_precision_sparsectrl_computes_in_bf16_with_exact_encodings(storage, operations, bound):
    """As ComfyUI's ``pick_operations`` builds it on a bf16 device: bf16 weights and plain layers, or fp8
    weights cast to bf16 per layer. Its motion modules' positional encodings stay float32 (the float32
    build's values); the residuals come out in bf16, finite, near float32: the deepest residual passes through
    about 24 roundings of u (bf16 2^-8), which add up at worst; fp8 weights (u = 2^-4) are rounded once each
    (measured up to 2.2u on the deepest residual; 8u still tells a residual from noise)."""
    _, state = diffusers_sparsectrl("rgb")
    exact = build_sparse_controlnet(state, "float32.safetensors", torch.float32, comfy.ops.disable_weight_init)
    low = build_sparse_controlnet(state, "low.safetensors", storage, operations)
    encodings = {k: v for k, v in low.state_dict().items() if k.endswith(".pe")}
    assert encodings and all(v.dtype == torch.float32 and torch.equal(v, exact.get_buffer(k)) for k, v in encodings.items())
    context = torch.randn(VIDEOS, 5, CONTEXT, generator=torch.Generator().manual_seed(1))
    timesteps = torch.tensor([500.0, 20.0])
    cond, mask = conditions("rgb", [1, 6])
    reference, _ = ours(exact, cond, mask, timesteps, context)
    bf16 = torch.bfloat16
    outputs, _ = ours(low, cond.to(bf16), mask.to(bf16), timesteps, context.to(bf16))
    for mine, theirs in zip(outputs, reference, strict=True):
        assert mine.dtype == bf16 and bool(torch.isfinite(mine).all())
        assert float((mine.float() - theirs).norm() / theirs.norm()) <= bound
