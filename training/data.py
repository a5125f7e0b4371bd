"""Training clips from a folder of short videos, image-sequence folders or still images.

::

    root/
      walk.mp4   walk.txt    a video (.mp4 .webm .mov .mkv .avi via PyAV; animated .gif .webp via PIL), its caption
      run/       run.txt     an image sequence: the frame files in run/ (.png .jpg .jpeg .webp), in natural order
      cat.png    cat.txt     a still image: it needs ``camera``, which sets it in motion

Other files and hidden ones are ignored. A clip is ``length`` frames ``frame_stride`` apart (the original
training's ``sample_stride``) from a random start, resized to cover ``size`` and centre-cropped; with
``camera`` it is filmed by :func:`camera_motion` instead, the camera's motion on top of the source's own.
The only randomness is the start, drawn from the ``torch.Generator`` the caller passes, so a run is
reproduced from its seed and resumed from the generator's saved state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
from einops import rearrange
from kornia.geometry.transform import resize
from PIL import Image

from ..errors import OptionsError, TrainingDataError
from .augment import camera_motion, camera_path

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")  # .gif/.webp/.png may be animated


def _natural_key(path: Path) -> list[str | int]:
    """Sort key that puts ``frame2`` before ``frame10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


@dataclass(frozen=True)
class Source:
    """One video, animated or still image, or image-sequence folder of the training folder."""

    path: Path
    kind: str  # "video" (PyAV), "image" (PIL, maybe animated) or "sequence" (a folder of frame files)
    frame_count: int
    size: tuple[int, int]  # (h, w) of its first frame
    caption: str
    files: tuple[Path, ...] = ()  # the frame files of a sequence

    def read(self, indices: list[int]) -> list[np.ndarray]:
        """Frames ``indices`` (increasing) as ``(h, w, 3)`` uint8 RGB arrays."""
        try:
            if self.kind == "sequence":
                return [_read_image(self.files[i]) for i in indices]
            if self.kind == "image":
                frames = []
                with Image.open(self.path) as image:
                    for i in indices:
                        image.seek(i)
                        frames.append(_rgb(image))
                return frames
            return _decode(self.path, indices)
        except (OSError, av.FFmpegError) as error:
            raise TrainingDataError(self.path, f"unreadable ({error})") from error


@dataclass(frozen=True)
class Clip:
    frames: torch.Tensor  # (length, 3, h, w) float in [0, 1]
    caption: str
    source: Path
    start: int  # index of its first frame in the source


class ClipDataset:
    """The clips of a training folder (module docstring): ``len(dataset)`` sources, ``dataset.clip(index, generator)``."""

    def __init__(self, root: str | Path, size: tuple[int, int], length: int = 16, frame_stride: int = 1, caption: str = "",
                 camera: tuple[str, float] | None = None):
        """``size``: ``(h, w)``, multiples of 8; ``caption``: for sources without a ``NAME.txt``;
        ``camera``: ``(motion, speed)`` of :func:`camera_motion`, applied to every clip (stills need it)."""
        if len(size) != 2 or any(side < 8 or side % 8 for side in size):
            raise OptionsError(f"clip size {tuple(size)} must be (h, w), both positive multiples of 8 (the VAE downscales by 8)")
        if length < 1 or frame_stride < 1:
            raise OptionsError(f"length ({length}) and frame_stride ({frame_stride}) must be at least 1")
        self.root, self.size, self.length, self.frame_stride, self.camera = Path(root), tuple(size), length, frame_stride, camera
        self.span = (length - 1) * frame_stride + 1  # source frames one clip covers
        if not self.root.is_dir():
            raise TrainingDataError(self.root, "not a folder")
        entries = [path for path in sorted(self.root.iterdir(), key=_natural_key) if not path.name.startswith(".")]
        self.sources = tuple(_open(path, caption) for path in entries if path.is_dir() or path.suffix.lower() in VIDEO_SUFFIXES + IMAGE_SUFFIXES)
        if not self.sources:
            raise TrainingDataError(self.root, f"no training data: no videos ({' '.join(VIDEO_SUFFIXES)}), images "
                                               f"({' '.join(IMAGE_SUFFIXES)}) or folders of frame images")
        for source in self.sources:
            self._check(source)

    def _check(self, source: Source) -> None:
        if source.frame_count == 1:
            if self.camera is None:
                raise TrainingDataError(source.path, "a still image has no motion to learn: pass camera=(motion, speed) to film it")
        elif source.frame_count < self.span:
            fits = f"frame_stride {(source.frame_count - 1) // (self.length - 1)} or less" if source.frame_count >= self.length else "a shorter length"
            raise TrainingDataError(source.path, f"has {source.frame_count} frames; {self.length} frames at frame_stride "
                                                 f"{self.frame_stride} need {self.span}: use {fits}")
        if self.camera is not None:
            try:
                camera_path(*self.camera, self.length, source.size, self.size)
            except OptionsError as error:
                raise TrainingDataError(source.path, error.detail) from error

    def __len__(self) -> int:
        return len(self.sources)

    def clip(self, index: int, generator: torch.Generator) -> Clip:
        """The clip of source ``index`` from a start drawn from ``generator`` (one draw per call, stills included)."""
        source = self.sources[index]
        start = int(torch.randint(max(1, source.frame_count - self.span + 1), (), generator=generator))
        arrays = source.read([0] if source.frame_count == 1 else list(range(start, start + self.span, self.frame_stride)))
        if len({array.shape for array in arrays}) > 1:
            raise TrainingDataError(source.path, f"frames differ in size: {sorted({array.shape[:2] for array in arrays})}")
        frames = as_frames(arrays)  # (n, 3, h, w)
        if self.camera is None:
            frames = cover_crop(frames, self.size)
        else:
            frames = camera_motion(frames, *self.camera, length=self.length, size=self.size)
        return Clip(frames, source.caption, source.path, start)


