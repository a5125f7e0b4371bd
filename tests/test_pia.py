"""PIA: its file layout, its presets and its UNet call against diffusers' PIA (reduced width), and bad input.

The reference is diffusers' ``UNetMotionModel`` built by ``from_unet2d`` from the same LDM-format UNet weights and a
``MotionAdapter(conv_in_channels=9)`` read from the same PIA-layout file by diffusers' own single-file loader (what
``PIAPipeline`` runs), called on ``cat([latents, mask, masked_image])`` as ``PIAPipeline.__call__`` does, with the mask
from diffusers' own ``prepare_mask_coef_by_statistics``. Where diffusers departs from the original PIA it is patched,
as for v1 (tests/test_unet_reference.py): its motion-module GroupNorm per frame, and its ResNet norms and
``conv_norm_out`` over all frames (the original's ``ResnetBlock3D`` applies ``nn.GroupNorm`` to ``b c f h w``).
"""

from __future__ import annotations

import math

import pytest
import safetensors.torch
import torch
from animdiff.animate.pia import PRESETS, PIACondition, preset_affinity
from animdiff.errors import BaseModelError, FileError, FramesError, OptionsError
from animdiff.motion_module import MotionModuleConfig, MotionNetwork
from animdiff.motion_module.image_input import check_image_input, image_input_injected
from animdiff.motion_module.injection import motion_injected
from animdiff.motion_module.layout import detect_config
from animdiff.weight_files import check_layout
from einops import rearrange, repeat
from manifests import manifest, meta_state_dict
from reference import patch_motion_norms_per_frame, random_weights
from test_unet_reference import CHANNELS, CONTEXT, comfy_unet, diffusers_unet, patch_v1_norms

FRAMES, VIDEOS = 8, 2


def small_pia(seed=3) -> tuple[MotionNetwork, dict]:
    config = MotionModuleConfig(version="pia", channels=CHANNELS, has_mid_block=False, max_frames=32, conv_in_channels=9)
    network = MotionNetwork(config, dtype=torch.float32)
    state = random_weights(network, seed)
    network.load_state_dict(state)
    return network.eval(), state


def diffusers_pia_unet(state, ldm_state, tmp_path):
    from diffusers import MotionAdapter, UNetMotionModel

    adapter = MotionAdapter(block_out_channels=CHANNELS, use_motion_mid_block=False, motion_max_seq_length=32, conv_in_channels=9)
    adapter.save_config(tmp_path / "config")
    safetensors.torch.save_file(state, tmp_path / "pia.safetensors")
    adapter = MotionAdapter.from_single_file(str(tmp_path / "pia.safetensors"), config=str(tmp_path / "config"), torch_dtype=torch.float32)
    assert torch.equal(adapter.conv_in.weight, state["conv_in.weight"])  # diffusers' loader read PIA's input conv
    reference = UNetMotionModel.from_unet2d(diffusers_unet(ldm_state), adapter)
    assert reference.conv_in.in_channels == 9
    assert patch_motion_norms_per_frame(reference) == 20
    assert patch_v1_norms(reference, FRAMES) == 2 * (2 * 4 + 2 + 3 * 4) + 1
    return reference.eval()


def diffusers_masks(frames, motion_scale):
    from diffusers.pipelines.deprecated.pia.pipeline_pia import prepare_mask_coef_by_statistics

    return prepare_mask_coef_by_statistics(frames, 0, motion_scale)


# diffusers' RANGE_list index -> our preset (diffusers' comments: small, moderate, large; loops; style transfer)
DIFFUSERS_INDEX = {0: "Animation (Small Motion)", 1: "Animation (Medium Motion)", 2: "Animation (Large Motion)",
                   3: "Loop (Small Motion)", 4: "Loop (Medium Motion)", 5: "Loop (Large Motion)",
                   6: "Style Transfer (Small Motion)", 7: "Style Transfer (Medium Motion)", 8: "Style Transfer (Large Motion)"}


@pytest.mark.parametrize("index,preset", DIFFUSERS_INDEX.items())
def test_presets_are_diffusers_pia_masks(index, preset):
    for frames in (16, 24, 5):
        assert torch.equal(preset_affinity(preset, frames, 0), torch.tensor(diffusers_masks(frames, index), dtype=torch.float32))


