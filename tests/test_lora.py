"""MotionLoRA and the domain adapter: formats, exact math, stacking, clean removal."""

from __future__ import annotations

import logging
import re

import comfy.model_management
import comfy.model_patcher
import pytest
import safetensors.torch
import torch
from animdiff.animate.model import apply_motion_module
from animdiff.errors import FileError
from animdiff.image_model.domain_adapter import apply_domain_adapter
from animdiff.motion_module import LoadedMotionModule, MotionNetwork, load_motion_module
from animdiff.motion_module.config import official_config
from animdiff.motion_module.lora import apply_motion_lora, parse_motion_lora
from animdiff.weight_files import read_state_dict
from comfy_sampling import OWN, noise, sample
from manifests import manifest, meta_state_dict
from reference import small_model
from weights import adapter_path, motion_lora_path, motion_module_path

CPU = torch.device("cpu")
PROJ = ("to_q", "to_k", "to_v", "to_out")


def loaded(network: MotionNetwork, name="small.safetensors") -> LoadedMotionModule:
    return LoadedMotionModule(name, comfy.model_patcher.ModelPatcher(network, CPU, CPU))


def attention_layers(network: MotionNetwork):
    for key, module in network.named_modules():
        if key.endswith(tuple(f"attention_blocks.{i}" for i in range(2))):
            yield key, module


def lora_tensors(network: MotionNetwork, convention: str, rank: int = 4, seed: int = 0, alpha: float | None = None):
    """A LoRA for every attention projection of ``network`` in one key convention, and its ``(up, down, scale)`` by target."""
    gen = torch.Generator().manual_seed(seed)
    tensors, expected = {}, {}
    for key, module in attention_layers(network):
        for proj in PROJ:
            linear = module.to_out[0] if proj == "to_out" else getattr(module, proj)
            down = torch.randn(rank, linear.in_features, generator=gen) * 0.1
            up = torch.randn(linear.out_features, rank, generator=gen) * 0.1
            target = f"{key}.{proj}{'.0' if proj == 'to_out' else ''}.weight"
            expected[target] = (up, down, (alpha / rank) if alpha is not None else 1.0)
            if convention == "original":
                tensors[f"{key}.processor.{proj}_lora.down.weight"] = down
                tensors[f"{key}.processor.{proj}_lora.up.weight"] = up
            elif convention == "cloneofsimo":
                layer = f"{key}.{proj}{'.0' if proj == 'to_out' else ''}"
                tensors[f"{layer}.lora_down.weight"] = down
                tensors[f"{layer}.lora_up.weight"] = up
            else:  # diffusers / PEFT names: no temporal_transformer, attn1/attn2, to_out.0, lora_A/B
                block = key.replace("temporal_transformer.", "").replace("attention_blocks.0", "attn1").replace("attention_blocks.1", "attn2")
                layer = f"unet.{block}.{proj}{'.0' if proj == 'to_out' else ''}"
                tensors[f"{layer}.lora_A.weight"] = down
                tensors[f"{layer}.lora_B.weight"] = up
                if alpha is not None:
                    tensors[f"{layer}.alpha"] = torch.tensor(alpha)
    return tensors, expected


def patched_weights(motion_module: LoadedMotionModule) -> dict[str, torch.Tensor]:
    """The weights as ComfyUI patches them for sampling, then unpatched again."""
    motion_module.patcher.patch_model(device_to=CPU)
    try:
        return {k: v.clone() for k, v in motion_module.network.state_dict().items()}
    finally:
        motion_module.patcher.unpatch_model(device_to=CPU)


def test_official_motion_lora_layout_targets_every_v2_attention_projection():
    layers = parse_motion_lora(meta_state_dict("v2_lora_ZoomIn"), "v2_lora_ZoomIn.ckpt")
    model_keys = {k: list(v.shape) for k, v in MotionNetwork(official_config("v2"), device="meta").state_dict().items()}
    assert len(layers) == len(manifest("v2_lora_ZoomIn")["keys"]) // 2
    for key, layer in layers.items():
        assert model_keys[key] == [layer.up.shape[0], layer.down.shape[1]] and layer.scale == 1.0
        assert layer.down.shape[0] == 64  # rank read from the tensors


