"""What a motion-module checkpoint is: its version, base model and shape, read from its weights."""

from __future__ import annotations

from dataclasses import dataclass

# version -> (base family, default positional-encoding length when the file has none)
VERSIONS = {
    "v1": ("SD1.5", 24),
    "v2": ("SD1.5", 32),
    "v3": ("SD1.5", 32),
    "animatelcm": ("SD1.5", 64),
    "pia": ("SD1.5", 32),  # v3's motion layout plus the 9-channel input conv (open-mmlab/PIA)
    "sdxl": ("SDXL", 32),
    "hotshotxl": ("SDXL", 24),
}

PIA_INPUT_CHANNELS = 9  # PIA's conv_in: the noisy latent (4), the affinity (1), the image's latent (4)

# Channels per resolution level of the image model each base family's modules fit.
BASE_CHANNELS = {"SD1.5": (320, 640, 1280, 1280), "SDXL": (320, 640, 1280)}


@dataclass(frozen=True)
class MotionModuleConfig:
    """Everything needed to build a :class:`~motion_module.network.MotionNetwork`.

    ``channels`` lists the down levels' widths (the up levels mirror them); ``down_modules``
    and ``up_modules`` are the motion modules per level (2 and 3 in every official file).
    """

    version: str
    channels: tuple[int, ...]
    has_mid_block: bool
    max_frames: int
    down_modules: int = 2
    up_modules: int = 3
    transformer_layers: int = 1
    attention_blocks: int = 2
    heads: int = 8
    ff_mult: int = 4  # feed-forward width over channels
    conv_in_channels: int | None = None  # PIA: the UNet input conv it carries (9 = latent 4 + affinity 1 + image latent 4)
    image_encoder: bool = False  # AnimateLCM-I2V: the reference-image encoder (img_encoder.*) it carries

    @property
    def base(self) -> str:
        return VERSIONS[self.version][0]

    @property
    def motion_norm_across_frames(self) -> bool:
        """AnimateDiff-SDXL's own GroupNorm shares statistics across frames (SD1.5: per frame)."""
        return self.version == "sdxl"

    @property
    def image_norm_across_frames(self) -> bool:
        """v1, HotshotXL and PIA were trained with the image model's ResNet GroupNorms over all frames (PIA's
        ``ResnetBlock3D`` applies ``nn.GroupNorm`` to ``b c f h w``, as v1's does)."""
        return self.version in ("v1", "hotshotxl", "pia")


def official_config(version: str) -> MotionModuleConfig:
    """The full-size config of the official files of ``version`` (v2 and AnimateLCM have a mid block; PIA has the
    9-channel input conv)."""
    base, max_frames = VERSIONS[version]
    return MotionModuleConfig(version=version, channels=BASE_CHANNELS[base], has_mid_block=version in ("v2", "animatelcm"),
                              max_frames=max_frames, conv_in_channels=PIA_INPUT_CHANNELS if version == "pia" else None)
