"""PIA's image input: the UNet's input conv widened to PIA's 9 channels, for exactly one UNet call.

PIA (open-mmlab/PIA, ``UNet3DConditionModel.forward``) feeds the UNet ``cat([latent, affinity, image_latent])``
(4 + 1 + 4 channels) through a ``conv_in`` of 9 input channels, whose first four take the noisy latent. As in diffusers
(``UNetMotionModel.from_unet2d``: the image model's ``conv_in.weight`` and bias, PIA's ``weight[:, 4:]``) and
AnimateDiff-Evolved, the first four channels and the bias stay the image model's own, so that ::

    conv_in9(cat([x, c])) = conv_in(x) + conv(c, W_pia[:, 4:])     (a convolution is linear in its input channels)

where ``conv_in`` is the UNet's own 4-channel conv and ``c`` the call's condition ``(b f) 5 h w``. The second term is
added by a forward hook on the UNet's conv for the call (the UNet's module tree is never changed, as for the GroupNorm
hooks of :mod:`.injection`); PIA's weights stay in the motion network's patcher.
"""

from __future__ import annotations

import contextlib

import comfy.ops
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BaseModelError
from .network import MotionNetwork

LATENT_CHANNELS = 4  # the noisy latent's channels, the UNet's own input


def unet_conv_in(unet) -> nn.Module:
    """The SD UNet's input conv (``input_blocks[0][0]``)."""
    return unet.input_blocks[0][0]


def check_image_input(unet, network: MotionNetwork, source: str) -> None:
    """Refuse PIA weights (``source``: the motion module's name) that cannot widen ``unet``'s input conv."""
    if network.conv_in is None:
        raise BaseModelError(f"{source}: a {network.config.version} motion module has no PIA image input (conv_in); "
                             "load PIA's motion module (pia.ckpt) for image-to-video with PIA")
    conv = unet_conv_in(unet)
    weight = getattr(conv, "weight", None)
    expected = [network.conv_in.weight.shape[0], LATENT_CHANNELS, 3, 3]
    if weight is None or list(weight.shape) != expected:
        shape = list(weight.shape) if weight is not None else type(conv).__name__
        raise BaseModelError(f"{source}: PIA's 9-channel input needs a UNet whose input conv takes the 4-channel latent "
                             f"({expected}); this model's is {shape} (an inpainting or other model)")


class ImageInputHook:
    """Forward hook on the UNet's input conv: adds ``conv(condition, W_pia[:, 4:])`` to its output."""

    def __init__(self, network: MotionNetwork, condition: torch.Tensor):
        self.network = network
        self.condition = condition  # (b f) 5 h w

    def __call__(self, _module, args, out: torch.Tensor) -> torch.Tensor:  # out: (b f) 320 h w
        weight, _bias = comfy.ops.cast_bias_weight(self.network.conv_in, args[0])
        condition = self.condition.to(device=out.device, dtype=weight.dtype)
        return out + F.conv2d(condition, weight[:, LATENT_CHANNELS:], padding=1).to(out.dtype)


@contextlib.contextmanager
def image_input_injected(unet, network: MotionNetwork, condition: torch.Tensor):
    """Within the block, ``unet``'s input conv also takes PIA's ``condition`` ``(b f) 5 h w`` (affinity, image latent)."""
    handle = unet_conv_in(unet).register_forward_hook(ImageInputHook(network, condition))
    try:
        yield
    finally:
        handle.remove()
