"""Training data in memory: clips as latents, each with its conditioning.

The trainer takes a :class:`TrainingClips`: per clip a ``(frames, C, h, w)`` latent tensor in
ComfyUI's LATENT convention (what ``VAE.encode`` returns, before the latent format's scaling, which
the trainer applies like the sampler does) and the CONDITIONING of its caption. Build one from:

- latents you already have (:meth:`TrainingClips.from_latents`),
- pixel clips ``(frames, 3, h, w)`` in [0, 1] and captions or conditioning (:func:`encode_clips`),
  encoded once with the VAE and CLIP before training starts, so the training loop never loads them,
- an IMAGE batch cut into clips (:func:`clips_from_images`), e.g. a training node's frames, or stills each
  filmed by a camera move (:func:`training_clips`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import TrainingError, finite
from .augment import camera_motion

NO_CAMERA = "none (images are video frames)"


def is_conditioning(value) -> bool:
    """Whether ``value`` is one ComfyUI CONDITIONING (a list of ``[tensor, dict]`` pairs)."""
    return (isinstance(value, (list, tuple)) and len(value) > 0 and all(
        isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], torch.Tensor) and isinstance(item[1], dict)
        for item in value))


def normal_copy(value):
    """``value`` with every tensor inside replaced by a normal (non-inference) copy, for autograd."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: normal_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(normal_copy(v) for v in value)
    return value


@dataclass
class TrainingClips:
    latents: list[torch.Tensor]  # per clip (frames, C, h, w), unscaled ComfyUI latents
    conditionings: list[list]  # distinct CONDITIONINGs
    cond_index: list[int]  # per clip, into ``conditionings``
    captions: list[str] | None = None  # per clip, for the record

    def __post_init__(self):
        if not self.latents:
            raise TrainingError("training: no clips")
        if len(self.cond_index) != len(self.latents):
            raise TrainingError(f"training: {len(self.latents)} clips but {len(self.cond_index)} conditioning indices")
        channels = {tuple(x.shape[1:2]) for x in self.latents}
        if any(x.ndim != 4 for x in self.latents) or len(channels) != 1:
            raise TrainingError("training: clip latents must be (frames, C, h, w) with the same C, got "
                             f"{sorted({tuple(x.shape) for x in self.latents})}")
        if any(not 0 <= i < len(self.conditionings) for i in self.cond_index):
            raise TrainingError("training: a clip's conditioning index is out of range")
        for cond in self.conditionings:
            if not is_conditioning(cond):
                raise TrainingError("training: a conditioning is not a CONDITIONING (list of [tensor, dict])")

    def __len__(self) -> int:
        return len(self.latents)

    @property
    def shortest(self) -> int:
        return min(x.shape[0] for x in self.latents)

    @classmethod
    def from_latents(cls, latents: Sequence[torch.Tensor] | torch.Tensor, conditioning) -> TrainingClips:
        """``latents``: clips ``(frames, C, h, w)`` (a 5-D tensor is a batch of clips); ``conditioning``: one
        CONDITIONING for all clips or one per clip."""
        latents = list(latents.unbind(0)) if isinstance(latents, torch.Tensor) and latents.ndim == 5 else list(latents)
        conditionings, index = distinct_conditionings(conditioning, len(latents))
        return cls(latents, conditionings, index)

    def fingerprint(self) -> str:
        """A hash of the latents, conditioning tensors and their pairing: a training state resumes only on the same data."""
        digest = hashlib.sha256(repr(self.cond_index).encode())
        tensors = [*self.latents, *(t for cond in self.conditionings for t, _ in cond)]
        for tensor in tensors:
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return digest.hexdigest()

    def detached(self) -> TrainingClips:
        """Normal-tensor copies on the CPU (a node's inputs are inference tensors, which autograd refuses)."""
        return TrainingClips([x.detach().to("cpu", torch.float32).clone() for x in self.latents],
                             [normal_copy(c) for c in self.conditionings], list(self.cond_index), self.captions)