@pytest.mark.parametrize("convention,alpha,suffix", [
    ("original", None, ".ckpt"),  # v2_lora_*.ckpt; also MotionDirector's motion-LoRA export and this pack's own output
    ("cloneofsimo", None, ".safetensors"),  # MotionDirector's raw lora_up/lora_down
    ("diffusers", None, ".safetensors"),
    ("diffusers", 2.0, ".safetensors"),  # PEFT/kohya alpha: scale alpha / rank
])
def test_patched_weight_is_w_plus_strength_up_down(convention, alpha, suffix, tmp_path):
    model, _ = small_model("v2")
    motion_module = loaded(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tensors, expected = lora_tensors(model, convention, alpha=alpha)
    path = tmp_path / f"zoom{suffix}"
    if suffix == ".ckpt":
        torch.save(tensors, path)
    else:
        safetensors.torch.save_file(tensors, path)
    with_lora = apply_motion_lora(motion_module, parse_motion_lora(read_state_dict(path), path.name), path.name, 0.7)
    after = patched_weights(with_lora)
    for key, (up, down, scale) in expected.items():
        torch.testing.assert_close(after[key], before[key] + 0.7 * (scale * (up @ down)), rtol=0, atol=1e-6)
    untouched = [k for k in before if k not in expected]
    assert untouched and all(torch.equal(after[k], before[k]) for k in untouched)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # unpatched: the loaded weights are back


def test_two_loras_add_and_order_does_not_matter():
    model, _ = small_model("v2")
    motion_module = loaded(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first, expected1 = lora_tensors(model, "original", seed=1)
    second, expected2 = lora_tensors(model, "diffusers", seed=2)
    a = parse_motion_lora(first, "a.ckpt")
    b = parse_motion_lora(second, "b.safetensors")
    ab = patched_weights(apply_motion_lora(apply_motion_lora(motion_module, a, "a.ckpt", 0.5), b, "b.safetensors", -1.5))
    ba = patched_weights(apply_motion_lora(apply_motion_lora(motion_module, b, "b.safetensors", -1.5), a, "a.ckpt", 0.5))
    for key, (up1, down1, _) in expected1.items():
        up2, down2, _ = expected2[key]
        torch.testing.assert_close(ab[key], before[key] + 0.5 * (up1 @ down1) - 1.5 * (up2 @ down2), rtol=0, atol=1e-6)
        torch.testing.assert_close(ab[key], ba[key], rtol=0, atol=1e-6)


def test_partial_match_warns_with_counts_and_no_match_is_an_error(caplog):
    v2_lora = parse_motion_lora(meta_state_dict("v2_lora_ZoomIn"), "v2_lora_ZoomIn.ckpt")
    v3 = loaded(MotionNetwork(official_config("v3"), device="meta"), "v3_sd15_mm.ckpt")
    with caplog.at_level(logging.WARNING):
        apply_motion_lora(v3, v2_lora, "v2_lora_ZoomIn.ckpt", 1.0)
    assert "MotionLoRA v2_lora_ZoomIn.ckpt: 160 of 168 layers match v3_sd15_mm.ckpt" in caplog.text
    assert "8 do not (e.g. mid_block.motion_modules.0" in caplog.text
    sdxl = loaded(MotionNetwork(official_config("sdxl"), device="meta"), "mm_sdxl_v10_beta.ckpt")
    with pytest.raises(FileError, match=r"v2_lora_ZoomIn.ckpt: none of its 24 LoRA layers match the motion module mm_sdxl_v10_beta.ckpt"):
        apply_motion_lora(sdxl, {k: v for k, v in v2_lora.items() if "up_blocks.3" in k}, "v2_lora_ZoomIn.ckpt", 1.0)


def test_not_a_lora_is_an_error():
    with pytest.raises(FileError, match="mm.ckpt: not a LoRA"):
        parse_motion_lora(meta_state_dict("v3_sd15_mm"), "mm.ckpt")


def test_strength_zero_is_exact_and_the_module_is_clean_after_use(sd15, conds):
    model = sd15[0]
    motion_module = load_motion_module(motion_module_path("mm_v2_random.safetensors"))
    lora = parse_motion_lora(read_state_dict(motion_lora_path()), "zoom")
    x = noise(8, 20)
    plain = sample(apply_motion_module(model, motion_module, OWN), conds, x, steps=1)
    zero = sample(apply_motion_module(model, apply_motion_lora(motion_module, lora, "zoom", 0.0), OWN), conds, x, steps=1)
    assert torch.equal(zero, plain)
    zoomed = sample(apply_motion_module(model, apply_motion_lora(motion_module, lora, "zoom", 30.0), OWN), conds, x, steps=1)
    assert not torch.equal(zoomed, plain)
    after = sample(apply_motion_module(model, motion_module, OWN), conds, x, steps=1)
    fresh = load_motion_module(motion_module_path("mm_v2_random.safetensors"))
    assert torch.equal(after, plain)
    assert torch.equal(sample(apply_motion_module(model, fresh, OWN), conds, x, steps=1), plain)


def test_domain_adapter_weight_is_w_plus_alpha_up_down(sd15):
    model = sd15[0]
    state = read_state_dict(adapter_path())
    key = "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"
    prefix = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora"
    up, down = state[f"{prefix}.up.weight"].float(), state[f"{prefix}.down.weight"].float()
    before = model.model.state_dict()[key].clone()
    patched = apply_domain_adapter(model, state, "v3_sd15_adapter.ckpt", 0.6)
    comfy.model_management.load_models_gpu([patched])  # as sampling loads it: the shared weights get patched
    weight = patched.model.state_dict()[key].clone()
    comfy.model_management.load_models_gpu([model])  # the plain model again: patches removed
    torch.testing.assert_close(weight, before + 0.6 * (up @ down), rtol=0, atol=1e-6)
    assert torch.equal(model.model.state_dict()[key], before)


def test_domain_adapter_alpha_zero_is_exact(sd15, conds):
    model = sd15[0]
    x = noise(4, 21)
    state = read_state_dict(adapter_path())
    assert torch.equal(sample(apply_domain_adapter(model, state, "a.ckpt", 0.0), conds, x, steps=1), sample(model, conds, x, steps=1))


def test_lora_and_adapter_tensors_of_the_wrong_kind_are_refused_naming_file_and_tensor():
    tensors, _ = lora_tensors(small_model("v2")[0], "diffusers", alpha=4.0)
    layers = len(parse_motion_lora(tensors, "fp32.safetensors"))
    assert len(parse_motion_lora({k: v.to(torch.bfloat16) for k, v in tensors.items()}, "bf16.safetensors")) == layers
    assert len(parse_motion_lora({k: v.half() if k.endswith("weight") else v.int() for k, v in tensors.items()}, "ok.safetensors")) == layers
    bad = sorted(k for k in tensors if k.endswith("weight"))[0]
    with pytest.raises(FileError, match=rf"int.safetensors: tensor {re.escape(bad)} is int8 \(integer\), but weights must be "
                                        r"floating point \(fp32, fp16 or bf16\)"):
        parse_motion_lora({**tensors, bad: tensors[bad].to(torch.int8)}, "int.safetensors")
    alpha = sorted(k for k in tensors if k.endswith("alpha"))[0]
    with pytest.raises(FileError, match=rf"bool.safetensors: tensor {re.escape(alpha)} is bool: a LoRA alpha is a number"):
        parse_motion_lora({**tensors, alpha: torch.tensor(True)}, "bool.safetensors")
    adapter = meta_state_dict("v3_sd15_adapter")
    bad = sorted(adapter)[0]
    adapter[bad] = torch.empty(adapter[bad].shape, dtype=torch.int32, device="meta")
    with pytest.raises(FileError, match=rf"adapter.ckpt: tensor {re.escape(bad)} is int32 \(integer\), but weights must be floating"):
        apply_domain_adapter(None, adapter, "adapter.ckpt", 1.0)


def test_motion_module_is_not_a_domain_adapter():
    with pytest.raises(FileError, match="v3_sd15_mm.ckpt: this is a motion module .*not a domain adapter"):
        apply_domain_adapter(None, meta_state_dict("v3_sd15_mm"), "v3_sd15_mm.ckpt", 1.0)


@pytest.mark.full
def test_domain_adapter_file_formats_load(tmp_path):
    state = read_state_dict(adapter_path())
    torch.save(state, tmp_path / "v3_sd15_adapter.ckpt")
    safetensors.torch.save_file(state, tmp_path / "v3_sd15_adapter.safetensors")
    for name in ("v3_sd15_adapter.ckpt", "v3_sd15_adapter.safetensors"):
        assert read_state_dict(tmp_path / name).keys() == state.keys()
