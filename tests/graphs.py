"""API-format graphs for the graph tests, built from the shipped workflows or from small pieces."""

from __future__ import annotations

import copy
import re
from pathlib import Path

from weights import CHECKPOINT

from client.workflow import load_workflow

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
UI_WORKFLOWS = sorted(p.name for p in WORKFLOWS.glob("*.json") if not p.name.endswith(".api.json"))


def shipped(name: str) -> dict:
    """A shipped workflow file from workflows/ (API or UI format)."""
    return load_workflow(WORKFLOWS / name, api_only=False)


def node_of(prompt: dict, class_type: str) -> dict:
    (node,) = [n for n in prompt.values() if n["class_type"] == class_type]
    return node


def small_txt2vid(motion_module: str, frames: int = 16, size: int = 32, steps: int = 2, seed: int = 1) -> dict:
    """The shipped 16-frame workflow on the test models, at smoke-test size."""
    prompt = copy.deepcopy(shipped("txt2vid_16f.api.json"))
    node_of(prompt, "CheckpointLoaderSimple")["inputs"]["ckpt_name"] = CHECKPOINT
    node_of(prompt, "AnimDiffLoadMotionModule")["inputs"]["model_name"] = motion_module
    node_of(prompt, "EmptyLatentImage")["inputs"].update(width=size, height=size, batch_size=frames)
    node_of(prompt, "KSampler")["inputs"].update(steps=steps, seed=seed)
    return prompt


def two_branches(frames: int = 8) -> dict:
    """Two motion modules in one graph: KSamplerAdvanced -> SaveAnimatedPNG, SamplerCustomAdvanced -> CreateVideo -> SaveVideo."""
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": "a boat"}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": ""}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": frames}},
        "mm_a": {"class_type": "AnimDiffLoadMotionModule", "inputs": {"model_name": "mm_v3_random.safetensors"}},
        "mm_b": {"class_type": "AnimDiffLoadMotionModule", "inputs": {"model_name": "mm_v2_random.safetensors"}},
        "anim_a": {"class_type": "AnimDiffApplyMotionModule", "inputs": {
            "model": ["ckpt", 0], "motion_module": ["mm_a", 0], "beta_schedule": "autoselect",
            "motion_scale": 1.0, "start_percent": 0.0, "end_percent": 1.0}},
        "anim_b": {"class_type": "AnimDiffApplyMotionModule", "inputs": {
            "model": ["ckpt", 0], "motion_module": ["mm_b", 0], "beta_schedule": "sqrt_linear (AnimateDiff)",
            "motion_scale": 1.2, "start_percent": 0.0, "end_percent": 1.0}},
        "ksa": {"class_type": "KSamplerAdvanced", "inputs": {
            "model": ["anim_a", 0], "add_noise": "enable", "noise_seed": 3, "steps": 2, "cfg": 7.0,
            "sampler_name": "euler", "scheduler": "normal", "positive": ["pos", 0], "negative": ["neg", 0],
            "latent_image": ["latent", 0], "start_at_step": 0, "end_at_step": 10000, "return_with_leftover_noise": "disable"}},
        "dec_a": {"class_type": "VAEDecode", "inputs": {"samples": ["ksa", 0], "vae": ["ckpt", 2]}},
        "png": {"class_type": "SaveAnimatedPNG", "inputs": {
            "images": ["dec_a", 0], "filename_prefix": "branch_a", "fps": 8.0, "compress_level": 4}},
        "noise": {"class_type": "RandomNoise", "inputs": {"noise_seed": 4}},
        "guider": {"class_type": "CFGGuider", "inputs": {"model": ["anim_b", 0], "positive": ["pos", 0], "negative": ["neg", 0], "cfg": 6.0}},
        "sampler": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "sigmas": {"class_type": "BasicScheduler", "inputs": {"model": ["anim_b", 0], "scheduler": "normal", "steps": 2, "denoise": 1.0}},
        "sca": {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": ["noise", 0], "guider": ["guider", 0], "sampler": ["sampler", 0], "sigmas": ["sigmas", 0], "latent_image": ["latent", 0]}},
        "dec_b": {"class_type": "VAEDecode", "inputs": {"samples": ["sca", 0], "vae": ["ckpt", 2]}},
        "video": {"class_type": "CreateVideo", "inputs": {"images": ["dec_b", 0], "fps": 8.0}},
        "save_video": {"class_type": "SaveVideo", "inputs": {"video": ["video", 0], "filename_prefix": "branch_b", "format": "auto", "codec": "auto"}},
    }


