"""Build a :class:`SparseCtrl` control from a SparseCtrl file (official or diffusers layout)."""

from __future__ import annotations

from pathlib import Path

import comfy.model_management
import comfy.ops
import comfy.utils
import torch

from ..weight_files import check_floating, check_layout, read_state_dict
from .control import SparseCtrl, parse_frame_indices
from .layout import recognise
from .model import SparseControlNet


def build_sparse_controlnet(state_dict: dict[str, torch.Tensor], source: str, dtype: torch.dtype, operations=comfy.ops.manual_cast,
                            device=None) -> SparseControlNet:
    """Recognise ``state_dict`` and load it exactly (every tensor, no extra one; ``pos_encoder.pe`` is computed).
    Every tensor of a SparseCtrl file is a weight or a positional encoding: floating point, checked under the file's
    own names before they are converted to the model's."""
    check_floating(state_dict, source)
    state_dict, config = recognise(state_dict, source)
    model = SparseControlNet(config, operations, device=device, dtype=dtype)
    check_layout(state_dict, model.state_dict(), source, f"SparseCtrl {config.kind}")
    model.load_state_dict(state_dict, strict=False)
    return model.eval().requires_grad_(False)


def load_sparsectrl(path: str | Path, frame_indices: str = "") -> SparseCtrl:
    """Read a SparseCtrl file into a ComfyUI ``CONTROL_NET``, placed and cast as ComfyUI places ControlNets."""
    path = Path(path)
    indices = parse_frame_indices(frame_indices)
    state_dict = read_state_dict(path, wrappers=("state_dict", "controlnet"))
    unet_dtype = comfy.model_management.unet_dtype(model_params=-1, weight_dtype=comfy.utils.weight_dtype(state_dict))
    load_device = comfy.model_management.get_torch_device()
    manual_cast_dtype = comfy.model_management.unet_manual_cast(unet_dtype, load_device)
    model = build_sparse_controlnet(state_dict, path.name, unet_dtype, comfy.ops.pick_operations(unet_dtype, manual_cast_dtype),
                                    device=comfy.model_management.unet_offload_device())
    return SparseCtrl(model, indices, path.name, load_device=load_device, manual_cast_dtype=manual_cast_dtype)
