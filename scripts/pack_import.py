"""Import this pack as the package ``animdiff`` beside a real ComfyUI, as ComfyUI itself would.

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


def import_pack():
    """ComfyUI on ``sys.path`` (CPU mode without CUDA, like ``--cpu``), then the pack as ``animdiff``."""
    if str(COMFYUI_DIR) not in sys.path:
        sys.path.insert(0, str(COMFYUI_DIR))
    import comfy.cli_args
    import torch

    comfy.cli_args.args.cpu = not torch.cuda.is_available()
    if "animdiff" not in sys.modules:
        spec = importlib.util.spec_from_file_location("animdiff", PACK_DIR / "__init__.py",
                                                      submodule_search_locations=[str(PACK_DIR)])
        module = importlib.util.module_from_spec(spec)
        sys.modules["animdiff"] = module
        spec.loader.exec_module(module)
    return sys.modules["animdiff"]