def as_frames(arrays: list[np.ndarray]) -> torch.Tensor:
    """``(h, w, 3)`` uint8 RGB arrays as frames ``(n, 3, h, w)``, float in [0, 1]."""
    return torch.cat([rearrange(torch.from_numpy(array), "h w c -> 1 c h w") for array in arrays]).float() / 255


def read_still(path: str | Path) -> torch.Tensor:
    """One image (an animated one's first frame) as ``(3, h, w)`` float in [0, 1], read as the training folder's
    images are; errors name the file."""
    return as_frames(_open(Path(path), "").read([0]))[0]


def cover_crop(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(n, c, h, w)`` resized (antialiased) to cover ``size`` ``(H, W)``, then centre-cropped to ``(n, c, H, W)``."""
    height, width = size
    scale = max(height / frames.shape[-2], width / frames.shape[-1])
    resized = resize(frames, (max(height, round(frames.shape[-2] * scale)), max(width, round(frames.shape[-1] * scale))), antialias=True)
    top, left = (resized.shape[-2] - height) // 2, (resized.shape[-1] - width) // 2
    return resized[..., top:top + height, left:left + width]


def _rgb(image: Image.Image) -> np.ndarray:
    return np.array(image.convert("RGB"))


def _read_image(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return _rgb(image)


def _decode(path: Path, indices: list[int]) -> list[np.ndarray]:
    """Frames ``indices`` (increasing) of a video, decoded from its start."""
    wanted, decoded = dict.fromkeys(indices), 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if decoded in wanted:
                wanted[decoded] = frame.to_ndarray(format="rgb24")
            decoded += 1
            if decoded > indices[-1]:
                break
    if decoded <= indices[-1]:
        raise TrainingDataError(path, f"decodes to only {decoded} frames; frame {indices[-1]} was needed")
    return list(wanted.values())


def _open(path: Path, default_caption: str) -> Source:
    """The source at ``path`` with its caption (sidecar ``NAME.txt``, else ``default_caption``); errors name the file."""
    sidecar = path.with_name(path.name + ".txt") if path.is_dir() else path.with_suffix(".txt")
    try:
        caption = sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else default_caption
    except UnicodeDecodeError as error:
        raise TrainingDataError(sidecar, f"a caption file that is not UTF-8 text ({error})") from error
    try:
        if path.is_dir():
            files = tuple(sorted((file for file in path.iterdir() if file.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key))
            if not files:
                raise TrainingDataError(path, f"a folder without frame images ({' '.join(IMAGE_SUFFIXES)})")
            with Image.open(files[0]) as first:
                return Source(path, "sequence", len(files), (first.height, first.width), caption, files)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            with Image.open(path) as image:
                return Source(path, "image", getattr(image, "n_frames", 1), (image.height, image.width), caption)
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise TrainingDataError(path, "has no video stream")
            stream = container.streams.video[0]
            count = sum(1 for packet in container.demux(stream) if packet.size)  # one packet a frame, no decoding
            return Source(path, "video", count, (stream.height, stream.width), caption)
    except (OSError, av.FFmpegError) as error:
        raise TrainingDataError(path, f"unreadable ({error})") from error
