"""Training (issue #7): the three stages on small real ComfyUI models and synthetic moving-square clips.

Each stage is trained once per module (16 steps, 8-frame clips of 8x8 latents) and the run is
checked for: the loss going down, only the trained tensors changing (every frozen UNet / motion-module
tensor bit-identical, the plain model sampling as before), and the saved file loading through the
pack's loaders and changing the sampled output. Resuming from a training state equals an
uninterrupted run bit for bit; the loss equals an independent DDPM noise-prediction computation.
"""

from __future__ import annotations

import comfy.model_management
import comfy.model_patcher
import comfy.sample
import comfy.supported_models
import numpy as np
import pytest
import safetensors
import torch
from animdiff.animate.model import apply_motion_module
from animdiff.errors import FileError, TrainingStateError
from animdiff.image_model.domain_adapter import apply_domain_adapter
from animdiff.motion_module import MotionNetwork, load_motion_module
from animdiff.motion_module.config import BASE_CHANNELS, official_config
from animdiff.motion_module.lora import apply_motion_lora, parse_motion_lora
from animdiff.sampling.noise import betas
from animdiff.training import TrainConfig, TrainingClips, clips_from_images, encode_clips, noise_prediction_loss, stages, train
from animdiff.weight_files import read_state_dict
from manifests import manifest
from random_weights import SD15_UNET
from training_models import conditioning, frozen_snapshot, moving_square, small_motion, small_motion_config, small_sd15, tiny_clip, tiny_vae

import nodes

MULT = (1, 2, 2)  # three UNet levels at 32/64/64 channels: the smallest SD1.5-shaped model a motion module fits
FRAMES = 8
STEPS = 16
LEARNING_RATE = {"motion_lora": 5e-2, "domain_adapter": 3e-2, "motion_module": 2e-2}
CONDS = (conditioning(1), conditioning(2))  # positive, negative for sampling
OWN = betas.MODEL_OWN


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def clips(frames: int = FRAMES) -> TrainingClips:
    return TrainingClips.from_latents([moving_square(frames, row=1), moving_square(frames, row=4, start=3)], conditioning(1))


def config(stage: str, steps: int = STEPS, **kwargs) -> TrainConfig:
    return TrainConfig(stage=stage, steps=steps, rank=4, learning_rate=LEARNING_RATE[stage], seed=3, frames=FRAMES, **kwargs)


def motion_for(stage: str, motion_module):
    return {"motion_lora": motion_module, "domain_adapter": None, "motion_module": small_motion_config(mult=MULT)}[stage]


def sample(model, seed: int = 0, frames: int = FRAMES) -> torch.Tensor:
    x = torch.randn(frames, 4, 8, 8, generator=torch.Generator().manual_seed(seed))
    return comfy.sample.sample(model, x, 2, 5.0, "euler", "normal", CONDS[0], CONDS[1], torch.zeros_like(x), seed=0, disable_pbar=True)


@pytest.fixture(scope="module")
def models():
    return small_sd15(mult=MULT), small_motion(mult=MULT)


@pytest.fixture(scope="module")
def runs(models):
    """Per stage: (result of STEPS steps, result of 0 steps (the initial weights), snapshots, plain samples before/after)."""
    model, motion_module = models
    out = {}
    for stage in stages.STAGES:
        before = frozen_snapshot(model.model, motion_module.network)
        plain = sample(model), sample(apply_motion_module(model, motion_module, OWN))
        initial = train(config(stage, steps=0), model, clips(), motion_for(stage, motion_module))
        result = train(config(stage), model, clips(), motion_for(stage, motion_module))
        after = frozen_snapshot(model.model, motion_module.network)
        out[stage] = result, initial, before, after, plain, (sample(model), sample(apply_motion_module(model, motion_module, OWN)))
    return out


# ---------------------------------------------------------------- every stage

@pytest.mark.parametrize("stage", stages.STAGES)
def test_loss_goes_down(runs, stage):
    losses = runs[stage][0].losses
    assert len(losses) == STEPS and all(0 < x < 10 for x in losses)
    k = STEPS // 4
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    assert last < 0.85 * first, (first, last)