def test_presets_centre_on_the_cond_frame():
    values = preset_affinity("Animation (Large Motion)", 16, -1)  # the last frame shows the image
    assert values.tolist() == list(reversed(preset_affinity("Animation (Large Motion)", 16, 0).tolist()))
    assert set(PRESETS) - set(DIFFUSERS_INDEX.values()) == {"Constant (strength and schedule only)"}
    with pytest.raises(FramesError, match="cond_frame 16 is outside the video's 16 frames"):
        preset_affinity("Loop (Small Motion)", 16, 16)


def test_pia_unet_call_matches_diffusers(tmp_path):
    network, state = small_pia()
    unet, ldm_state = comfy_unet()
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(VIDEOS * FRAMES, 4, 8, 8, generator=gen)
    image = torch.randn(1, 4, 8, 8, generator=gen)
    context = torch.randn(VIDEOS, 5, CONTEXT, generator=gen)
    t = torch.tensor([500.0, 500.0])
    condition = PIACondition(image, "Animation (Medium Motion)").condition(list(range(FRAMES)), FRAMES, VIDEOS, (8, 8))
    check_image_input(unet, network, "pia")
    with torch.no_grad():
        with motion_injected(unet, network, FRAMES, 1.0), image_input_injected(unet, network, condition):
            ours = unet(x, t.repeat_interleave(FRAMES), context.repeat_interleave(FRAMES, 0))
        with motion_injected(unet, network, FRAMES, 1.0):
            without_image = unet(x, t.repeat_interleave(FRAMES), context.repeat_interleave(FRAMES, 0))

    # PIAPipeline: mask (b 1 f h w) from the preset, masked_image (b 4 f h w) the image's latent on every frame
    mask = repeat(torch.tensor(diffusers_masks(FRAMES, 1)), "f -> b 1 f h w", b=VIDEOS, h=8, w=8)
    masked_image = repeat(image, "1 c h w -> b c f h w", b=VIDEOS, f=FRAMES)
    sample = torch.cat([rearrange(x, "(b f) c h w -> b c f h w", f=FRAMES), mask, masked_image], dim=1)

    with torch.no_grad():
        out = diffusers_pia_unet(state, ldm_state, tmp_path)(sample, t, context.repeat_interleave(FRAMES, 0)).sample
    theirs = rearrange(out, "b c f h w -> (b f) c h w")
    scale = theirs.abs().max()
    assert (ours - theirs).abs().max() / scale <= 1e-4
    assert (ours - without_image).abs().max() / scale > 1e-2  # the image input matters at this tolerance


def test_a_window_gets_its_own_frames_affinity_and_images():
    images = torch.randn(24, 4, 8, 8)
    plan = PIACondition(images, "Animation (Large Motion)", cond_frame=3, strength=0.5, schedule="0:1.0, 23:0.2")
    whole = plan.condition(list(range(24)), 24, 2, (8, 8))
    window = list(range(8, 20))
    part = plan.condition(window, 24, 2, (8, 8))
    assert torch.equal(rearrange(part, "(v f) c h w -> v f c h w", v=2), rearrange(whole, "(v f) c h w -> v f c h w", v=2)[:, window])
    expected = preset_affinity("Animation (Large Motion)", 24, 3) * 0.5 * torch.linspace(1.0, 0.2, 24)
    torch.testing.assert_close(whole[:24, 0, 0, 0], expected)
    assert torch.equal(whole[:24, 1:], images)


def test_bad_images_and_numbers_are_refused():
    with pytest.raises(FramesError, match="image: a batch of 3 images for a 16-frame video; give one image .* or 16"):
        PIACondition(torch.zeros(3, 4, 8, 8), "Loop (Small Motion)").condition(list(range(16)), 16, 1, (8, 8))
    with pytest.raises(OptionsError, match="strength is nan"):
        PIACondition(torch.zeros(1, 4, 8, 8), "Loop (Small Motion)", strength=math.nan)
    with pytest.raises(OptionsError, match="nan"):
        PIACondition(torch.zeros(1, 4, 8, 8), "Loop (Small Motion)", schedule="0:nan")
    with pytest.raises(OptionsError, match="unknown PIA preset 'Big'"):
        PIACondition(torch.zeros(1, 4, 8, 8), "Big")


