"""The test suite's ComfyUI servers: this pack, the random test models, no result cache (and other packs by path)."""

from __future__ import annotations

import contextlib

import torch
from comfy_server import ComfyServer
from graphs import TEST_IMAGE
from pack_import import COMFYUI_DIR
from weights import extra_model_paths_yaml, write_all, write_test_image, write_test_video


@contextlib.contextmanager
def comfy_test_server(tmp, custom_nodes=None, folders: tuple[str, ...] = (), cache: bool = False):
    """The :func:`server` fixture's ComfyUI in ``tmp``; ``custom_nodes``: a folder of other packs to load as well;
    ``folders``: more model folders in ``server.scratch`` (``ipadapter``); ``cache``: ComfyUI's result cache on, as
    users run it (off by default: tests that compare runs must not get cached results)."""
    write_all()
    (tmp / "input").mkdir()
    write_test_video(tmp / "input" / "input.mp4")
    write_test_image(tmp / "input" / TEST_IMAGE)
    scratch = tmp / "models"  # files tests write for the server (damaged weights, ...)
    for folder in ("animatediff_models", "animatediff_motion_lora", *folders):
        (scratch / folder).mkdir(parents=True)
    more = "".join(f"    {folder}: {folder}\n" for folder in folders)
    args = ["--extra-model-paths-config", str(extra_model_paths_yaml(tmp / "models.yaml", scratch, custom_nodes, more)),
            "--output-directory", str(tmp / "output"), "--input-directory", str(tmp / "input")]
    if not cache:
        args.append("--cache-none")
    if not torch.cuda.is_available():
        args.append("--cpu")
    with ComfyServer(COMFYUI_DIR, args, tmp / "comfyui.log") as running:
        running.output_dir = tmp / "output"
        running.input_dir = tmp / "input"
        running.scratch = scratch
        yield running