@pytest.mark.parametrize("stage", stages.STAGES)
def test_only_the_trained_tensors_change(runs, stage):
    result, initial, before, after, plain_before, plain_after = runs[stage]
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == []  # every UNet and motion-module tensor bit-identical
    assert torch.equal(plain_after[0], plain_before[0]) and torch.equal(plain_after[1], plain_before[1])  # nothing left patched
    assert result.tensors.keys() == initial.tensors.keys()
    trained = {k for k in result.tensors if not torch.equal(result.tensors[k], initial.tensors[k])}
    expected = {k for k in result.tensors if not k.endswith(".pos_encoder.pe")}  # the encodings are buffers, not trained
    assert trained == expected
    if stage != "motion_module":
        assert all(not initial.tensors[k].any() for k in result.tensors if k.endswith("_lora.up.weight"))  # LoRA starts at W


def test_motion_lora_file_loads_and_changes_the_sampled_output(runs, models, tmp_path):
    model, motion_module = models
    result = runs["motion_lora"][0]
    path = result.save(tmp_path / "zoom.safetensors")
    state = read_state_dict(path)
    assert all(k.split(".processor.")[1] in {f"{p}_lora.{d}.weight" for p in stages.PROJECTIONS for d in ("down", "up")} for k in state)
    assert {v.dtype for v in state.values()} == {torch.float16}
    lora = parse_motion_lora(state, path.name)
    assert len(lora) == len(state) // 2 == 4 * 2 * len(motion_module.network.module_keys())  # q/k/v/out of both attentions of every module
    assert all(layer.down.shape[0] == 4 and layer.scale == 1.0 for layer in lora.values())
    with_lora = apply_motion_lora(motion_module, lora, path.name, 1.0)
    plain = sample(apply_motion_module(model, motion_module, OWN))
    animated = sample(apply_motion_module(model, with_lora, OWN))
    assert (animated - plain).abs().max() > 1e-3
    assert torch.equal(sample(apply_motion_module(model, apply_motion_lora(motion_module, lora, path.name, 0.0), OWN)), plain)
    metadata = safetensors.safe_open(str(path), "pt").metadata()
    assert (metadata["stage"], metadata["rank"], metadata["steps"], metadata["base"]) == ("motion_lora", "4", str(STEPS), "SD1.5")
    assert metadata["beta_schedule"] == betas.SQRT_LINEAR  # what AnimDiffApplyMotionModule autoselects for v3


def test_domain_adapter_file_loads_and_changes_the_sampled_output(runs, models, tmp_path):
    model, _ = models
    path = runs["domain_adapter"][0].save(tmp_path / "adapter.safetensors")
    state = read_state_dict(path)
    adapted = apply_domain_adapter(model, state, path.name, 1.0)  # checks every layer lands on the model
    assert (sample(adapted) - sample(model)).abs().max() > 1e-3
    assert torch.equal(sample(apply_domain_adapter(model, state, path.name, 0.0)), sample(model))
    assert safetensors.safe_open(str(path), "pt").metadata()["stage"] == "domain_adapter"


def test_motion_module_file_loads_through_the_loader_and_changes_the_sampled_output(runs, models, tmp_path, monkeypatch):
    model, _ = models
    result, initial = runs["motion_module"][:2]
    # the loader recognises official widths only; register the test width as SD1.5's so its full path runs
    monkeypatch.setitem(BASE_CHANNELS, "SD1.5", small_motion_config(mult=MULT).channels)
    trained = load_motion_module(result.save(tmp_path / "mm_trained.safetensors", dtype="fp32"))
    new = load_motion_module(initial.save(tmp_path / "mm_new.safetensors", dtype="fp32"))
    assert (trained.config.version, new.config.max_frames) == ("v3", 32)
    assert trained.network.state_dict().keys() == MotionNetwork(trained.config, device="meta").state_dict().keys()
    plain = sample(model)
    assert torch.equal(sample(apply_motion_module(model, new, OWN)), plain)  # the new module's zero output: the identity
    assert (sample(apply_motion_module(model, trained, OWN)) - plain).abs().max() > 1e-3
    assert torch.equal(sample(apply_motion_module(model, result.motion_module(), OWN)), sample(apply_motion_module(model, trained, OWN)))


# ---------------------------------------------------------------- resume and determinism

class Interrupted(Exception):
    pass


