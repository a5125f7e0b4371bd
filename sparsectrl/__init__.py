"""SparseCtrl (AnimateDiff v3's RGB and scribble keyframe encoders) as a ComfyUI ControlNet."""

from .control import SparseCtrl, keyframe_positions, parse_frame_indices
from .layout import recognise
from .loader import build_sparse_controlnet, load_sparsectrl
from .model import SparseControlNet, SparseCtrlConfig

__all__ = ["SparseControlNet", "SparseCtrl", "SparseCtrlConfig", "build_sparse_controlnet", "keyframe_positions",
           "load_sparsectrl", "parse_frame_indices", "recognise"]
