"""Prompt travel: a CONDITIONING with one text embedding per frame, from a keyframed prompt schedule.

Each distinct prompt is encoded once through ComfyUI's own CLIP path (``clip.tokenize`` +
``clip.encode_from_tokens_scheduled``, exactly as ``CLIPTextEncode``), so prompt weights,
textual-inversion embeddings and SDXL's two encoders behave as in the stock node. The per-frame
embeddings are then blended as :mod:`.frame_schedule` describes (``linear`` or ``hold``); SDXL's
``pooled_output`` is blended the same way.

The result is one CONDITIONING entry whose tensors have one row per frame: ComfyUI keeps a cond
whose batch equals the latent batch as it is (``repeat_to_batch_size``), and the pack's context
windows cut it to each window's frames.
"""

from __future__ import annotations

import math

import torch
from einops import repeat

from ..errors import OptionsError
from .frame_schedule import blend, parse_keyframes, resolve

POOLED = "pooled_output"


def full_prompt(prompt: str, pre_text: str = "", app_text: str = "") -> str:
    """``pre_text, prompt, app_text`` (empty parts left out)."""
    return ", ".join(part.strip() for part in (pre_text, prompt, app_text) if part.strip())


def encode(clip, text: str) -> tuple[torch.Tensor, dict]:
    """``(cond (1, tokens, channels), extras)`` as ``CLIPTextEncode`` makes them."""
    conditioning = clip.encode_from_tokens_scheduled(clip.tokenize(text))
    if len(conditioning) != 1:
        raise OptionsError(f"the CLIP gives {len(conditioning)} scheduled encodings for {text!r} (CLIP hooks with keyframes); "
                           "prompt schedules need a CLIP without scheduled hooks")
    cond, extras = conditioning[0]
    return cond, extras


def check_finite_encoding(encoded: tuple[torch.Tensor, dict], line: str) -> tuple[torch.Tensor, dict]:
    """``encoded`` as it is, unless its embedding or pooled output holds NaN or infinity (ComfyUI's prompt syntax reads
    weights such as ``(word:nan)`` or ``(word:inf)`` as numbers): an error naming the schedule line."""
    cond, extras = encoded
    pooled = extras.get(POOLED)
    if not (bool(torch.isfinite(cond).all()) and (pooled is None or bool(torch.isfinite(pooled).all()))):
        raise OptionsError(f"schedule line {line!r}: the prompt encodes to NaN or infinite values; give its weights "
                           "(word:1.2) as finite numbers")
    return encoded


def pad_tokens(conds: list[torch.Tensor]) -> torch.Tensor:
    """Stack conds ``(1, tokens_i, channels)`` of different token lengths into ``(prompts, tokens, channels)``.

    Each is repeated along the tokens up to the least common multiple of the lengths: what
    ComfyUI's ``CONDCrossAttn.concat`` does when it batches conds of different lengths. Cross
    attention over ``[A, A]`` equals attention over ``A`` (every key and value appears twice,
    so the softmax weights halve and the sum is unchanged), so a frame that shows one prompt
    is conditioned exactly as by that prompt alone; frames between two keyframes blend the
    embeddings token position by token position.
    """
    tokens = math.lcm(*(c.shape[1] for c in conds))
    return torch.cat([repeat(c, "b t c -> b (r t) c", r=tokens // c.shape[1]) for c in conds])


def lerp_frames(keys: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``(1 - t) * keys[lower] + t * keys[upper]`` per frame. ``keys``: ``(prompts, ...)``; the rest ``(frames,)``.

    Frames with ``t == 0`` take ``keys[lower]`` exactly.
    """
    t = t.to(keys.dtype).view(-1, *([1] * (keys.ndim - 1)))
    mixed = (1 - t) * keys[lower] + t * keys[upper]
    return torch.where(t == 0, keys[lower], mixed)


def prompt_schedule(clip, text: str, frames: int, pre_text: str = "", app_text: str = "",
                    interpolation: str = "linear") -> list:
    """CONDITIONING ``[[cond (frames, tokens, channels), {..., "pooled_output": (frames, dim)}]]`` for ``text``."""
    if frames < 1:
        raise OptionsError(f"frames must be at least 1, got {frames}")
    placed = resolve(parse_keyframes(text), frames)
    lines = {}  # each distinct prompt -> the first schedule line giving it, for messages
    for _, k in placed:
        lines.setdefault(full_prompt(k.value, pre_text, app_text), k.line)
    prompts = list(lines)
    encoded = [check_finite_encoding(encode(clip, p), lines[p]) for p in prompts]
    which = torch.tensor([prompts.index(full_prompt(k.value, pre_text, app_text)) for _, k in placed])
    b = blend([frame for frame, _ in placed], frames, interpolation)
    lower, upper = which[b.lower], which[b.upper]  # (frames,) indices into the distinct prompts
    cond = lerp_frames(pad_tokens([c for c, _ in encoded]), lower, upper, b.t)
    extras = dict(encoded[0][1])
    pooled = [e.get(POOLED) for _, e in encoded]
    if all(p is not None for p in pooled):
        extras[POOLED] = lerp_frames(torch.cat(pooled), lower, upper, b.t)  # (frames, dim)
    return [[cond, extras]]
