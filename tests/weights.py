"""Random weights in the official layouts, written once into ``.cache/test-models`` and reused."""

from __future__ import annotations

from pathlib import Path

from random_weights import write_clip_vision_h, write_motion_module, write_sd15_checkpoint, write_sd15_controlnet, write_sdxl_checkpoint

MODELS_DIR = Path(__file__).resolve().parent.parent / ".cache" / "test-models"
FAST_TIER = False  # set by ``pytest --fast``: the cached full-size test models are off limits


def cached(path: Path) -> Path:
    """``path`` in the test-model cache, unless the fast tier runs (then the test belongs to the full tier)."""
    if FAST_TIER:
        raise RuntimeError(f"{path.name}: a cached test model in the fast tier; mark the test @pytest.mark.full")
    return path
CHECKPOINT = "sd15_random.safetensors"
SDXL_CHECKPOINT = "sdxl_random.safetensors"  # about 7 GB: GPU benchmarks only, never written by the suite
CONTROLNET = "controlnet_sd15_random.safetensors"
CLIP_VISION = "clip_vision_vit_h_random.safetensors"  # IP-Adapter SD1.5's image encoder; about 1.3 GB: written when a test asks
SPARSECTRL = {"rgb": "sparsectrl_rgb_random.safetensors", "scribble": "sparsectrl_scribble_random.safetensors"}
MOTION_MODULES = {"mm_v3_random.safetensors": "v3", "mm_v2_random.safetensors": "v2",
                  "mm_v1_random.safetensors": "v1", "mm_sdxl_random.safetensors": "sdxl", "pia_random.safetensors": "pia"}


def checkpoint_path() -> Path:
    return write_sd15_checkpoint(cached(MODELS_DIR / "checkpoints" / CHECKPOINT))


def sdxl_checkpoint_path() -> Path:
    return write_sdxl_checkpoint(cached(MODELS_DIR / "checkpoints" / SDXL_CHECKPOINT))


def motion_module_path(name: str) -> Path:
    return write_motion_module(cached(MODELS_DIR / "animatediff_models" / name), MOTION_MODULES[name])


def controlnet_path() -> Path:
    return write_sd15_controlnet(cached(MODELS_DIR / "controlnet" / CONTROLNET))


def clip_vision_path() -> Path:
    return write_clip_vision_h(cached(MODELS_DIR / "clip_vision" / CLIP_VISION))


def write_all() -> Path:
    checkpoint_path()
    controlnet_path()
    for name in MOTION_MODULES:
        motion_module_path(name)
    motion_lora_path()
    adapter_path()
    animatelcm_i2v_path()
    for kind in SPARSECTRL:
        sparsectrl_path(kind)
    return MODELS_DIR


def extra_model_paths_yaml(path: Path, scratch: Path | None = None, custom_nodes: Path | None = None, more: str = "") -> Path:
    """The test models' folders for ComfyUI; ``scratch``: a second base folder (after them) for files a test writes;
    ``custom_nodes``: a folder of other packs to load (:func:`comfy_server.linked_custom_nodes`); ``more``: further
    folder lines of the scratch base (``    ipadapter: ipadapter``)."""
    folders = ("    animatediff_models: animatediff_models\n"
               "    animatediff_motion_lora: animatediff_motion_lora\n")
    text = f"animdiff_tests:\n    base_path: {MODELS_DIR}\n    checkpoints: checkpoints\n    controlnet: controlnet\n{folders}"
    if scratch is not None:
        text += f"animdiff_scratch:\n    base_path: {scratch}\n{folders}{more}"
    if custom_nodes is not None:
        text += f"animdiff_other_packs:\n    custom_nodes: {custom_nodes}\n"
    path.write_text(text)
    return path


def write_from_manifest(path: Path, manifest_name: str, seed: int) -> Path:
    """A random file with exactly the keys and shapes of an official file (LoRA-sized files only)."""
    import safetensors.torch
    import torch
    from manifests import manifest

    if not path.exists():
        gen = torch.Generator().manual_seed(seed)
        tensors = {k: (torch.randn(shape, generator=gen) * 0.02).half() for k, shape in manifest(manifest_name)["keys"].items()}
        path.parent.mkdir(parents=True, exist_ok=True)
        safetensors.torch.save_file(tensors, path)
    return path


def motion_lora_path(name: str = "v2_lora_ZoomIn_random.safetensors", seed: int = 5) -> Path:
    return write_from_manifest(cached(MODELS_DIR / "animatediff_motion_lora" / name), "v2_lora_ZoomIn", seed)


def adapter_path() -> Path:
    return write_from_manifest(cached(MODELS_DIR / "animatediff_models" / "v3_sd15_adapter_random.safetensors"), "v3_sd15_adapter", 6)


ANIMATELCM_I2V = "animatelcm_i2v_random.safetensors"


def animatelcm_i2v_path(seed: int = 9) -> Path:
    """A full-size random AnimateLCM-I2V file in the official layout (the manifest's keys and shapes: no pe buffers), fp16."""
    import safetensors.torch
    from manifests import manifest
    from random_weights import random_tensors

    path = cached(MODELS_DIR / "animatediff_models" / ANIMATELCM_I2V)
    if not path.exists():
        tensors = random_tensors(manifest("animatelcm_sd15_i2v")["keys"], seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        safetensors.torch.save_file(tensors, tmp)
        tmp.rename(path)
    return path


def sparsectrl_path(kind: str, seed: int = 7) -> Path:
    """A full-size random SparseCtrl in the official layout (the manifest's keys and shapes, pe buffers included), fp16."""
    import math

    import safetensors.torch
    import torch
    from animdiff.motion_module.attention import sinusoidal_encoding
    from manifests import manifest
    from random_weights import random_tensors

    path = MODELS_DIR / "controlnet" / SPARSECTRL[kind]
    if not path.exists():
        shapes = manifest(f"v3_sd15_sparsectrl_{kind}")["keys"]
        tensors = random_tensors({k: s for k, s in shapes.items() if not k.endswith(".pe")}, seed + len(kind))
        tensors.update({k: sinusoidal_encoding(s[1], s[2]).half() for k, s in shapes.items() if k.endswith(".pe")})
        gen = torch.Generator().manual_seed(seed)  # the condition encoder fan-in scaled too, so keyframes carry through it
        tensors.update({k: (torch.randn(s, generator=gen) / math.prod(s[1:]) ** 0.5).half()
                        for k, s in shapes.items() if k.startswith("controlnet_cond_embedding.") and len(s) == 4})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        safetensors.torch.save_file(tensors, tmp)
        tmp.rename(path)
    return path


def write_test_video(path: Path, frames: int = 24, size: int = 32) -> Path:
    """A small moving-gradient clip for video-to-video graphs (the image sequence they load)."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        ramp = np.linspace(0, 255, size, dtype=np.float32)
        for i in range(frames):
            image = np.stack([np.roll(ramp, 2 * i)[None, :].repeat(size, 0)] * 3, axis=-1).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_test_image(path: Path, size: int = 64) -> Path:
    """A small picture (a bright disc on a gradient) for the keyframe and scribble inputs of shipped workflows."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:size, 0:size] / size
    disc = ((x - 0.5) ** 2 + (y - 0.4) ** 2 < 0.05).astype(np.float32)
    image = np.stack([x, y, 1 - x], axis=-1) * 0.6 + disc[..., None] * 0.4
    Image.fromarray((image * 255).astype(np.uint8)).save(path)
    return path
