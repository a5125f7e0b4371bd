"""motion_module/: layouts of every official file, numerics against diffusers, identity, loading."""

from __future__ import annotations

import json
import os
import pickle
import random
import re

import pytest
import safetensors.torch
import torch
from animdiff.errors import FileError, NonFiniteError
from animdiff.motion_module import MotionNetwork, build_motion_network
from animdiff.motion_module.layout import detect_config, to_original_keys
from animdiff.weight_files import check_layout, read_state_dict
from manifests import MOTION_MODULES, manifest, meta_state_dict
from reference import SMALL, diffusers_adapter, diffusers_module, small_model

EXPECTED_VERSION = {"mm_sd_v14": "v1", "mm_sd_v15_v2": "v2", "v3_sd15_mm": "v3", "mm_sdxl_v10_beta": "sdxl", "pia": "pia"}


@pytest.mark.parametrize("name", MOTION_MODULES)
def test_official_layout_detected_and_rebuilt_exactly(name):
    info = manifest(name)
    state_dict, scheme = to_original_keys(meta_state_dict(name))
    config = detect_config(state_dict, name)
    assert (scheme, config.version, config.base) == ("original", EXPECTED_VERSION[name], info["base"])
    model = MotionNetwork(config, device="meta")
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == info["keys"]
    params = sum(p.numel() for p in model.parameters())
    assert params == info["param_count_without_pe"]


def test_v1_and_v3_differ_only_in_positional_encoding_length():
    v1 = detect_config(meta_state_dict("mm_sd_v14"), "a")
    v3 = detect_config(meta_state_dict("v3_sd15_mm"), "b")
    assert (v1.max_frames, v3.max_frames) == (24, 32)
    assert v1.image_norm_across_frames and not v3.image_norm_across_frames


def without_pe(state_dict):
    return {k: v for k, v in state_dict.items() if not k.endswith(".pos_encoder.pe")}


def test_file_without_encodings_computes_them_and_takes_a_version_override():
    v2_layout = without_pe(meta_state_dict("mm_sd_v15_v2"))  # AnimateLCM's layout
    assert detect_config(v2_layout, "lcm").version == "animatelcm"
    assert detect_config(v2_layout, "lcm").max_frames == 64
    no_mid = without_pe(meta_state_dict("v3_sd15_mm"))
    assert detect_config(no_mid, "x").version == "v3"
    assert detect_config(no_mid, "x", version="v1").max_frames == 24
    with pytest.raises(FileError, match="x: version sdxl is for SDXL, but these weights are a SD1.5"):
        detect_config(no_mid, "x", version="sdxl")


def diffusers_keys(name):
    """The official layout renamed by diffusers' own single-file conversion, plus its pe buffers."""
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    original = meta_state_dict(name)
    converted = convert_animatediff_checkpoint_to_diffusers(original)
    for key, value in original.items():
        if key.endswith("attention_blocks.0.pos_encoder.pe"):
            block = key.replace("temporal_transformer.", "").removesuffix("attention_blocks.0.pos_encoder.pe")
            converted[block + "pos_embed.pe"] = value
    return converted


@pytest.mark.parametrize("name", ["mm_sd_v15_v2", "mm_sdxl_v10_beta"])
def test_diffusers_motion_adapter_keys_are_converted(name):
    state_dict, scheme = to_original_keys(diffusers_keys(name))
    assert scheme == "diffusers"
    assert {k: list(v.shape) for k, v in state_dict.items()} == manifest(name)["keys"]


def test_hotshotxl_keys_are_converted():
    hotshot = {}
    for key, value in meta_state_dict("mm_sdxl_v10_beta").items():
        key = key.replace("motion_modules.", "temporal_attentions.").replace(".temporal_transformer.", ".")
        if key.endswith("pos_encoder.pe"):
            key, value = key.replace("pos_encoder.pe", "pos_encoder.positional_encoding"), value[:, :24]
        hotshot[key] = value
    state_dict, scheme = to_original_keys(hotshot)
    config = detect_config(state_dict, "hsxl_temporal_layers.safetensors", scheme=scheme)
    assert (config.version, config.max_frames, config.image_norm_across_frames) == ("hotshotxl", 24, True)


