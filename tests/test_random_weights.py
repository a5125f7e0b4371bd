"""The random checkpoints are what ComfyUI's own loader recognises: model family from the UNet's tensors and every
text-encoder tensor mapped onto ComfyUI's text-encoder classes (shapes only, on the meta device; no file written)."""

from __future__ import annotations

import comfy.model_detection
import pytest
import torch
from comfy.sd1_clip import SDClipModel
from comfy.sdxl_clip import SDXLClipModel
from random_weights import sd15_shapes, sdxl_shapes

UNET = "model.diffusion_model."


UNUSED = {"clip_l.logit_scale", "clip_l.transformer.text_projection.weight"}  # not in the original files either


@pytest.mark.parametrize(("shapes", "family", "clip"), [
    (sd15_shapes, "SD15", lambda: {"clip_l." + k: v for k, v in SDClipModel(device="meta").state_dict().items()}),
    (sdxl_shapes, "SDXL", lambda: SDXLClipModel(device="meta").state_dict()),
])
def test_comfyui_recognises_the_random_checkpoint(shapes, family, clip):
    state = {key: torch.empty(shape, device="meta") for key, shape in shapes().items()}
    config = comfy.model_detection.model_config_from_unet(state, UNET)
    assert type(config).__name__ == family
    with torch.device("meta"):
        expected = clip()
    text = config.process_clip_state_dict({k: v for k, v in state.items() if not k.startswith((UNET, "first_stage_model."))})
    assert set(expected) - set(text) == UNUSED
    assert set(text) <= set(expected)
    assert all(text[k].shape == expected[k].shape for k in text)
