"""Test set-up: the real ComfyUI from the bootstrap, and this pack imported as package ``animdiff``.

The repository root must never be on ``sys.path`` itself: its ``nodes/`` package would
shadow ComfyUI's ``nodes.py``. The README's test command runs with ``PYTHONSAFEPATH=1``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parent.parent
COMFYUI_DIR = Path(os.environ.get("COMFYUI_PATH") or PACK_DIR / ".cache" / "ComfyUI").resolve()

if str(COMFYUI_DIR) not in sys.path:
    sys.path.insert(0, str(COMFYUI_DIR))
import comfy.cli_args  # noqa: E402  (needs the path above)
import torch  # noqa: E402

# ComfyUI's own --cpu flag, as the test servers get it, for in-process use of ComfyUI modules.
comfy.cli_args.args.cpu = not torch.cuda.is_available()

if "animdiff" not in sys.modules:
    spec = importlib.util.spec_from_file_location("animdiff", PACK_DIR / "__init__.py", submodule_search_locations=[str(PACK_DIR)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["animdiff"] = module
    spec.loader.exec_module(module)