# ---------------------------------------------------------------- numerics against diffusers

@pytest.mark.parametrize("version", list(SMALL))
def test_matches_diffusers_reference(version, tmp_path):
    torch.manual_seed(1)
    model, state = small_model(version)
    adapter = diffusers_adapter(version, state, tmp_path)
    frames, worst = 16, 0.0
    with torch.no_grad():
        for key in model.module_keys():
            channels = model.module_at(key).temporal_transformer.proj_in.in_features
            x = torch.randn(2 * frames, channels, 4, 3)
            ours = model.module_at(key)(x, frames)
            theirs = diffusers_module(adapter, key)(x, num_frames=frames)
            worst = max(worst, (ours - theirs).abs().max().item())
            assert (ours - x).abs().max() > 1e-2  # the temporal residual is far above the tolerance
    assert worst <= 1e-5


def test_per_frame_norm_matters_so_the_reference_patch_is_needed(tmp_path):
    from diffusers import MotionAdapter

    model, state = small_model("v3")
    spec = SMALL["v3"]
    adapter = MotionAdapter(block_out_channels=spec["channels"], use_motion_mid_block=False)
    adapter.save_config(tmp_path / "c")
    safetensors.torch.save_file(state, tmp_path / "m.safetensors")
    unpatched = MotionAdapter.from_single_file(str(tmp_path / "m.safetensors"), config=str(tmp_path / "c"))
    x = torch.randn(16, 32, 4, 4)
    with torch.no_grad():
        diff = (model.module_at("down_blocks.0.motion_modules.0")(x, 16) - unpatched.down_blocks[0].motion_modules[0](x, num_frames=16)).abs().max()
    assert diff > 1e-3


def test_zero_proj_out_is_bit_exact_identity():
    model, state = small_model("v2")
    for key in model.module_keys():
        model.module_at(key).temporal_transformer.proj_out.weight.data.zero_()
        model.module_at(key).temporal_transformer.proj_out.bias.data.zero_()
    x = torch.randn(16, 64, 5, 5)
    with torch.no_grad():
        assert torch.equal(model.module_at("down_blocks.1.motion_modules.0")(x, 16), x)
        assert torch.equal(model.module_at("up_blocks.0.motion_modules.2")(x, 8), x)


def test_frames_are_coupled_only_within_a_video():
    model, _ = small_model("v3")
    mm = model.module_at("down_blocks.0.motion_modules.0")
    x = torch.randn(2 * 8, 32, 3, 3)
    y = x.clone()
    y[0] += 1.0  # first frame of the first video
    with torch.no_grad():
        a, b = mm(x, 8), mm(y, 8)
    assert not torch.equal(a[5], b[5])  # same video: coupled
    assert torch.equal(a[8:], b[8:])  # the other video: untouched


# ---------------------------------------------------------------- files

def full_size_state(name: str, dtype=torch.float16) -> dict[str, torch.Tensor]:
    """A full-size random state dict in an official layout (only used where size matters)."""
    return {k: torch.randn(shape, dtype=torch.float32).mul_(0.02).to(dtype) for k, shape in manifest(name)["keys"].items()}


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_files_load_in_every_format(tmp_path, suffix, dtype):
    state = {k: v.to(dtype) for k, v in small_model("v2")[1].items()}
    path = tmp_path / f"mm{suffix}"
    if suffix == ".ckpt":  # nested the way training scripts save, with the config entry
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "animatediff_config": {"a": 1}}, path)
        state_read = read_state_dict(path)
    else:
        safetensors.torch.save_file(state, path)
        state_read = read_state_dict(path)
    assert state_read.keys() == state.keys()
    assert all(torch.equal(state_read[k], state[k]) for k in state)


class CreatesFile:
    def __reduce__(self):
        return (open, (os.environ["ANIMDIFF_TEST_PWNED"], "w"))


