"""State dicts built from the official files' key/shape lists (``tests/data/manifests``)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

MANIFEST_DIR = Path(__file__).parent / "data" / "manifests"
MOTION_MODULES = ["mm_sd_v14", "mm_sd_v15_v2", "v3_sd15_mm", "mm_sdxl_v10_beta", "pia"]


def manifest(name: str) -> dict:
    return json.loads((MANIFEST_DIR / f"{name}.json").read_text())


def meta_state_dict(name: str) -> dict[str, torch.Tensor]:
    """Full-size tensors on the meta device: shapes only, no memory."""
    return {k: torch.empty(shape, device="meta") for k, shape in manifest(name)["keys"].items()}
