"""What a motion-module checkpoint is: its version, base model and shape, read from its weights."""

from __future__ import annotations

from dataclasses import dataclass

# version -> (base family, default positional-encoding length when the file has none)
VERSIONS = {
    "v1": ("SD1.5", 24),
    "v2": ("SD1.5", 32),
    "v3": ("SD1.5", 32),
    "animatelcm": ("SD1.5", 64),
    "sdxl": ("SDXL", 32),
    "hotshotxl": ("SDXL", 24),
}

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

    @property
    def base(self) -> str:
        return VERSIONS[self.version][0]

    @property
    def motion_norm_across_frames(self) -> bool:
        """AnimateDiff-SDXL's own GroupNorm shares statistics across frames (SD1.5: per frame)."""
        return self.version == "sdxl"

    @property
    def image_norm_across_frames(self) -> bool:
        """v1 and HotshotXL were trained with the image model's ResNet GroupNorms over all frames."""
        return self.version in ("v1", "hotshotxl")


def official_config(version: str) -> MotionModuleConfig:
    """The full-size config of the official files of ``version`` (v2 and AnimateLCM have a mid block)."""
    base, max_frames = VERSIONS[version]
    return MotionModuleConfig(version=version, channels=BASE_CHANNELS[base], has_mid_block=version in ("v2", "animatelcm"),
                              max_frames=max_frames)