def long_video_with_controlnet(frame_counts=(48, 100)) -> dict:
    """One branch per frame count: motion module + context options + ControlNet -> SaveAnimatedWEBP."""
    from weights import CONTROLNET

    prompt = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": "a dancer"}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": ""}},
        "mm": {"class_type": "AnimDiffLoadMotionModule", "inputs": {"model_name": "mm_v3_random.safetensors"}},
        "ctx": {"class_type": "AnimDiffContextOptions", "inputs": {
            "context_length": 16, "context_overlap": 4, "context_stride": 1, "closed_loop": False,
            "schedule": "uniform", "fuse_method": "pyramid"}},
        "anim": {"class_type": "AnimDiffApplyMotionModule", "inputs": {
            "model": ["ckpt", 0], "motion_module": ["mm", 0], "beta_schedule": "autoselect", "motion_scale": 1.0,
            "start_percent": 0.0, "end_percent": 1.0, "context_options": ["ctx", 0]}},
        "cn": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": CONTROLNET}},
    }
    for n in frame_counts:
        prompt.update({
            f"hint{n}": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": n, "color": 8421504}},
            f"apply{n}": {"class_type": "ControlNetApplyAdvanced", "inputs": {
                "positive": ["pos", 0], "negative": ["neg", 0], "control_net": ["cn", 0], "image": [f"hint{n}", 0],
                "strength": 0.8, "start_percent": 0.0, "end_percent": 1.0}},
            f"latent{n}": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": n}},
            f"sample{n}": {"class_type": "KSampler", "inputs": {
                "model": ["anim", 0], "positive": [f"apply{n}", 0], "negative": [f"apply{n}", 1], "latent_image": [f"latent{n}", 0],
                "seed": n, "steps": 1, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
            f"decode{n}": {"class_type": "VAEDecode", "inputs": {"samples": [f"sample{n}", 0], "vae": ["ckpt", 2]}},
            f"save{n}": {"class_type": "SaveAnimatedWEBP", "inputs": {
                "images": [f"decode{n}", 0], "filename_prefix": f"long{n}", "fps": 8.0, "lossless": False, "quality": 80, "method": "default"}},
        })
    return prompt


def lora_and_adapter_branches(frames: int = 8) -> dict:
    """Same seed three ways: plain animated; MotionLoRA strength 0 + adapter alpha 0; both at 1. Latents saved."""
    base = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": "a train"}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": frames}},
        "mm": {"class_type": "AnimDiffLoadMotionModule", "inputs": {"model_name": "mm_v2_random.safetensors"}},
    }
    branches = {"plain": None, "zero": 0.0, "full": 1.0}
    for name, weight in branches.items():
        motion_module, model = ["mm", 0], ["ckpt", 0]
        if weight is not None:
            base[f"lora_{name}"] = {"class_type": "AnimDiffMotionLoRA", "inputs": {
                "motion_module": ["mm", 0], "lora_name": "v2_lora_ZoomIn_random.safetensors", "strength": weight}}
            base[f"adapter_{name}"] = {"class_type": "AnimDiffDomainAdapter", "inputs": {
                "model": ["ckpt", 0], "adapter_name": "v3_sd15_adapter_random.safetensors", "alpha": weight}}
            motion_module, model = [f"lora_{name}", 0], [f"adapter_{name}", 0]
        base[f"anim_{name}"] = {"class_type": "AnimDiffApplyMotionModule", "inputs": {
            "model": model, "motion_module": motion_module, "beta_schedule": "autoselect", "motion_scale": 1.0,
            "start_percent": 0.0, "end_percent": 1.0}}
        base[f"sample_{name}"] = {"class_type": "KSampler", "inputs": {
            "model": [f"anim_{name}", 0], "positive": ["pos", 0], "negative": ["pos", 0], "latent_image": ["latent", 0],
            "seed": 9, "steps": 1, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}}
        base[f"save_{name}"] = {"class_type": "SaveLatent", "inputs": {"samples": [f"sample_{name}", 0], "filename_prefix": f"lora_{name}"}}
    return base


