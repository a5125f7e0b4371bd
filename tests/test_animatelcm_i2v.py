"""AnimateLCM-I2V: its file layout and its image encoder against the original code.

diffusers has no AnimateLCM-I2V, so the encoder is compared with the original ``Adapter``
(G-U-N/AnimateLCM ``animatelcm_sd15/animatelcm/models/adapter.py``), imported by path from a checkout named by
``ANIMDIFF_ANIMATELCM_DIR`` (the repository root); without it that test is skipped, saying so.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch
from animdiff.errors import FileError
from animdiff.motion_module import MotionNetwork
from animdiff.motion_module.image_encoder import ImageEncoder
from animdiff.motion_module.layout import detect_config
from animdiff.weight_files import check_layout
from einops import rearrange
from manifests import manifest, meta_state_dict

ORIGINAL = os.environ.get("ANIMDIFF_ANIMATELCM_DIR")


def test_animatelcm_i2v_layout_recognised():
    state = meta_state_dict("animatelcm_sd15_i2v")
    config = detect_config(state, "AnimateLCM_sd15_i2v.ckpt")
    assert (config.version, config.image_encoder, config.has_mid_block, config.max_frames) == ("animatelcm", True, True, 64)
    network = MotionNetwork(config, device="meta")
    built = {k: list(v.shape) for k, v in network.state_dict().items() if not k.endswith(".pe")}
    assert built == manifest("animatelcm_sd15_i2v")["keys"]
    assert sum(p.numel() for p in network.parameters()) == manifest("animatelcm_sd15_i2v")["param_count_without_pe"]
    check_layout(state, network.state_dict(), "AnimateLCM_sd15_i2v.ckpt", "animatelcm")  # pe computed, nothing else missing


def test_damaged_and_mixed_up_image_encoders_are_named():
    state = meta_state_dict("animatelcm_sd15_i2v")
    network = MotionNetwork(detect_config(state, "x"), device="meta")
    damaged = {**state, "img_encoder.body.3.block1.weight": torch.empty(640, 640, 1, 1, device="meta")}
    with pytest.raises(FileError, match=r"i2v.ckpt: .*img_encoder.body.3.block1.weight"):
        check_layout(damaged, network.state_dict(), "i2v.ckpt", "animatelcm")
    sdxl = {**meta_state_dict("mm_sdxl_v10_beta"), "img_encoder.conv_in.weight": state["img_encoder.conv_in.weight"]}
    with pytest.raises(FileError, match="mixed.ckpt: AnimateLCM-I2V's image encoder .* next to SDXL motion modules"):
        detect_config(sdxl, "mixed.ckpt")


def original_adapter_class():
    path = Path(ORIGINAL) / "animatelcm_sd15" / "animatelcm" / "models" / "adapter.py"
    spec = importlib.util.spec_from_file_location("animatelcm_original_adapter", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Adapter


@pytest.mark.skipif(not ORIGINAL, reason="set ANIMDIFF_ANIMATELCM_DIR to a G-U-N/AnimateLCM checkout to compare with the original Adapter")
@pytest.mark.parametrize("size", [(16, 16), (9, 13)])  # odd sizes: the original pads before pooling
def test_image_encoder_equals_the_original_adapter(size):
    channels = (32, 64, 128, 128)
    theirs = original_adapter_class()(cin=4, channels=list(channels), nums_rb=2, ksize=1, sk=True, use_conv=False)
    gen = torch.Generator().manual_seed(0)
    state = {k: 0.1 * torch.randn(v.shape, generator=gen) for k, v in theirs.state_dict().items()}  # the original zero-inits some
    theirs.load_state_dict(state)
    ours = ImageEncoder(channels, dtype=torch.float32)
    ours.load_state_dict(state)
    frames, drift = 6, 0.8
    reference = torch.randn(2, 4, *size, generator=gen)
    theirs.motion_scale = drift
    with torch.no_grad():
        expected = theirs(reference[:, :, None].expand(-1, -1, frames, -1, -1))  # b c t h w, the image on every frame
        got = ours(reference, frames, drift)
    assert len(got) == len(expected) == 4
    for level, (a, b) in enumerate(zip(got, expected, strict=True)):
        b = rearrange(b, "n c f h w -> (n f) c h w")
        assert a.shape == b.shape, level
        assert (a - b).abs().max() / b.abs().max() <= 1e-4, level


def test_features_go_after_each_levels_second_layer_before_its_motion_module():
    """With features, the UNet call equals one whose second resnet (+ attention) of each down level has the feature added
    to its output by a forward hook: where the original's down blocks add ``img_feature`` (``idx == 2``)."""
    from animdiff.animate.animatelcm_i2v import ImageReference
    from animdiff.motion_module import MotionModuleConfig
    from animdiff.motion_module.injection import motion_injected
    from reference import random_weights
    from test_unet_reference import CHANNELS, CONTEXT, comfy_unet

    config = MotionModuleConfig(version="animatelcm", channels=CHANNELS, has_mid_block=True, max_frames=64, image_encoder=True)
    network = MotionNetwork(config, dtype=torch.float32)
    network.load_state_dict(random_weights(network, 4))
    unet, _ = comfy_unet()
    frames, videos = 4, 2
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(videos * frames, 4, 8, 8, generator=gen)
    context = torch.randn(videos * frames, 5, CONTEXT, generator=gen)
    t = torch.full((videos * frames,), 500.0)
    reference = ImageReference(torch.randn(1, 4, 8, 8, generator=gen), drift=0.5, strength=0.7, sigma_start=1e9, sigma_end=0.0)
    features = reference.features(network, x, frames, videos, None)
    assert sorted(features) == [f"down_blocks.{i}.motion_modules.1" for i in range(4)]
    with torch.no_grad():
        with motion_injected(unet, network, frames, 1.0, None, features):
            ours = unet(x, t, context)
        hooks = [unet.input_blocks[block][-1].register_forward_hook(lambda _m, _a, out, f=features[key]: out + f)
                 for block, key in zip((2, 5, 8, 11), sorted(features), strict=True)]
        try:
            with motion_injected(unet, network, frames, 1.0):
                hooked = unet(x, t, context)
        finally:
            for handle in hooks:
                handle.remove()
        with motion_injected(unet, network, frames, 1.0):
            plain = unet(x, t, context)
    scale = hooked.abs().max()
    assert (ours - hooked).abs().max() / scale <= 1e-5
    assert (ours - plain).abs().max() / scale > 1e-2
    windows = reference.features(network, torch.zeros(videos * 2 * frames, 4, 8, 8), frames, videos, None)  # two windows a call
    assert torch.equal(windows["down_blocks.0.motion_modules.1"][:frames], features["down_blocks.0.motion_modules.1"][:frames])
    assert torch.equal(windows["down_blocks.0.motion_modules.1"][frames:2 * frames], features["down_blocks.0.motion_modules.1"][:frames])