def distinct_conditionings(conditioning, count: int) -> tuple[list[list], list[int]]:
    """One CONDITIONING for all ``count`` clips, or a list of one per clip -> (distinct ones, index per clip)."""
    if is_conditioning(conditioning):
        return [conditioning], [0] * count
    if isinstance(conditioning, (list, tuple)) and len(conditioning) == count and all(is_conditioning(c) for c in conditioning):
        distinct, index = [], []
        for cond in conditioning:
            found = next((i for i, d in enumerate(distinct) if d is cond), None)
            if found is None:
                distinct.append(cond)
                found = len(distinct) - 1
            index.append(found)
        return distinct, index
    raise TrainingError(f"training: conditioning must be one CONDITIONING or one per clip ({count})")


def encode_captions(clip, captions: Sequence[str]) -> tuple[list[list], list[int]]:
    """Each distinct caption encoded once, as ``CLIPTextEncode`` does -> (CONDITIONINGs, index per caption)."""
    distinct = list(dict.fromkeys(captions))
    with torch.no_grad():
        encoded = [clip.encode_from_tokens_scheduled(clip.tokenize(text)) for text in distinct]
    return encoded, [distinct.index(text) for text in captions]


def check_pixels(clip: torch.Tensor, index: int) -> None:
    if clip.ndim != 4 or clip.shape[1] != 3:
        raise TrainingError(f"training: clip {index} has shape {list(clip.shape)}; pixel clips are (frames, 3, h, w)")
    if clip.shape[-1] % 8 or clip.shape[-2] % 8:
        raise TrainingError(f"training: clip {index} is {clip.shape[-1]}x{clip.shape[-2]} pixels; use multiples of 8 (the VAE downscales by 8)")


def encode_clips(clips: Sequence[torch.Tensor], vae, *, captions: Sequence[str] | str | None = None, clip=None,
                 conditioning=None) -> TrainingClips:
    """Pixel clips ``(frames, 3, h, w)`` in [0, 1] -> latents with the VAE; captions (one, or one per clip) with
    ``clip``, or ``conditioning`` (one CONDITIONING, or one per clip) as given."""
    clips = list(clips)
    for i, frames in enumerate(clips):
        check_pixels(frames, i)
    if isinstance(captions, str):
        captions = [captions] * len(clips)
    if conditioning is not None:
        conditionings, index = distinct_conditionings(conditioning, len(clips))
    elif captions is not None and clip is not None:
        if len(captions) != len(clips):
            raise TrainingError(f"training: {len(clips)} clips but {len(captions)} captions")
        conditionings, index = encode_captions(clip, captions)
    else:
        raise TrainingError("training: give conditioning, or captions and a CLIP to encode them")
    with torch.no_grad():
        latents = [vae.encode(frames.movedim(1, -1)).to("cpu", torch.float32) for frames in clips]
    return TrainingClips(latents, conditionings, index, list(captions) if captions is not None else None)


def clips_from_images(images: torch.Tensor, frames: int, stride: int | None = None) -> list[torch.Tensor]:
    """An IMAGE batch ``(N, H, W, 3)`` cut into clips of ``frames`` consecutive images ``(frames, 3, H, W)``,
    starting every ``stride`` images (default ``frames``: no overlap); a remainder shorter than a clip is dropped."""
    if images.ndim != 4 or images.shape[-1] < 3:
        raise TrainingError(f"training: images must be an IMAGE batch (N, H, W, 3), got {list(images.shape)}")
    if images.shape[0] < frames:
        raise TrainingError(f"training: {images.shape[0]} images are fewer than one clip of {frames} frames")
    stride = stride or frames
    pixels = images[..., :3].movedim(-1, 1)
    return [pixels[start:start + frames] for start in range(0, images.shape[0] - frames + 1, stride)]


def training_clips(images: torch.Tensor, frames: int, camera: str, speed: float) -> list[torch.Tensor]:
    """IMAGE ``(N, H, W, 3)`` -> clips ``(frames, 3, H, W)``: consecutive frames (``camera`` :data:`NO_CAMERA`), or one
    camera move per still. ``speed`` is the node's camera_speed (checked even when unused: a NaN is a mistake)."""
    finite(speed, "camera_speed")
    if camera == NO_CAMERA:
        return clips_from_images(images, frames)
    return [camera_motion(still, camera, speed, length=frames) for still in images[..., :3].movedim(-1, 1)]
