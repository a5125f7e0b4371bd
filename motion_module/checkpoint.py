"""Read a weights file into a flat ``{name: tensor}`` dict, safely.

``.ckpt``/``.pt``/``.pth``/``.bin`` go through ``torch.load(weights_only=True)``: a pickle
that would run code (create files, import modules) is refused before anything runs.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from ..errors import FileError

SAFETENSORS = {".safetensors", ".sft"}
PICKLE = {".ckpt", ".pt", ".pth", ".bin"}
EXTENSIONS = SAFETENSORS | PICKLE


def read_state_dict(path: str | Path, wrappers: tuple[str, ...] = ("state_dict",)) -> dict[str, torch.Tensor]:
    """Tensors of a weights file, unwrapped from ``wrappers`` entries and ``module.`` prefixes.

    Non-tensor entries (the ``animatediff_config`` the original code drops) are skipped.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        raise FileError(path.name, f"unsupported file type {suffix!r} (expected one of {', '.join(sorted(EXTENSIONS))})")
    if not path.is_file():
        raise FileError(str(path), "file not found")
    try:
        if suffix in SAFETENSORS:
            raw = safetensors.torch.load_file(path, device="cpu")
        else:
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise FileError(path.name, f"refused to unpickle: the file holds more than weights and could run code ({first_line(err)})") from None
    except Exception as err:  # noqa: BLE001  damaged bytes make the readers fail in arbitrary ways
        raise FileError(path.name, f"cannot be read: truncated or corrupt ({first_line(err)})") from None
    while isinstance(raw, dict) and (inner := next((raw[w] for w in wrappers if isinstance(raw.get(w), dict)), None)) is not None:
        raw = inner
    if not isinstance(raw, dict):
        raise FileError(path.name, f"holds a {type(raw).__name__}, not a dict of tensors")
    tensors = {k.removeprefix("module."): v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise FileError(path.name, "holds no tensors")
    return tensors


def first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__
