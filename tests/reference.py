"""diffusers as an independent reference, patched where it departs from the original AnimateDiff, and the
reduced motion networks the numeric checks compare with it."""

from __future__ import annotations

import safetensors.torch
import torch
from animdiff.motion_module import MotionModuleConfig, MotionNetwork
from einops import rearrange
from torch import nn


class PerFrameGroupNorm(nn.Module):
    """The original ``TemporalTransformer3DModel`` normalises ``(b f) c h w``, each frame alone;
    diffusers' ``AnimateDiffTransformer3D`` calls its norm on ``b c f h w`` (all frames).
    Wrapping the reference's norm with this restores the original behaviour."""

    def __init__(self, norm: nn.GroupNorm):
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # b c f h w
        frames = x.shape[2]
        return rearrange(self.norm(rearrange(x, "b c f h w -> (b f) c h w")), "(b f) c h w -> b c f h w", f=frames)


def patch_motion_norms_per_frame(adapter: nn.Module) -> int:
    """Wrap the input GroupNorm of every diffusers motion module; returns how many were wrapped."""
    from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

    count = 0
    for module in adapter.modules():
        if isinstance(module, AnimateDiffTransformer3D):
            module.norm = PerFrameGroupNorm(module.norm)
            count += 1
    return count


# ---------------------------------------------------------------- reduced motion networks and their diffusers twins

SMALL = {
    "v1": dict(channels=(32, 64, 64, 64), has_mid_block=False, max_frames=24),
    "v2": dict(channels=(32, 64, 64, 64), has_mid_block=True, max_frames=32),
    "v3": dict(channels=(32, 64, 64, 64), has_mid_block=False, max_frames=32),
    "sdxl": dict(channels=(32, 64, 64), has_mid_block=False, max_frames=32),
}


def random_weights(network: MotionNetwork, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in network.state_dict().items():
        if key.endswith(".pe"):
            state[key] = value
        elif key.endswith("norm.weight") or ".norms." in key and key.endswith("weight") or "ff_norm.weight" in key:
            state[key] = 1 + 0.1 * torch.randn(value.shape, generator=gen)
        else:
            state[key] = 0.05 * torch.randn(value.shape, generator=gen)
    return state


def small_spec(version: str, channels: tuple[int, ...] | None = None) -> dict:
    """The reduced motion-module layout of ``version`` (``channels``: other widths per level)."""
    return {**SMALL[version], **({"channels": channels} if channels else {})}


def small_model(version: str, seed: int = 0, channels: tuple[int, ...] | None = None) -> tuple[MotionNetwork, dict[str, torch.Tensor]]:
    """A reduced motion network with seeded random weights (norm scales near 1) and its state dict."""
    model = MotionNetwork(MotionModuleConfig(version=version, **small_spec(version, channels)), dtype=torch.float32)
    state = random_weights(model, seed)
    model.load_state_dict(state)
    return model.eval(), state


def diffusers_adapter(version: str, state: dict[str, torch.Tensor], tmp_path, per_frame: bool = True,
                      channels: tuple[int, ...] | None = None):
    """diffusers' MotionAdapter read from an original-layout file by its own single-file loader;
    ``per_frame``: patched to the original's per-frame motion-module GroupNorm (SD1.5 versions)."""
    from diffusers import MotionAdapter

    spec = small_spec(version, channels)
    adapter = MotionAdapter(block_out_channels=spec["channels"], use_motion_mid_block=spec["has_mid_block"],
                            motion_max_seq_length=spec["max_frames"])
    config_dir = tmp_path / "config"
    adapter.save_config(config_dir)
    path = tmp_path / "mm.safetensors"
    safetensors.torch.save_file(state, path)
    loaded = MotionAdapter.from_single_file(str(path), config=str(config_dir), torch_dtype=torch.float32)
    if per_frame and version != "sdxl":  # the original SDXL motion modules normalise across frames, like diffusers
        assert patch_motion_norms_per_frame(loaded) == len(model_keys(spec))
    return loaded.eval()


def model_keys(spec):
    levels = len(spec["channels"])
    return [None] * (levels * 5 + int(spec["has_mid_block"]))


def diffusers_module(adapter, key):
    block, _, index = key.rpartition(".motion_modules.")
    return getattr(adapter, block.split(".")[0])[int(block.split(".")[1])].motion_modules[int(index)] \
        if block != "mid_block" else adapter.mid_block.motion_modules[int(index)]