def test_ckpt_that_would_run_code_is_refused(tmp_path, monkeypatch):
    target = tmp_path / "pwned.txt"
    monkeypatch.setenv("ANIMDIFF_TEST_PWNED", str(target))
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"x": CreatesFile()}}, f)
    with pytest.raises(FileError, match=r"evil\.ckpt: refused to unpickle"):
        read_state_dict(path)
    assert not target.exists()


@pytest.mark.parametrize("seed", range(25))
def test_random_bytes_are_reported_as_not_a_weights_file(tmp_path, seed):
    data = random.Random(seed).randbytes(4096)
    for name in ("noise.safetensors", "noise.ckpt"):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(FileError, match=rf"{name}: not a weights file: it has no"):
            read_state_dict(tmp_path / name)
    (tmp_path / "empty.ckpt").write_bytes(b"")
    with pytest.raises(FileError, match=r"empty\.ckpt: not a weights file: .* \(it is empty\)"):
        read_state_dict(tmp_path / "empty.ckpt")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_non_finite_weights_are_refused_naming_the_first_bad_tensor(tmp_path, value, suffix):
    state = small_model("v3")[1]
    bad = "down_blocks.0.motion_modules.1.temporal_transformer.proj_out.weight"
    state[bad] = state[bad].clone()
    state[bad][0, 1] = value
    path = tmp_path / f"bad{suffix}"
    safetensors.torch.save_file(state, path) if suffix == ".safetensors" else torch.save(state, path)
    kind = "NaN" if value != value else "infinite"
    with pytest.raises(NonFiniteError, match=rf"bad{suffix}: tensor {bad} holds {kind} values \(1 of"):
        read_state_dict(path)


@pytest.mark.parametrize("ending,dtype,kind", [("proj_out.weight", torch.int32, "integer"), ("pos_encoder.pe", torch.int64, "integer"),
                                               ("norm.weight", torch.bool, "boolean"), ("to_q.weight", torch.complex64, "complex")])
def test_tensor_of_the_wrong_kind_is_refused_naming_file_and_tensor(ending, dtype, kind):
    """The loader's layout check (build_motion_network runs it on every file; the server test loads one end to end),
    on a reduced network: weights and positional encodings are floating point."""
    network, state = small_model("v3")
    bad = sorted(k for k in state if k.endswith(ending))[0]
    state[bad] = state[bad].to(dtype)
    with pytest.raises(FileError, match=rf"bad.safetensors: does not match the v3 motion-module layout: {re.escape(bad)} is "
                                        rf"{str(dtype).removeprefix('torch.')} \({kind}\), the v3 motion-module layout needs floating point"):
        check_layout(state, network.state_dict(), "bad.safetensors", "v3 motion-module")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_every_floating_point_precision_loads(dtype):
    network, state = small_model("v3")
    check_layout({k: v.to(dtype) for k, v in state.items()}, network.state_dict(), "half.safetensors", "v3 motion-module")


