"""Read a weights file into a flat ``{name: tensor}`` dict, safely.

``.ckpt``/``.pt``/``.pth``/``.bin`` go through ``torch.load(weights_only=True)``: a pickle
that would run code (create files, import modules) is refused before anything runs. Bytes that
are no weights file at all (no safetensors header, no pickle or zip signature) are named as such,
and a file holding NaN or infinite values is refused, naming the first such tensor: it would
sample black frames.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from ..errors import FileError, NonFiniteError

SAFETENSORS = {".safetensors", ".sft"}
PICKLE = {".ckpt", ".pt", ".pth", ".bin"}
EXTENSIONS = SAFETENSORS | PICKLE
TEMPORARY = ".tmp"  # a file the pack writes is NAME.tmp until it is complete


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
    if not has_signature(path, suffix):
        kind = "a safetensors header" if suffix in SAFETENSORS else "a PyTorch (zip or pickle) signature"
        raise FileError(path.name, f"not a weights file: it has no {kind}" + (" (it is empty)" if path.stat().st_size == 0 else ""))
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
    check_finite(tensors, path.name)
    return tensors


def has_signature(path: Path, suffix: str) -> bool:
    """Whether the file starts as a file of its type: safetensors' 8-byte header length (within the file) and ``{``;
    a zip archive (``torch.save``) or a binary pickle (protocol 2-5) for the PyTorch types."""
    with open(path, "rb") as file:
        head = file.read(9)
    if suffix in SAFETENSORS:
        return len(head) == 9 and int.from_bytes(head[:8], "little") < path.stat().st_size and head[8:9] == b"{"
    return head[:4] == b"PK\x03\x04" or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def check_finite(tensors: dict[str, torch.Tensor], source: str) -> None:
    """Refuse NaN or infinite values, naming the first tensor that holds one.

    One reduction per tensor (``aminmax``: NaN propagates into both, an infinity shows in one), no temporaries:
    about 0.2 s for a full-size fp16 motion module (454M values) on one CPU thread.
    """
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and tensor.numel():
            low, high = torch.aminmax(tensor)
            if not bool(torch.isfinite(low) & torch.isfinite(high)):
                bad = tensor[~torch.isfinite(tensor)]
                kind = "NaN" if bool(bad.isnan().any()) else "infinite"
                raise NonFiniteError(f"{source}: tensor {key} holds {kind} values ({bad.numel()} of {tensor.numel()}); "
                                     "the file is damaged: download or train it again")


def content_hash(tensors: dict[str, torch.Tensor]) -> str:
    """A hash of the names, dtypes, shapes and bytes of ``tensors``: equal only for the same weights.

    A CRC-32 per tensor (zlib releases the GIL, so they run on all cores: about 0.4 s for a full-size module on one),
    combined in name order with SHA-256.
    """
    def crc(key: str) -> str:
        tensor = tensors[key].detach().to("cpu").contiguous()
        value = zlib.crc32(tensor.reshape(-1).view(torch.uint8).numpy()) if tensor.numel() else 0
        return f"{key}|{tensor.dtype}|{list(tensor.shape)}|{value};"

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        parts = pool.map(crc, sorted(tensors))
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__


def write_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """``write(tmp)`` then rename to ``path``: a reader never sees half a file, an interrupted write leaves the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + TEMPORARY)
    write(tmp)
    os.replace(tmp, path)
    return path