def test_pia_file_layout_recognised_and_damaged_files_named():
    state = meta_state_dict("pia")
    config = detect_config(state, "pia.ckpt")
    assert (config.version, config.conv_in_channels, config.image_norm_across_frames, config.max_frames) == ("pia", 9, True, 32)
    assert {k: list(v.shape) for k, v in MotionNetwork(config, device="meta").state_dict().items()} == manifest("pia")["keys"]
    with pytest.raises(FileError, match=r"pia.ckpt: conv_in.weight has shape \[320, 4, 3, 3\], PIA's input conv is \[320, 9, 3, 3\]"):
        detect_config({**state, "conv_in.weight": torch.empty(320, 4, 3, 3, device="meta")}, "pia.ckpt")
    with pytest.raises(FileError, match="pia.ckpt: version v3 contradicts the weights: v3 has no input conv"):
        detect_config(state, "pia.ckpt", version="v3")
    sdxl = {**meta_state_dict("mm_sdxl_v10_beta"), "conv_in.weight": state["conv_in.weight"]}
    with pytest.raises(FileError, match="mixed.ckpt: a PIA input conv .* next to SDXL motion modules"):
        detect_config(sdxl, "mixed.ckpt")
    without_bias = {k: v for k, v in state.items() if k != "conv_in.bias"}
    with pytest.raises(FileError, match="nobias.safetensors: .*conv_in.bias"):
        check_layout(without_bias, MotionNetwork(detect_config(without_bias, "x"), device="meta").state_dict(), "nobias.safetensors", "pia")


def test_pia_weights_need_a_4_channel_unet_input_and_a_pia_module():
    network, _ = small_pia()
    unet, _ = comfy_unet()
    conv = unet.input_blocks[0][0]
    unet.input_blocks[0][0] = torch.nn.Conv2d(9, conv.out_channels, 3, padding=1)  # an inpainting model's input
    with pytest.raises(BaseModelError, match=r"pia: PIA's 9-channel input needs a UNet whose input conv takes the 4-channel latent"):
        check_image_input(unet, network, "pia")
    plain = MotionNetwork(MotionModuleConfig(version="v3", channels=CHANNELS, has_mid_block=False, max_frames=32))
    with pytest.raises(BaseModelError, match="v3.safetensors: a v3 motion module has no PIA image input"):
        check_image_input(unet, plain, "v3.safetensors")


# ---------------------------------------------------------------- through the server

@pytest.mark.slow  # about a minute on two shared cores
def test_pia_in_windows_with_prompt_travel_and_sparsectrl_and_a_wrong_image_batch(server):
    """The 64-frame PIA workflow (24 frames on the test models: several windows) with a prompt schedule and an RGB
    SparseCtrl keyframe on top; then the 16-frame one given 3 images for 16 frames, refused naming both counts."""
    from comfy_server import PromptError, output_files
    from graphs import LONGEST_TEST_VIDEO, on_test_models, shipped
    from PIL import Image
    from weights import SPARSECTRL

    prompt = on_test_models(shipped("img2vid_pia_windows_64f.api.json"), "input.mp4")
    prompt["sched"] = {"class_type": "AnimDiffPromptSchedule", "inputs": {
        "clip": ["1", 1], "text": '"0": "a boat at dawn",\n"12": "a boat at night"', "frames": LONGEST_TEST_VIDEO}}
    prompt["sc"] = {"class_type": "AnimDiffLoadSparseCtrl", "inputs": {"sparsectrl_name": SPARSECTRL["rgb"], "frame_indices": "0"}}
    prompt["cn"] = {"class_type": "ControlNetApplyAdvanced", "inputs": {
        "positive": ["sched", 0], "negative": ["7", 0], "control_net": ["sc", 0], "image": ["4", 0], "strength": 1.0,
        "start_percent": 0.0, "end_percent": 1.0, "vae": ["1", 2]}}
    prompt["9"]["inputs"].update(positive=["cn", 0], negative=["cn", 1])
    (animation,) = output_files(server.run(prompt), server.output_dir)
    with Image.open(animation) as image:
        assert image.n_frames == LONGEST_TEST_VIDEO

    wrong = on_test_models(shipped("img2vid_pia_16f.api.json"), "input.mp4")
    wrong["4"] = {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 3, "color": 0}}
    with pytest.raises(PromptError, match="image: a batch of 3 images for a 16-frame video"):
        server.run(wrong)