def sparsectrl_video(frame_indices: str | None, frames: int = 16, keyframes: int = 1, kind: str = "rgb", windows: bool = False,
                     seed: int = 4) -> dict:
    """Motion module (+ context windows) with SparseCtrl keyframes at ``frame_indices`` (``None``: no control);
    2 steps with CFG at 32x32, latents saved."""
    from weights import SPARSECTRL

    prompt = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": "a horse running"}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": "blurry"}},
        "mm": {"class_type": "AnimDiffLoadMotionModule", "inputs": {"model_name": "mm_v3_random.safetensors"}},
        "anim": {"class_type": "AnimDiffApplyMotionModule", "inputs": {
            "model": ["ckpt", 0], "motion_module": ["mm", 0], "beta_schedule": "autoselect", "motion_scale": 1.0,
            "start_percent": 0.0, "end_percent": 1.0}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": frames}},
        "sample": {"class_type": "KSampler", "inputs": {
            "model": ["anim", 0], "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["latent", 0],
            "seed": seed, "steps": 2, "cfg": 2.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "save": {"class_type": "SaveLatent", "inputs": {"samples": ["sample", 0], "filename_prefix": "sparsectrl"}},
    }
    if windows:
        prompt["ctx"] = {"class_type": "AnimDiffContextOptions", "inputs": {
            "context_length": 16, "context_overlap": 4, "context_stride": 1, "closed_loop": False, "schedule": "uniform",
            "fuse_method": "pyramid"}}
        prompt["anim"]["inputs"]["context_options"] = ["ctx", 0]
    if frame_indices is not None:
        prompt.update({
            "sc": {"class_type": "AnimDiffLoadSparseCtrl", "inputs": {"sparsectrl_name": SPARSECTRL[kind], "frame_indices": frame_indices}},
            "keys": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": keyframes, "color": 0xE08020}},
            "apply": {"class_type": "ControlNetApplyAdvanced", "inputs": {
                "positive": ["pos", 0], "negative": ["neg", 0], "control_net": ["sc", 0], "image": ["keys", 0],
                "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0, "vae": ["ckpt", 2]}},
        })
        prompt["sample"]["inputs"].update(positive=["apply", 0], negative=["apply", 1])
    return prompt


# Official file names in the shipped workflows -> the random test models.
TEST_NAMES = {
    "mm_sd_v15_v2.ckpt": "mm_v2_random.safetensors",
    "v3_sd15_mm.ckpt": "mm_v3_random.safetensors",
    "pia.ckpt": "pia_random.safetensors",
    "AnimateLCM_sd15_i2v.ckpt": "animatelcm_i2v_random.safetensors",
    "v2_lora_ZoomIn.ckpt": "v2_lora_ZoomIn_random.safetensors",
    "v3_sd15_adapter.ckpt": "v3_sd15_adapter_random.safetensors",
    "v3_sd15_sparsectrl_rgb.ckpt": "sparsectrl_rgb_random.safetensors",
    "v3_sd15_sparsectrl_scribble.ckpt": "sparsectrl_scribble_random.safetensors",
}


TRAINED_LORA = "trained_by_tests/workflow"
TEST_IMAGE = "keyframe.png"  # written into the test server's input folder (keyframes, scribbles)
LONGEST_TEST_VIDEO = 24


def shorten_schedule(text: str, frames: int) -> str:
    """A prompt schedule for ``frames`` frames moved onto at most LONGEST_TEST_VIDEO frames (keyframe n -> n * new // old)."""
    shorter = min(frames, LONGEST_TEST_VIDEO)
    return re.sub(r'^(\s*"?)(\d+)', lambda m: f"{m[1]}{int(m[2]) * shorter // frames}", text, flags=re.MULTILINE)


def on_test_models(prompt: dict, video_file: str) -> dict:
    """A shipped API workflow at smoke-test size on the random test models (1 step, 32x32)."""
    from weights import CONTROLNET

    prompt = copy.deepcopy(prompt)
    for node in prompt.values():
        inputs, kind = node["inputs"], node["class_type"]
        for key, value in inputs.items():
            if isinstance(value, str) and value in TEST_NAMES:
                inputs[key] = TEST_NAMES[value]
        if kind == "CheckpointLoaderSimple":
            inputs["ckpt_name"] = CHECKPOINT
        elif kind == "ControlNetLoader":
            inputs["control_net_name"] = CONTROLNET
        elif kind == "LoadVideo":
            inputs["file"] = video_file
        elif kind == "LoadImage":
            inputs["image"] = TEST_IMAGE
        elif kind == "EmptyLatentImage":  # long videos: still several windows (48/100 frames run in test_graph)
            inputs.update(width=32, height=32, batch_size=min(inputs["batch_size"], LONGEST_TEST_VIDEO))
        elif kind == "KSampler":
            inputs["steps"] = 1
        elif kind == "AnimDiffDraftWindow":  # a draft window inside the shortened latent batch
            inputs["start"] = min(inputs["start"], LONGEST_TEST_VIDEO - 16)
        elif kind == "LatentFromBatch":  # the same frames cut out
            inputs["batch_index"] = min(inputs["batch_index"], LONGEST_TEST_VIDEO - inputs["length"])
        elif kind == "AnimDiffPromptSchedule":  # as long as the shortened latent batch, keyframes moved along
            inputs.update(text=shorten_schedule(inputs["text"], inputs["frames"]), frames=min(inputs["frames"], LONGEST_TEST_VIDEO))
        elif kind == "AnimDiffTrainMotionLoRA":
            inputs.update(lora_name=TRAINED_LORA, steps=1, frames=8, checkpoint_every=0, resume=False)
    return prompt


def combo_options(spec: list) -> list | None:
    """The choices of a combo input in /object_info: ``[[choices], {...}]`` (classic nodes) or
    ``["COMBO", {"options": [choices]}]`` (nodes in ComfyUI's newer node API); None for other inputs."""
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO" and len(spec) > 1:
        return spec[1].get("options")
    return None


def validation_errors(prompt: dict, object_info: dict) -> list[str]:
    """What the live server's /object_info says is wrong with an API workflow (empty: valid)."""
    errors = []
    for node_id, node in prompt.items():
        info = object_info.get(node["class_type"])
        if info is None:
            errors.append(f"{node_id}: unknown node {node['class_type']}")
            continue
        declared = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        for name in info["input"].get("required", {}):
            if name not in node["inputs"]:
                errors.append(f"{node_id}.{name}: required input missing")
        for name, value in node["inputs"].items():
            if name not in declared:
                errors.append(f"{node_id}.{name}: no such input")
                continue
            kind = declared[name][0]
            if isinstance(value, list):  # a link [node, output]
                source = prompt.get(value[0])
                if source is None:
                    errors.append(f"{node_id}.{name}: link to missing node {value[0]}")
                    continue
                if source["class_type"] not in object_info:
                    continue  # reported as an unknown node
                produced = object_info[source["class_type"]]["output"][value[1]]
                if isinstance(kind, str) and produced != kind and "*" not in (produced, kind):
                    errors.append(f"{node_id}.{name}: {produced} linked to a {kind} input")
            elif (options := combo_options(declared[name])) is not None and value not in options:
                errors.append(f"{node_id}.{name}: {value!r} is not one of the options")
    return errors