def test_truncated_safetensors_is_reported(tmp_path):
    path = tmp_path / "cut.safetensors"
    safetensors.torch.save_file(small_model("v3")[1], path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(FileError, match=r"cut\.safetensors: cannot be read: truncated or corrupt"):
        read_state_dict(path)


def test_sd_checkpoint_is_not_a_motion_module():
    unet = {"model.diffusion_model.input_blocks.1.1.proj_in.weight": torch.zeros(1),
            "first_stage_model.decoder.conv_in.weight": torch.zeros(1)}
    with pytest.raises(FileError, match="sd15.safetensors: this is a Stable Diffusion checkpoint"):
        build_motion_network(unet, "sd15.safetensors")


def test_lora_and_unknown_files_are_named():
    lora = {k: torch.zeros(1) for k in manifest("v2_lora_ZoomIn")["keys"]}
    with pytest.raises(FileError, match="zoom.ckpt: this is a MotionLoRA"):
        build_motion_network(lora, "zoom.ckpt")
    with pytest.raises(FileError, match=r"other.pt: unknown layout: no AnimateDiff motion-module keys found \(1 tensors, e.g. foo.bar\)"):
        build_motion_network({"foo.bar": torch.zeros(1)}, "other.pt")


def test_wrong_shapes_are_named():
    state = meta_state_dict("v3_sd15_mm")
    key = "up_blocks.1.motion_modules.0.temporal_transformer.proj_out.weight"
    state[key] = torch.empty(5, 5, device="meta")
    with pytest.raises(FileError, match=rf"bad.safetensors: does not match the v3 motion-module layout: {key} has shape \[5, 5\]"):
        build_motion_network(state, "bad.safetensors")


def test_a_wrong_feed_forward_output_width_is_blamed_on_that_tensor():
    state = meta_state_dict("v3_sd15_mm")
    key = "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.ff.net.2.weight"
    state[key] = torch.empty(320, 1000, device="meta")  # 1280 wide in the official file
    with pytest.raises(FileError, match=rf"bad.safetensors: does not match the v3 motion-module layout: {key} has shape \[320, 1000\]") as err:
        build_motion_network(state, "bad.safetensors")
    assert "ff.net.0" not in str(err.value)


@pytest.mark.parametrize("manifest_name,version,why", [
    ("v3_sd15_mm", "v1", "v1 has positional encodings for 24 frames, these weights for 32"),
    ("v3_sd15_mm", "animatelcm", "animatelcm has mid block, these weights have none"),
    ("v3_sd15_mm", "v2", "v2 has mid block, these weights have none"),
    ("mm_sd_v15_v2", "v3", "v3 has no mid block, these weights have"),
    ("mm_sd_v15_v2", "animatelcm", "animatelcm has positional encodings for 64 frames, these weights for 32"),
])
def test_a_version_override_that_contradicts_the_weights_is_refused(manifest_name, version, why):
    state = meta_state_dict(manifest_name)
    guess = detect_config(state, "x").version
    with pytest.raises(FileError, match=rf"x: version {version} contradicts the weights: {why} \(they are {guess}\).*use auto"):
        detect_config(state, "x", version=version)
    assert detect_config(state, "x", version=guess).version == guess  # agreeing with the weights is fine
    assert detect_config(without_pe(state), "x", version="v1" if guess == "v3" else "animatelcm").max_frames in (24, 64)


def test_manifest_files_are_the_shared_ones():
    assert json.loads((__import__("manifests").MANIFEST_DIR / "mm_sd_v14.json").read_text())["version"] == "v1"


# ---------------------------------------------------------------- through the node, from ComfyUI's model folders

@pytest.mark.full
def test_node_loads_safetensors_and_ckpt_from_a_registered_folder(tmp_path):
    import folder_paths
    from animdiff.nodes.folders import MOTION_MODELS
    from animdiff.nodes.motion import AnimDiffLoadMotionModule
    from weights import motion_module_path

    state = read_state_dict(motion_module_path("mm_sdxl_random.safetensors"))
    safetensors.torch.save_file(state, tmp_path / "sdxl_copy.safetensors")
    torch.save({"state_dict": state}, tmp_path / "sdxl_copy.ckpt")
    folder_paths.add_model_folder_path(MOTION_MODELS, str(tmp_path))
    try:
        names = AnimDiffLoadMotionModule.INPUT_TYPES()["required"]["model_name"][0]
        assert {"sdxl_copy.safetensors", "sdxl_copy.ckpt"} <= set(names)
        for name in ("sdxl_copy.safetensors", "sdxl_copy.ckpt"):
            (motion,) = AnimDiffLoadMotionModule().load(name)
            assert (motion.config.version, motion.config.base, motion.config.max_frames) == ("sdxl", "SDXL", 32)
            assert motion.describe() == f"{name} (sdxl, SDXL, up to 32 frames per window)"
    finally:
        folder_paths.folder_names_and_paths[MOTION_MODELS][0].remove(str(tmp_path))


@pytest.mark.parametrize("name", ["../checkpoints/sd15.safetensors", "/etc/passwd", "", "missing.safetensors"])
def test_names_outside_the_model_folders_are_refused(name):
    from animdiff.nodes.folders import MOTION_MODELS, resolve

    with pytest.raises(FileError, match="not a file name inside the animatediff_models folders|not found in the animatediff_models folders"):
        resolve(MOTION_MODELS, name)