@pytest.mark.parametrize("stage,accumulate", [("motion_lora", 1), ("domain_adapter", 2), ("motion_module", 1)])
def test_resume_equals_an_uninterrupted_run(models, stage, accumulate, tmp_path):
    model, motion_module = models
    settings = config(stage, steps=3, grad_accumulation=accumulate, checkpoint_every=1)
    whole = train(settings, model, clips(), motion_for(stage, motion_module))

    def stop_after_2(progress):
        if progress.step == 2:
            raise Interrupted  # as an interrupted ComfyUI job (the node's progress callback raises)

    state = tmp_path / "state.pt"
    with pytest.raises(Interrupted):
        train(settings, model, clips(), motion_for(stage, motion_module), progress=stop_after_2, state_path=state)
    seen = []
    resumed = train(settings, model, clips(), motion_for(stage, motion_module), progress=lambda p: seen.append(p.step), resume=state)
    assert seen == [3]  # continued from the state of step 2
    assert resumed.losses == whole.losses
    assert resumed.tensors.keys() == whole.tensors.keys()
    assert all(torch.equal(resumed.tensors[k], whole.tensors[k]) for k in whole.tensors)


def test_a_state_read_inside_a_node_resumes(models, tmp_path):
    """The node reads the state (to check which files it may replace) under ComfyUI's inference mode."""
    from animdiff.training import TrainingState

    model, motion_module = models
    state = tmp_path / "state.pt"
    train(config("motion_lora", steps=1), model, clips(), motion_module, state_path=state)
    with torch.inference_mode():
        read = TrainingState.read(state)
        resumed = train(config("motion_lora", steps=2), model, clips(), motion_module, resume=read)
    assert len(resumed.losses) == 2


def test_same_seed_same_weights_other_seed_other_weights(models):
    model, _ = models
    a = train(config("domain_adapter", steps=1), model, clips(), None)
    b = train(config("domain_adapter", steps=1), model, clips(), None)
    c = train(TrainConfig(**{**config("domain_adapter", steps=1).__dict__, "seed": 4}), model, clips(), None)
    assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)
    assert not all(torch.equal(a.tensors[k], c.tensors[k]) for k in a.tensors)


def test_resume_refuses_other_settings(models, tmp_path):
    model, motion_module = models
    state = tmp_path / "state.pt"
    train(config("domain_adapter", steps=1), model, clips(), None, state_path=state)
    with pytest.raises(ValueError, match=r"state.pt: was trained with other settings: learning_rate 0.03 \(now 0.5\)"):
        train(TrainConfig(**{**config("domain_adapter", steps=2).__dict__, "learning_rate": 0.5}), model, clips(), None, resume=state)
    with pytest.raises(ValueError, match="state.pt: was trained on other clips"):
        train(config("domain_adapter", steps=2), model, clips(frames=FRAMES + 1), None, resume=state)
    same_shapes = clips()
    same_shapes.latents[0] = same_shapes.latents[0].flip(-1)  # other pixels, same shapes
    with pytest.raises(ValueError, match="state.pt: was trained on other clips or captions"):
        train(config("domain_adapter", steps=2), model, same_shapes, None, resume=state)
    other_caption = TrainingClips.from_latents(clips().latents, conditioning(2))
    with pytest.raises(ValueError, match="state.pt: was trained on other clips or captions"):
        train(config("domain_adapter", steps=2), model, other_caption, None, resume=state)


def test_resume_refuses_another_motion_module_of_the_same_shapes(models, tmp_path):
    model, motion_module = models
    state = tmp_path / "state.pt"
    train(config("motion_lora", steps=1), model, clips(), motion_module, state_path=state)
    other = small_motion(mult=MULT, seed=9)  # same layout, other weights
    with pytest.raises(TrainingStateError, match=r"state.pt: was trained on another motion module \(small_v3.safetensors .*; now "
                                                 r"small_v3.safetensors .*: other weights\): start a new run: delete the state file or "
                                                 "turn resume off"):
        train(config("motion_lora", steps=2), model, clips(), other, resume=state)
    resumed = train(config("motion_lora", steps=2), model, clips(), motion_module, resume=state)  # the same module resumes
    assert len(resumed.losses) == 2


