"""AnimateDiff motion modules: the network (temporal transformer), its file formats (layouts, MotionLoRA), loading,
and putting it into a UNet for one call (:mod:`.injection`). It imports nothing from ``sampling/``: the animated MODEL
is assembled above it, in ``animate/``.

One name per concept (the original code's where it has one):

- :class:`TemporalModule`: one ``VanillaTemporalModule``, the residual temporal transformer after one image layer.
- :class:`MotionNetwork`: every temporal module of one motion-module file, keyed as in the official files
  (``down_blocks.N.motion_modules.M``); a parameter holding one is called ``network``.
- :class:`LoadedMotionModule`: the ``MOTION_MODULE`` graph value (a file's network in its own ComfyUI
  ModelPatcher, with any MotionLoRAs); a parameter holding one is called ``motion_module``, as the node input.
"""

from .config import VERSIONS, MotionModuleConfig
from .loader import LoadedMotionModule, build_motion_network, load_motion_module
from .network import MotionNetwork
from .transformer import TemporalModule, TemporalTransformer

__all__ = [
    "VERSIONS", "LoadedMotionModule", "MotionNetwork", "TemporalModule",
    "MotionModuleConfig", "TemporalTransformer", "build_motion_network", "load_motion_module",
]
