"""End to end through a real headless ComfyUI server and its HTTP API."""

from __future__ import annotations

import copy

import av
import pytest
import safetensors.torch
import torch
from comfy_server import PromptError, output_files
from graphs import (
    LONGEST_TEST_VIDEO,
    WORKFLOWS,
    long_video_with_controlnet,
    lora_and_adapter_branches,
    on_test_models,
    shipped,
    small_txt2vid,
    two_branches,
    validation_errors,
)
from PIL import Image

PACK_NODES = ["AnimDiffLoadMotionModule", "AnimDiffApplyMotionModule", "AnimDiffContextOptions", "AnimDiffApplyContextOptions",
              "AnimDiffMotionLoRA", "AnimDiffDomainAdapter", "AnimDiffTrainMotionLoRA", "AnimDiffPromptSchedule",
              "AnimDiffMotionKeyframe", "AnimDiffLoadSparseCtrl", "AnimDiffNoise", "AnimDiffFreeInit", "AnimDiffApplyPIA",
              "AnimDiffApplyAnimateLCMI2V", "AnimDiffContextAnchors", "AnimDiffNaiveReuse", "AnimDiffDraftWindow"]


def test_nodes_are_registered_with_descriptions_and_tooltips(server):
    info = server.get("/object_info")
    ours = info["AnimDiffLoadMotionModule"]["python_module"]
    assert sorted(n for n, node in info.items() if node["python_module"] == ours) == sorted(PACK_NODES)
    used = {node["class_type"] for path in WORKFLOWS.glob("*.api.json") for node in shipped(path.name).values()}
    assert set(PACK_NODES) <= used, "every node is in a shipped workflow"
    for node_id in PACK_NODES:
        node = info[node_id]
        assert node["description"] and node["category"] == "AnimDiff"
        for section in ("required", "optional"):
            for name, spec in node["input"].get(section, {}).items():
                assert spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
    assert "mm_v3_random.safetensors" in info["AnimDiffLoadMotionModule"]["input"]["required"]["model_name"][0]


def test_txt2vid_16_frames_writes_a_16_frame_webp(server):
    entry = server.run(small_txt2vid("mm_v3_random.safetensors"))
    (webp,) = output_files(entry, server.output_dir)
    with Image.open(webp) as image:
        assert image.n_frames == 16
        assert image.size == (32, 32)