def test_every_training_state_error_names_the_file_and_what_to_do(models, tmp_path):
    model, _ = models
    state = tmp_path / "state.pt"
    train(config("domain_adapter", steps=1), model, clips(), None, state_path=state)
    good = torch.load(state, weights_only=True)
    fix = "start a new run: delete the state file or turn resume off"

    def refused(contents_or_bytes, why: str):
        path = tmp_path / "damaged.pt"
        if isinstance(contents_or_bytes, bytes):
            path.write_bytes(contents_or_bytes)
        else:
            torch.save(contents_or_bytes, path)
        with pytest.raises(TrainingStateError, match=rf"damaged.pt: {why}.*{fix}"):
            train(config("domain_adapter", steps=2), model, clips(), None, resume=path)

    refused(np.random.default_rng(0).bytes(4096), "not a training state: not a weights file at all")
    refused(state.read_bytes()[:2000], "cannot be read, truncated or not a training state")
    refused({"format": "something else"}, "not an AnimDiff training state")
    refused({**good, "version": 1}, r"written by another version of the pack \(state version 1, this one reads 2\)")
    refused({k: v for k, v in good.items() if k != "config"}, "incomplete: no config")
    nan = {**good, "parameters": {k: v.clone() for k, v in good["parameters"].items()}}
    first = sorted(nan["parameters"])[0]
    nan["parameters"][first][0, 0] = float("nan")
    refused(nan, rf"tensor parameters.{first} holds NaN values.*the run diverged or the file is damaged")
    ints = {**good, "parameters": {**good["parameters"], first: good["parameters"][first].to(torch.int32)}}
    refused(ints, rf"tensor parameters.{first} is int32 \(integer\), but weights must be floating point")
    moments = {**good, "optimizer": {**good["optimizer"], "state": {0: {**good["optimizer"]["state"][0], "exp_avg": torch.zeros(2).long()}}}}
    refused(moments, r"tensor optimizer.0.exp_avg is int64 \(integer\), but weights must be floating point")
    with pytest.raises(TrainingStateError, match=rf"missing.pt: not found: {fix}"):
        train(config("domain_adapter", steps=2), model, clips(), None, resume=tmp_path / "missing.pt")


# ---------------------------------------------------------------- the objective

@pytest.mark.parametrize("v_prediction", [False, True])
def test_loss_is_the_ddpm_noise_prediction_mse_on_the_animatediff_schedule(v_prediction):
    """Independent reference: diffusers' DDPMScheduler with AnimateDiff's training betas (linear 0.00085-0.012)
    noises x0, the raw UNet predicts, MSE to the noise (or to v)."""
    from diffusers import DDPMScheduler

    model = small_sd15(seed=5, v_prediction=v_prediction, mult=MULT)
    patched = model.clone()
    patched.add_object_patch("model_sampling", betas.model_sampling_for(betas.SQRT_LINEAR, model.get_model_object("model_sampling")))
    comfy.model_management.load_models_gpu([patched])
    sampling = patched.model.model_sampling
    gen = torch.Generator().manual_seed(0)
    t = torch.tensor([0, 17, 500, 999])
    x0 = patched.model.process_latent_in(moving_square(4))
    noise = torch.randn(x0.shape, generator=gen)
    context = torch.randn(4, 5, 32, generator=gen)
    with torch.no_grad():
        ours = noise_prediction_loss(lambda x, sigma: patched.model.apply_model(x, sigma, c_crossattn=context), sampling, x0, noise,
                                     sampling.sigmas[t])
        reference = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="linear",
                                  prediction_type="v_prediction" if v_prediction else "epsilon")
        target = reference.get_velocity(x0, noise, t) if v_prediction else noise
        predicted = patched.model.diffusion_model(reference.add_noise(x0, noise, t), t.float(), context=context)
        expected = torch.nn.functional.mse_loss(predicted, target)
    comfy.model_management.load_models_gpu([model])
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=0)


