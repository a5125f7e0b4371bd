"""AnimateDiff motion modules: the network (temporal transformer), its file formats (layouts, MotionLoRA) and
patching it into a ComfyUI MODEL."""

from .config import VERSIONS, MotionModuleConfig
from .loader import LoadedMotionModule, build_motion_model, load_motion_module
from .model import MotionModel
from .transformer import MotionModule, TemporalTransformer

__all__ = [
    "VERSIONS", "LoadedMotionModule", "MotionModel", "MotionModule",
    "MotionModuleConfig", "TemporalTransformer", "build_motion_model", "load_motion_module",
]
