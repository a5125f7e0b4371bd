"""Import this pack as the package ``animdiff`` beside a real ComfyUI, as ComfyUI itself would, and the
pack's stdlib-only HTTP client as the package ``client`` (without ComfyUI).

The pack root must never be on ``sys.path`` directly: its ``nodes/`` package would shadow
ComfyUI's ``nodes.py``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parent.parent
COMFYUI_DIR = Path(os.environ.get("COMFYUI_PATH") or PACK_DIR / ".cache" / "ComfyUI").resolve()
# The runtime venv (what a user's ComfyUI holds), where ComfyUI servers run; the tests themselves run in venv-test.
RUNTIME_PYTHON = os.environ.get("ANIMDIFF_RUNTIME_PYTHON") or sys.executable


def load_package(name: str, folder: Path):
    """``folder`` imported as the package ``name`` (once), without putting its parent on ``sys.path``."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, folder / "__init__.py", submodule_search_locations=[str(folder)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def import_client():
    """The pack's client for ComfyUI's HTTP API (``client/``), importable as ``client`` from then on."""
    return load_package("client", PACK_DIR / "client")


def import_pack():
    """ComfyUI on ``sys.path`` (CPU mode without CUDA, like ``--cpu``), then the pack as ``animdiff``."""
    if str(COMFYUI_DIR) not in sys.path:
        sys.path.insert(0, str(COMFYUI_DIR))
    import comfy.cli_args
    import torch

    comfy.cli_args.args.cpu = not torch.cuda.is_available()
    return load_package("animdiff", PACK_DIR)