def test_lora_adapter_is_w_plus_up_down():
    weight = torch.randn(6, 5)
    adapter = stages.lora_adapter(weight, 3, torch.Generator().manual_seed(0))
    assert torch.equal(adapter(weight), weight)  # up starts at zero
    with torch.no_grad():
        adapter.lora_up.weight.normal_()
    torch.testing.assert_close(adapter(weight), weight + adapter.lora_up.weight @ adapter.lora_down.weight, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- ComfyUI conditions

def test_trains_on_inference_tensors_as_inside_a_node():
    """A node runs under torch.inference_mode, and checkpoints loaded by a node hold inference tensors."""
    with torch.inference_mode():
        model, motion_module = small_sd15(seed=7, mult=MULT), small_motion(mult=MULT, seed=7)
        data = clips()
        before = frozen_snapshot(model.model, motion_module.network)
        result = train(config("motion_lora", steps=2), model, data, motion_module)
        after = frozen_snapshot(model.model, motion_module.network)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(v.any() for k, v in result.tensors.items() if k.endswith("up.weight"))


def test_bf16_autocast_trains_float32_weights(models):
    model, _ = models
    result = train(config("domain_adapter", steps=2, precision="bf16"), model, clips(), None)
    assert all(0 < x < 10 for x in result.losses)
    assert {v.dtype for v in result.tensors.values()} == {torch.float32}
    assert model.model.diffusion_model.dtype == torch.float32 and model.model.manual_cast_dtype is None


def test_gradient_checkpointing_gives_the_same_run(models):
    model, motion_module = models
    plain = train(config("motion_lora", steps=2), model, clips(), motion_module)
    checkpointed = train(config("motion_lora", steps=2, gradient_checkpointing=True), model, clips(), motion_module)
    assert checkpointed.losses == pytest.approx(plain.losses, rel=1e-6)
    assert all(torch.allclose(checkpointed.tensors[k], plain.tensors[k], rtol=0, atol=1e-6) for k in plain.tensors)
    assert not any(hasattr(m, "org_forward") for m in [*model.model.modules(), *motion_module.network.modules()])  # unpatched


def test_refuses_what_it_cannot_train(models):
    model, motion_module = models
    with pytest.raises(ValueError, match="needs a motion module"):
        train(config("motion_lora"), model, clips(), None)
    with pytest.raises(ValueError, match="already has a motion module"):
        train(config("domain_adapter"), apply_motion_module(model, motion_module, OWN), clips(), None)
    with pytest.raises(ValueError, match="a clip has 8 frames, fewer than the 16"):
        train(TrainConfig(stage="motion_lora", steps=1, rank=4), model, clips(), motion_module)
    with pytest.raises(ValueError, match="unknown stage"):
        TrainConfig(stage="everything")


# ---------------------------------------------------------------- official layouts at full size (shapes only)

def test_motion_lora_layout_is_the_official_v2_lora_layout():
    motion_module = MotionNetwork(official_config("v2"), device="meta")
    patcher = comfy.model_patcher.ModelPatcher(motion_module, torch.device("cpu"), torch.device("cpu"))
    parameters = stages.attach_loras(patcher, stages.motion_lora_targets(motion_module), stages.STAGES["motion_lora"].rank,
                                        torch.Generator(), torch.device("cpu"))
    assert {k: list(v.shape) for k, v in parameters.items()} == manifest("v2_lora_ZoomIn")["keys"]


def test_domain_adapter_layout_is_the_v3_sd15_adapter_layout():
    import comfy.model_base

    unet = {**SD15_UNET, "use_temporal_attention": False}
    model = comfy.model_base.BaseModel(comfy.supported_models.SD15(unet), device="meta")
    patcher = comfy.model_patcher.ModelPatcher(model, torch.device("cpu"), torch.device("cpu"))
    parameters = stages.attach_loras(patcher, stages.domain_adapter_targets(model), stages.STAGES["domain_adapter"].rank,
                                        torch.Generator(), torch.device("cpu"))
    assert {k: list(v.shape) for k, v in parameters.items()} == manifest("v3_sd15_adapter")["keys"]


# ---------------------------------------------------------------- data

def test_image_batch_is_cut_into_clips():
    images = torch.rand(20, 16, 24, 3)
    cut = clips_from_images(images, 8)
    assert [c.shape for c in cut] == [torch.Size([8, 3, 16, 24])] * 2
    assert torch.equal(cut[1][0], images[8].movedim(-1, 0))
    assert len(clips_from_images(images, 8, stride=4)) == 4


def test_clips_are_encoded_with_the_vae_and_captions_with_clip_once_each():
    vae, clip = tiny_vae(), tiny_clip()
    pixels = [torch.rand(4, 3, 32, 40, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    data = encode_clips(pixels, vae, captions=["a red square", "a blue circle", "a red square"], clip=clip)
    assert data.cond_index == [0, 1, 0] and len(data.conditionings) == 2
    for frames, latents in zip(pixels, data.latents, strict=True):
        assert latents.shape == (4, 4, 4, 5)
        torch.testing.assert_close(latents, vae.encode(frames.movedim(1, -1)), rtol=0, atol=0)
    expected = nodes.CLIPTextEncode().encode(clip, "a blue circle")[0]
    assert torch.equal(data.conditionings[1][0][0], expected[0][0])
    with pytest.raises(ValueError, match="multiples of 8"):
        encode_clips([torch.rand(4, 3, 30, 32)], vae, conditioning=conditioning(0))


# ---------------------------------------------------------------- command line

def write_sequence(folder, caption: str, offset: int, frames: int = 10, size: int = 32):
    """A folder of PNG frames of a white square moving right 2 px a frame, and its caption file."""
    from PIL import Image

    folder.mkdir()
    for i in range(frames):
        image = np.zeros((size, size, 3), np.uint8)
        image[8:16, (offset + 2 * i) % (size - 8):(offset + 2 * i) % (size - 8) + 8] = 255
        Image.fromarray(image).save(folder / f"frame{i}.png")
    folder.with_name(folder.name + ".txt").write_text(caption)


def test_command_line_trains_from_a_folder_saves_and_resumes(models, tmp_path, capsys):
    import animdiff_train

    model, motion_module = models
    data = tmp_path / "data"
    data.mkdir()
    write_sequence(data / "right", "a square moving right", 0)
    write_sequence(data / "later", "a square later", 6)
    out = tmp_path / "lora" / "square.safetensors"
    argv = ["--stage", "motion_lora", "--checkpoint", "sd.safetensors", "--motion-module", "mm.safetensors", "--data", str(data),
            "--width", "32", "--height", "32", "--frames", str(FRAMES), "--rank", "4", "--lr", "1e-2", "--out", str(out),
            "--log-every", "1", "--checkpoint-every", "1"]
    animdiff_train.run(animdiff_train.parse_args([*argv, "--steps", "2"]), model, tiny_clip(), tiny_vae(), motion_module)
    printed = capsys.readouterr().out
    assert "2 clips of 8 frames at 32x32, 2 captions" in printed and "step 2/2  loss " in printed and f"saved {out}" in printed
    lora = parse_motion_lora(read_state_dict(out), out.name)
    assert len(lora) == 4 * 2 * len(motion_module.network.module_keys())
    state = out.with_name("square.safetensors.state.pt")
    animdiff_train.run(animdiff_train.parse_args([*argv, "--steps", "3", "--resume", str(state)]), model, tiny_clip(), tiny_vae(), motion_module)
    printed = capsys.readouterr().out
    assert "step 3/3  loss " in printed and "step 1/3" not in printed and "step 2/3" not in printed
    written = out.read_bytes()
    with pytest.raises(FileError, match=rf"--out: {out} exists already and was not written by this run .*choose another name, or pass --overwrite"):
        animdiff_train.run(animdiff_train.parse_args([*argv, "--steps", "1"]), model, tiny_clip(), tiny_vae(), motion_module)  # a new run
    assert out.read_bytes() == written and "clips of" not in capsys.readouterr().out  # refused before any work
    long_out = ["--out", str(tmp_path / ("x" * 250 + ".safetensors"))]
    with pytest.raises(SystemExit):
        animdiff_train.parse_args([*argv, *long_out])
    assert "the file name (with '.tmp' while it is written) is longer than the file system's limit" in capsys.readouterr().err


def test_command_line_checks_its_arguments():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "animdiff_train.py"
    help_text = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, check=True).stdout
    assert "--stage {motion_lora,domain_adapter,motion_module}" in help_text and "--resume RESUME" in help_text
    wrong = subprocess.run([sys.executable, str(script), "--stage", "motion_lora", "--checkpoint", "sd.safetensors", "--data", "x",
                            "--out", "o.safetensors"], capture_output=True, text=True)
    assert wrong.returncode == 2 and "--stage motion_lora needs --motion-module" in wrong.stderr
