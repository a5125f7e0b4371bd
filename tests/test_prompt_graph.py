"""Prompt travel, motion-strength schedules and keyframes through the real ComfyUI server."""

from __future__ import annotations

import pytest
from comfy_server import PromptError, output_files
from PIL import Image
from weights import CHECKPOINT


def travel_graph(frames: int, schedule: str, motion_scale_schedule: str = "0:1.0, -1:0.5") -> dict:
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "travel": {"class_type": "AnimDiffPromptSchedule", "inputs": {
            "clip": ["ckpt", 1], "text": schedule, "frames": frames, "pre_text": "photo", "app_text": "", "interpolation": "linear"}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": ""}},
        "mm": {"class_type": "AnimDiffLoadMotionModule", "inputs": {"model_name": "mm_v3_random.safetensors"}},
        "ctx": {"class_type": "AnimDiffContextOptions", "inputs": {
            "context_length": 16, "context_overlap": 4, "context_stride": 1, "closed_loop": False,
            "schedule": "uniform", "fuse_method": "pyramid"}},
        "key0": {"class_type": "AnimDiffMotionKeyframe", "inputs": {"start_percent": 0.0, "scale_multiplier": 1.0}},
        "key1": {"class_type": "AnimDiffMotionKeyframe", "inputs": {"start_percent": 0.5, "scale_multiplier": 0.5,
                                                                    "prev_keyframes": ["key0", 0]}},
        "strength": {"class_type": "PrimitiveString", "inputs": {"value": motion_scale_schedule}},
        "anim": {"class_type": "AnimDiffApplyMotionModule", "inputs": {
            "model": ["ckpt", 0], "motion_module": ["mm", 0], "beta_schedule": "autoselect", "motion_scale": 1.0,
            "start_percent": 0.0, "end_percent": 1.0, "context_options": ["ctx", 0], "keyframes": ["key1", 0],
            "motion_scale_schedule": ["strength", 0]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": frames}},
        "sample": {"class_type": "KSampler", "inputs": {
            "model": ["anim", 0], "positive": ["travel", 0], "negative": ["neg", 0], "latent_image": ["latent", 0],
            "seed": 5, "steps": 1, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sample", 0], "vae": ["ckpt", 2]}},
        "save": {"class_type": "SaveAnimatedWEBP", "inputs": {
            "images": ["decode", 0], "filename_prefix": f"travel{frames}", "fps": 8.0, "lossless": False, "quality": 80,
            "method": "default"}},
    }


def test_hundred_frame_schedule_with_context_windows(server):
    entry = server.run(travel_graph(100, '"0": "a red ball",\n"50": "a blue (cube:1.2)",\n"-1": "a green tree"'))
    (animation,) = output_files(entry, server.output_dir)
    with Image.open(animation) as image:
        assert image.n_frames == 100


def test_schedule_errors_reach_the_user(server):
    with pytest.raises(PromptError, match="schedule line '20: one past the end': frame 20 is outside the video's 20 frames"):
        server.run(travel_graph(20, "0: a red ball\n20: one past the end"))
