"""MotionLoRA: low-rank updates ``W + strength * scale * up @ down`` on a motion module's layers.

Recognised key conventions (all reduced to the original module names):

- original AnimateDiff ``v2_lora_*.ckpt`` and MotionDirector's motion-LoRA format:
  ``<module>.processor.<proj>_lora.{down,up}.weight`` -> ``<module>.<proj>.weight``
  (``to_out`` -> ``to_out.0``); this pack's own training output uses it too;
- cloneofsimo / MotionDirector raw: ``<layer>.lora_{down,up}.weight``;
- diffusers / PEFT: ``<layer>.lora_{A,B}.weight`` or ``<layer>.lora.{down,up}.weight``, with
  diffusers module names (``attn1``, ``norm1`` …, no ``temporal_transformer``) and optional
  ``unet.`` / ``base_model.model.`` prefixes.

``<layer>.alpha`` entries (kohya/PEFT) scale by ``alpha / rank``; without them the scale is 1,
as in the original loader. The update is computed once per load and applied by ComfyUI's
weight patching on a clone of the motion module's ModelPatcher, so the loaded weights never change.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import torch

from ..errors import FileError, finite
from ..weight_files import check_floating, dtype_kind
from .layout import to_original_keys
from .loader import LoadedMotionModule

PATTERNS = [
    re.compile(r"^(?P<layer>.+)\.processor\.(?P<proj>[A-Za-z0-9_]+?)_lora\.(?P<dir>down|up)\.weight$"),
    re.compile(r"^(?P<layer>.+)\.lora_(?P<dir>down|up|A|B)\.weight$"),
    re.compile(r"^(?P<layer>.+)\.lora\.(?P<dir>down|up)\.weight$"),
]
PREFIXES = ("base_model.model.", "unet.")
DIRECTION = {"down": "down", "A": "down", "up": "up", "B": "up"}


@dataclass(frozen=True)
class LoRALayer:
    up: torch.Tensor  # (out, rank)
    down: torch.Tensor  # (rank, in)
    scale: float

    def delta(self) -> torch.Tensor:
        """``scale * up @ down`` in float32."""
        return self.scale * (self.up.float() @ self.down.float())


def target_key(layer: str) -> str:
    """The motion-module weight a LoRA layer name points at, in the original naming."""
    for prefix in PREFIXES:
        layer = layer.removeprefix(prefix)
    if layer.endswith(".to_out"):
        layer += ".0"
    (key,), _ = to_original_keys({layer + ".weight": None})
    return key


def parse_motion_lora(state_dict: dict[str, torch.Tensor], source: str) -> dict[str, LoRALayer]:
    """``{motion-module weight key: LoRALayer}`` of a MotionLoRA file in any known convention."""
    parts: dict[str, dict[str, torch.Tensor]] = {}
    weights = {}  # the up/down tensors by file key, checked to be floating point
    for key, value in state_dict.items():
        for pattern in PATTERNS:
            match = pattern.match(key)
            if match:
                layer = match["layer"] + (f".{match['proj']}" if "proj" in match.groupdict() else "")
                parts.setdefault(layer, {})[DIRECTION[match["dir"]]] = weights[key] = value
                break
    if not parts:
        raise FileError(source, "not a LoRA: no lora up/down weights found")
    check_floating(weights, source)
    layers = {}
    for layer, pair in parts.items():
        if set(pair) != {"up", "down"}:
            raise FileError(source, f"LoRA layer {layer} has no {({'up', 'down'} - set(pair)).pop()} weight")
        up, down = pair["up"], pair["down"]
        if up.shape[1] != down.shape[0]:
            raise FileError(source, f"LoRA layer {layer}: up {list(up.shape)} and down {list(down.shape)} ranks differ")
        alpha = state_dict.get(f"{layer}.alpha")
        if alpha is not None and dtype_kind(alpha.dtype) not in ("floating point", "integer"):
            raise FileError(source, f"tensor {layer}.alpha is {str(alpha.dtype).removeprefix('torch.')}: a LoRA alpha is a number "
                                    "(floating point or integer)")
        scale = float(alpha) / down.shape[0] if alpha is not None else 1.0
        layers[target_key(layer)] = LoRALayer(up, down, scale)
    return layers


def apply_motion_lora(motion_module: LoadedMotionModule, lora: dict[str, LoRALayer], lora_name: str,
                      strength: float) -> LoadedMotionModule:
    """A MOTION_MODULE whose patcher also carries ``strength`` x this LoRA (stacking with earlier ones)."""
    finite(strength, "strength")
    weights = motion_module.network.state_dict()
    deltas = {key: layer.delta() for key, layer in lora.items() if key in weights}  # once per load
    if not deltas:
        raise FileError(lora_name, f"none of its {len(lora)} LoRA layers match the motion module {motion_module.describe()}")
    for key, delta in deltas.items():
        if delta.shape != weights[key].shape:
            raise FileError(lora_name, f"LoRA layer for {key} has shape {list(delta.shape)}, "
                                                  f"the motion module's weight {list(weights[key].shape)}")
    if len(deltas) < len(lora):
        missing = sorted(set(lora) - set(deltas))
        logging.warning("AnimDiff: MotionLoRA %s: %d of %d layers match %s; %d do not (e.g. %s)",
                        lora_name, len(deltas), len(lora), motion_module.describe(), len(missing), missing[0])
    patcher = motion_module.patcher.clone()
    patcher.add_patches({key: (delta,) for key, delta in deltas.items()}, strength)
    return LoadedMotionModule(motion_module.name, patcher, motion_module.loras + ((lora_name, strength),))
