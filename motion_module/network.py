"""The motion network: every temporal module of one motion-module file, named exactly as in the official files."""

from __future__ import annotations

from collections.abc import Callable

import comfy.ops
from torch import nn

from .config import MotionModuleConfig
from .image_encoder import ImageEncoder
from .transformer import TemporalModule


class MotionBlock(nn.Module):
    """The temporal modules of one UNet level (``down_blocks.N`` / ``mid_block`` / ``up_blocks.N``)."""

    def __init__(self, channels, count, config, operations, device=None, dtype=None):
        super().__init__()
        self.motion_modules = nn.ModuleList(
            TemporalModule(channels, config, operations, device, dtype) for _ in range(count)
        )


class MotionNetwork(nn.Module):
    """The temporal layers AnimateDiff adds to an image UNet; ``state_dict()`` keys are the official ones.

    Dtypes: ``dtype`` is the weights' storage dtype (the loader's: ComfyUI's UNet dtype, so fp16, bf16
    or fp8 where ComfyUI stores UNets so). Every layer computes in the dtype of its input, the UNet's
    activations (fp16/bf16, or the manual-cast dtype of fp8 weights): ``operations`` defaults to ComfyUI's
    casting layers, which cast the stored weights to the activations' dtype and device on the fly (ComfyUI's
    low-VRAM offloading relies on it too), and each temporal module hands its residual back in that dtype. The
    positional encodings stay float32 whatever ``dtype`` is (:class:`~.attention.PositionalEncoding`).
    """

    def __init__(self, config: MotionModuleConfig, device=None, dtype=None, operations=comfy.ops.manual_cast):
        super().__init__()
        self.config = config
        block = lambda channels, count: MotionBlock(channels, count, config, operations, device, dtype)  # noqa: E731
        self.down_blocks = nn.ModuleList(block(c, config.down_modules) for c in config.channels)
        self.mid_block = block(config.channels[-1], 1) if config.has_mid_block else None
        self.up_blocks = nn.ModuleList(block(c, config.up_modules) for c in reversed(config.channels))
        # PIA: the UNet's input conv with its extra input channels; only ``weight[:, 4:]`` is used (the first four and the
        # bias are the image model's own, as in diffusers and AnimateDiff-Evolved), see :mod:`.image_input`
        self.conv_in = operations.Conv2d(config.conv_in_channels, config.channels[0], 3, padding=1, device=device, dtype=dtype) \
            if config.conv_in_channels else None
        # AnimateLCM-I2V: the reference image's features per down level (:mod:`.image_encoder`)
        self.img_encoder = ImageEncoder(config.channels, device, dtype, operations) if config.image_encoder else None
        self.content_hash: Callable[[], str] | None = None  # of the weights as read from a file (set by the loader: a FileHash)

    def module_at(self, key: str) -> TemporalModule:
        """The module for a key such as ``"up_blocks.1.motion_modules.2"``."""
        return self.get_submodule(key)

    def module_keys(self) -> list[str]:
        """Keys of every motion module, down levels first, in the UNet's execution order."""
        return [name for name, m in self.named_modules() if isinstance(m, TemporalModule)]
