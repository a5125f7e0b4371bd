"""Noise types and FreeInit through a real headless ComfyUI server and its HTTP API."""

from __future__ import annotations

import time

import pytest
import safetensors.torch
import torch
from comfy_server import output_files
from graphs import node_of, on_test_models, shipped, small_txt2vid, validation_errors
from PIL import Image
from weights import CHECKPOINT


def saved_latents(server, entry) -> dict[str, torch.Tensor]:
    """SaveLatent outputs by filename prefix."""
    return {path.name.split("_")[0]: safetensors.torch.load_file(path)["latent_tensor"] for path in output_files(entry, server.output_dir)
            if path.suffix == ".latent"}


def save_latent(prompt: dict, sampler: str, prefix: str) -> None:
    prompt[f"save_{prefix}"] = {"class_type": "SaveLatent", "inputs": {"samples": [sampler, 0], "filename_prefix": f"noise_tests/{prefix}"}}


def test_constant_noise_on_a_plain_model_gives_equal_frames(server):
    prompt = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": "a lighthouse"}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 4}},
        "noise": {"class_type": "AnimDiffNoise", "inputs": {"model": ["ckpt", 0], "noise_type": "constant", "context_length": 16,
                                                            "window_stride": 4, "mix_weight": 0.5, "seed_offset": 0}},
    }
    for name, model in {"constant": ["noise", 0], "default": ["ckpt", 0]}.items():
        prompt[name] = {"class_type": "KSampler", "inputs": {
            "model": model, "positive": ["pos", 0], "negative": ["pos", 0], "latent_image": ["latent", 0], "seed": 5, "steps": 2,
            "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}}
        save_latent(prompt, name, name)
    latents = saved_latents(server, server.run(prompt))
    assert all(torch.equal(frame, latents["constant"][0]) for frame in latents["constant"])
    assert not torch.equal(latents["default"][0], latents["default"][1])


def test_64_frames_with_free_noise_and_context_windows(server):
    prompt = on_test_models(shipped("long_video_freenoise.api.json"), "input.mp4")
    node_of(prompt, "EmptyLatentImage")["inputs"]["batch_size"] = 64
    (webp,) = output_files(server.run(prompt), server.output_dir)
    with Image.open(webp) as image:
        assert image.n_frames == 64


def freeinit(iterations: int) -> dict:
    return {"class_type": "AnimDiffFreeInit", "inputs": {
        "model": ["3", 0], "iterations": iterations, "filter": "butterworth", "order": 4, "spatial_stop": 0.25, "temporal_stop": 0.25,
        "noise": "fresh"}}


def test_freeinit_two_passes_change_the_result_and_stay_finite(server):
    prompt = small_txt2vid("mm_v3_random.safetensors", frames=8, steps=2)
    del prompt["8"], prompt["9"]  # latents only
    prompt["freeinit"] = freeinit(2)
    prompt["twice"] = {**prompt["7"], "inputs": {**prompt["7"]["inputs"], "model": ["freeinit", 0]}}
    save_latent(prompt, "7", "once")
    save_latent(prompt, "twice", "twice")
    latents = saved_latents(server, server.run(prompt))
    assert torch.isfinite(latents["twice"]).all()
    assert not torch.allclose(latents["twice"], latents["once"], atol=1e-3)


@pytest.mark.slow  # about 30 s on two shared CPU cores
def test_interrupt_during_the_second_pass_stops_sampling(server):
    prompt = small_txt2vid("mm_v3_random.safetensors", frames=16, steps=12, seed=77)
    prompt["freeinit"] = freeinit(3)
    node_of(prompt, "KSampler")["inputs"]["model"] = ["freeinit", 0]
    seen = len(server.log())
    prompt_id = server.queue(prompt)
    deadline = time.time() + 600
    while "AnimDiff FreeInit: pass 2 of 3" not in server.log()[seen:]:
        assert time.time() < deadline, "the second pass never started"
        time.sleep(0.05)
    server.post("/interrupt", {})
    while prompt_id not in (history := server.get(f"/history/{prompt_id}")):
        assert time.time() < deadline
        time.sleep(0.1)
    messages = [kind for kind, _ in history[prompt_id]["status"]["messages"]]
    assert "execution_interrupted" in messages and "execution_success" not in messages
    assert "AnimDiff FreeInit: pass 3 of 3" not in server.log()[seen:]


def test_context_options_saved_before_views_and_windows_per_call_existed_stay_valid(server):
    prompt = on_test_models(shipped("long_video_64f.api.json"), "input.mp4")
    inputs = node_of(prompt, "AnimDiffContextOptions")["inputs"]
    del inputs["views"], inputs["windows_per_call"]
    assert validation_errors(prompt, server.get("/object_info")) == []