def test_two_motion_modules_in_two_branches_with_advanced_samplers(server):
    entry = server.run(two_branches(frames=8))
    files = output_files(entry, server.output_dir)
    (png,) = [f for f in files if f.suffix == ".png"]
    (video,) = [f for f in files if f.suffix in (".mp4", ".webm", ".mov")]
    with Image.open(png) as image:
        assert image.n_frames == 8
    with av.open(str(video)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 8


def test_wrong_base_model_error_reaches_the_api(server):
    with pytest.raises(PromptError, match=r"mm_sdxl_random.safetensors: wrong base model: SDXL motion module \(sdxl\) on a SD15 model"):
        server.run(small_txt2vid("mm_sdxl_random.safetensors", frames=2, steps=1))


def test_unknown_motion_module_name_is_refused_by_validation(server):
    with pytest.raises(PromptError, match="model_name"):
        server.queue(small_txt2vid("../../etc/passwd"))


def test_48_and_100_frames_with_context_options_and_controlnet(server):
    entry = server.run(long_video_with_controlnet((48, 100)))
    counts = {}
    for path in output_files(entry, server.output_dir):
        with Image.open(path) as image:
            counts[path.name.split("_")[0]] = image.n_frames
    assert counts == {"long48": 48, "long100": 100}


def test_one_window_per_call_equals_batched_windows_through_the_api(server):
    """AnimDiffContextOptions' windows_per_call: 1 (one window a call) and 0 (as many as fit) give the same video."""
    prompt = on_test_models(shipped("long_video_64f.api.json"), "input.mp4")  # 24 frames: several windows
    for per_call in (0, 1):
        options, apply, sampler = (f"{node}_{per_call}" for node in ("options", "apply", "sampler"))
        prompt[options] = copy.deepcopy(prompt["3"])
        prompt[options]["inputs"]["windows_per_call"] = per_call
        prompt[apply] = copy.deepcopy(prompt["4"])
        prompt[apply]["inputs"]["context_options"] = [options, 0]
        prompt[sampler] = copy.deepcopy(prompt["8"])
        prompt[sampler]["inputs"]["model"] = [apply, 0]
        prompt[f"save_{per_call}"] = {"class_type": "SaveLatent", "inputs": {"samples": [sampler, 0],
                                                                            "filename_prefix": f"per_call/w{per_call}"}}
    for node in ("3", "4", "8", "9", "10"):
        del prompt[node]
    latents = {path.name.split("_")[0]: safetensors.torch.load_file(path)["latent_tensor"]
               for path in output_files(server.run(prompt), server.output_dir)}
    assert latents["w0"].shape[0] == LONGEST_TEST_VIDEO
    # Float rounding only: the random full-size UNet's outputs reach ~1e3, and ComfyUI's own UNet moves by ~2e-6 of
    # its largest output when the batch size changes (32 vs 128 frames), with or without motion modules.
    torch.testing.assert_close(latents["w1"], latents["w0"], rtol=0, atol=1e-5 * float(latents["w0"].abs().max()))
    prompt["options_1"]["inputs"]["windows_per_call"] = -1
    del prompt["save_0"]  # ComfyUI runs the valid outputs of a prompt and refuses it only when none is valid
    with pytest.raises(PromptError, match="windows_per_call"):
        server.queue(prompt)


def test_lora_strength_zero_and_adapter_alpha_zero_are_exact_through_the_api(server):
    entry = server.run(lora_and_adapter_branches())
    latents = {}
    for path in output_files(entry, server.output_dir):
        latents[path.name.split("_")[1]] = safetensors.torch.load_file(path)["latent_tensor"]
    assert set(latents) == {"plain", "zero", "full"}
    assert torch.equal(latents["zero"], latents["plain"])
    assert not torch.equal(latents["full"], latents["plain"])


API_WORKFLOWS = sorted(p.name for p in WORKFLOWS.glob("*.api.json"))
VIDEO_FRAMES = 24  # the clip write_test_video puts into the server's input folder
RUN_ELSEWHERE = {"train_motion_lora.api.json"}  # test_train_node runs it (twice, with resume)


@pytest.mark.parametrize("name", API_WORKFLOWS)
def test_shipped_api_workflow_validates(server, name):
    assert validation_errors(on_test_models(shipped(name), "input.mp4"), server.get("/object_info")) == []


@pytest.mark.parametrize("name", [n for n in API_WORKFLOWS if n not in RUN_ELSEWHERE])
def test_shipped_api_workflow_runs(server, name):
    prompt = shipped(name)
    entry = server.run(on_test_models(prompt, "input.mp4"))
    (animation,) = output_files(entry, server.output_dir)
    latents = [n for n in prompt.values() if n["class_type"] == "EmptyLatentImage"]
    cut = [n["inputs"]["length"] for n in prompt.values() if n["class_type"] == "LatentFromBatch"]  # a draft window's frames
    with Image.open(animation) as image:
        assert image.n_frames == (cut[0] if cut else min(latents[0]["inputs"]["batch_size"], LONGEST_TEST_VIDEO) if latents else VIDEO_FRAMES)


def test_validation_catches_broken_workflows(server):
    prompt = on_test_models(shipped("txt2vid_16f.api.json"), "input.mp4")
    prompt["3"]["class_type"] = "AnimDiffApplyMotionModel"
    prompt["9"]["inputs"]["method"] = "quickest"
    prompt["7"]["inputs"]["positive"] = ["2", 0]
    errors = validation_errors(prompt, server.get("/object_info"))
    assert "3: unknown node AnimDiffApplyMotionModel" in errors
    assert "9.method: 'quickest' is not one of the options" in errors
    assert "7.positive: MOTION_MODULE linked to a CONDITIONING input" in errors
