"""Test set-up: the real ComfyUI from the bootstrap, and this pack imported as package ``animdiff``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from pack_import import import_pack  # noqa: E402

import_pack()

import pytest  # noqa: E402
import torch  # noqa: E402
import weights  # noqa: E402
from comfy_server import ComfyServer  # noqa: E402
from pack_import import COMFYUI_DIR  # noqa: E402
from weights import checkpoint_path, extra_model_paths_yaml, write_all, write_test_video  # noqa: E402

# Tests that use one of these fixtures (directly or through another fixture) are in the full tier only.
FULL_TIER_FIXTURES = {"server", "sd15", "v3"}


def pytest_addoption(parser):
    parser.addoption("--fast", action="store_true",
                     help="the fast tier: no ComfyUI server and no full-size test models (reduced-width maths, parsing, contracts)")


def pytest_configure(config):
    config.addinivalue_line("markers", "full: needs a ComfyUI server or the full-size test models (left out by --fast)")
    weights.FAST_TIER = config.getoption("--fast")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if FULL_TIER_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.full)
    if config.getoption("--fast"):
        full = [item for item in items if item.get_closest_marker("full")]
        items[:] = [item for item in items if not item.get_closest_marker("full")]
        config.hook.pytest_deselected(items=full)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A real headless ComfyUI with this pack, the random test models and no result cache."""
    write_all()
    tmp = tmp_path_factory.mktemp("comfy")
    (tmp / "input").mkdir()
    write_test_video(tmp / "input" / "input.mp4")
    args = ["--extra-model-paths-config", str(extra_model_paths_yaml(tmp / "models.yaml")),
            "--output-directory", str(tmp / "output"), "--input-directory", str(tmp / "input"), "--cache-none"]
    if not torch.cuda.is_available():
        args.append("--cpu")
    with ComfyServer(COMFYUI_DIR, args, tmp / "comfyui.log") as running:
        running.output_dir = tmp / "output"
        yield running


@pytest.fixture(scope="session")
def sd15():
    """(model, clip, vae) of the random full-size SD1.5 checkpoint, loaded in-process by ComfyUI."""
    import comfy.sd

    model, clip, vae = comfy.sd.load_checkpoint_guess_config(str(checkpoint_path()), output_vae=True, output_clip=True)[:3]
    return model, clip, vae


@pytest.fixture(scope="session")
def conds(sd15):
    """(positive, negative) conditioning from the random checkpoint's CLIP."""
    import nodes

    clip = sd15[1]
    return nodes.CLIPTextEncode().encode(clip, "a cat walking")[0], nodes.CLIPTextEncode().encode(clip, "blurry")[0]


@pytest.fixture(scope="session")
def v3():
    """The random full-size v3 motion module, loaded through the pack's loader."""
    from animdiff.motion_module import load_motion_module
    from weights import motion_module_path

    return load_motion_module(motion_module_path("mm_v3_random.safetensors"))
