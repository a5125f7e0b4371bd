"""Random weights in the official layouts, written once into ``.cache/test-models`` and reused."""

from __future__ import annotations

from pathlib import Path

from random_weights import write_motion_module, write_sd15_checkpoint, write_sd15_controlnet

MODELS_DIR = Path(__file__).resolve().parent.parent / ".cache" / "test-models"
CHECKPOINT = "sd15_random.safetensors"
CONTROLNET = "controlnet_sd15_random.safetensors"
MOTION_MODULES = {"mm_v3_random.safetensors": "v3", "mm_v2_random.safetensors": "v2",
                  "mm_v1_random.safetensors": "v1", "mm_sdxl_random.safetensors": "sdxl"}


def checkpoint_path() -> Path:
    return write_sd15_checkpoint(MODELS_DIR / "checkpoints" / CHECKPOINT)


def motion_module_path(name: str) -> Path:
    return write_motion_module(MODELS_DIR / "animatediff_models" / name, MOTION_MODULES[name])


def controlnet_path() -> Path:
    return write_sd15_controlnet(MODELS_DIR / "controlnet" / CONTROLNET)


def write_all() -> Path:
    checkpoint_path()
    controlnet_path()
    for name in MOTION_MODULES:
        motion_module_path(name)
    return MODELS_DIR


def extra_model_paths_yaml(path: Path) -> Path:
    path.write_text(
        "animdiff_tests:\n"
        f"    base_path: {MODELS_DIR}\n"
        "    checkpoints: checkpoints\n"
        "    controlnet: controlnet\n"
        "    animatediff_models: animatediff_models\n"
        "    animatediff_motion_lora: animatediff_motion_lora\n"
    )
    return path
