"""Training data: the camera-motion augmentation moves the picture as commanded; clips from videos, sequences, stills."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from animdiff.errors import TrainingDataError
from animdiff.training.augment import CAMERA_MOTIONS, camera_motion, camera_path
from animdiff.training.data import ClipDataset
from einops import rearrange
from PIL import Image

SIZE = 96  # output frames, square
SPEEDS = {"pan": (0.03, 0.08), "tilt": (0.03, 0.08), "zoom": (0.02, 0.05), "roll": (2.0, 5.0)}
# What each motion does to the content between consecutive frames, at `speed`: (measure, value).
EXPECTED = {
    "pan_left": lambda v: ("dx", v * SIZE), "pan_right": lambda v: ("dx", -v * SIZE),
    "tilt_up": lambda v: ("dy", v * SIZE), "tilt_down": lambda v: ("dy", -v * SIZE),
    "zoom_in": lambda v: ("log_scale", np.log1p(v)), "zoom_out": lambda v: ("log_scale", -np.log1p(v)),
    "roll_clockwise": lambda v: ("clockwise_degrees", -v), "roll_anticlockwise": lambda v: ("clockwise_degrees", v),
}
TOLERANCE = 0.15  # relative


def texture(height: int = 256, width: int = 256, seed: int = 0) -> torch.Tensor:
    """A smooth random RGB texture ``(3, h, w)`` in [0, 1]: Gaussian low-pass-filtered noise (features ~5 px)."""
    noise = torch.randn(3, height, width, generator=torch.Generator().manual_seed(seed))
    frequency = torch.fft.fftfreq(height)[:, None] ** 2 + torch.fft.rfftfreq(width)[None] ** 2
    smooth = torch.fft.irfft2(torch.fft.rfft2(noise) * torch.exp(-frequency / (2 * 0.03 ** 2)), s=(height, width))
    low, high = smooth.amin((1, 2), keepdim=True), smooth.amax((1, 2), keepdim=True)
    return (smooth - low) / (high - low)


def phase_shift(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dx, dy)``, each ``(n,)``: pixels the content moved from frames ``a`` to ``b`` (``(n, c, h, w)``).

    Phase correlation of the Hann-windowed gray frames; sub-pixel peak by a parabola through its neighbours.
    """
    a, b = a.mean(1), b.mean(1)  # (n, h, w)
    n, height, width = a.shape
    window = torch.hann_window(height, periodic=False)[:, None] * torch.hann_window(width, periodic=False)[None]
    spectrum = lambda frames: torch.fft.fft2((frames - frames.mean((1, 2), keepdim=True)) * window)
    cross = spectrum(b) * spectrum(a).conj()
    surface = torch.fft.ifft2(cross / (cross.abs() + 1e-12)).real  # peaks at the displacement of b against a
    y, x = surface.flatten(1).argmax(1).div(width, rounding_mode="floor"), surface.flatten(1).argmax(1) % width
    at = lambda down, right: surface[torch.arange(n), (y + down) % height, (x + right) % width]
    dy, dx = y + parabola_peak(at(-1, 0), at(0, 0), at(1, 0)), x + parabola_peak(at(0, -1), at(0, 0), at(0, 1))
    return torch.where(dx > width / 2, dx - width, dx), torch.where(dy > height / 2, dy - height, dy)


def parabola_peak(before: torch.Tensor, at: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Offset (-0.5..0.5 steps) of the extremum of the parabola through three equally spaced samples."""
    return 0.5 * (before - after) / (before - 2 * at + after)


def warp_fit(a: torch.Tensor, b: torch.Tensor, values: torch.Tensor, theta) -> torch.Tensor:
    """``(n,)``: per frame pair of ``a``, ``b`` (``(n, c, h, w)``), the value in ``values`` (evenly spaced) whose
    warp ``theta(value) -> (2, 3)`` of ``a`` best matches ``b`` in the central half.

    Independent of the implementation: torch's ``grid_sample`` in normalised coordinates (square frames, so a
    rotation there is a rotation in pixels), squared error, sub-step minimum by a parabola.
    """
    a, b = a.mean(1, keepdim=True), b.mean(1)  # (n, 1, h, w), (n, h, w)
    n, _, height, width = a.shape
    rows, columns = slice(height // 4, 3 * height // 4), slice(width // 4, 3 * width // 4)
    y, x = torch.meshgrid(torch.linspace(-1, 1, height)[rows], torch.linspace(-1, 1, width)[columns], indexing="ij")
    grid = torch.einsum("mij,yxj->myxi", torch.stack([theta(value) for value in values]), torch.stack([x, y, torch.ones_like(x)], -1))
    predicted = F.grid_sample(a.repeat_interleave(len(values), 0), grid.repeat(n, 1, 1, 1), align_corners=True)  # (n * m, 1, h/2, w/2)
    errors = (rearrange(predicted, "(n m) 1 y x -> n m y x", n=n) - b[:, None, rows, columns]).pow(2).mean((2, 3))  # (n, m)
    best = errors[:, 1:-1].argmin(1) + 1
    at = lambda step: errors[torch.arange(n), best + step]
    return values[best] + (values[1] - values[0]) * parabola_peak(at(-1), at(0), at(1))


def log_scale(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(n,)`` logs of the factors the content grew by from frames ``a`` to ``b``: ``b(p) = a(p / s)`` about the centre."""
    return warp_fit(a, b, torch.linspace(-0.12, 0.12, 49), lambda s: torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]) * torch.exp(-s))


def clockwise_degrees(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(n,)`` degrees the content turned clockwise on screen from frames ``a`` to ``b``: ``b(p) = a(R(-angle) p)``, y down."""
    rotation = lambda r: torch.tensor([[torch.cos(r), torch.sin(r), 0], [-torch.sin(r), torch.cos(r), 0]])
    return warp_fit(a, b, torch.linspace(-8, 8, 65), lambda degrees: rotation(torch.deg2rad(degrees)))


@pytest.fixture(scope="module")
def still():
    return texture()


@pytest.mark.parametrize("motion", CAMERA_MOTIONS)
@pytest.mark.parametrize("fast", [False, True], ids=["slow", "fast"])
def test_camera_motion_moves_the_content_as_commanded(still, motion, fast):
    speed = SPEEDS[motion.split("_")[0]][fast]
    clip = camera_motion(still, motion, speed, length=16, size=(SIZE, SIZE))
    assert clip.shape == (16, 3, SIZE, SIZE) and 0 <= clip.min() and clip.max() <= 1
    quantity, expected = EXPECTED[motion](speed)
    before, after = clip[:-1], clip[1:]  # the 15 pairs of consecutive frames
    if quantity in ("dx", "dy"):
        dx, dy = phase_shift(before, after)
        measured, across = (dx, dy) if quantity == "dx" else (dy, dx)
        assert across.abs().max() <= TOLERANCE * abs(expected), f"{motion} at {speed}: px across the motion {across.tolist()}"
    else:
        measured = (log_scale if quantity == "log_scale" else clockwise_degrees)(before, after)
    assert (measured - expected).abs().max() <= TOLERANCE * abs(expected), f"{motion} at {speed}: {quantity} {measured.tolist()}, expected {expected}"


def test_camera_motion_on_a_clip_adds_to_its_own_motion(still):
    """A 10-frame clip whose content moves 6 source px right per frame, tilted up over 16 frames: both motions, then a loop."""
    wide = texture(256, 320, seed=1)
    clip = torch.stack([wide[:, :, 60 - 6 * j:316 - 6 * j] for j in range(10)])  # (10, 3, 256, 256)
    speed = 0.03
    out = camera_motion(clip, "tilt_up", speed, length=16, size=(SIZE, SIZE))
    assert out.shape == (16, 3, SIZE, SIZE)
    # The windows of the path, fitted into the 256 px source: (95 + 15 * speed * 96) output px span 255 source px.
    own = 6 * (SIZE - 1 + 15 * speed * SIZE) / 255
    dx, dy = phase_shift(out[:9], out[1:10])
    assert (dx - own).abs().max() <= TOLERANCE * own and (dy - speed * SIZE).abs().max() <= TOLERANCE * speed * SIZE, (dx, dy)
    dx, dy = phase_shift(out[:1], out[10:11])  # frame 10 shows clip frame 0 again, 10 camera steps on
    assert abs(dx) <= 0.5 and abs(dy - 10 * speed * SIZE) <= TOLERANCE * speed * SIZE, (dx, dy)


@pytest.mark.parametrize("motion", CAMERA_MOTIONS)
def test_windows_are_the_largest_inside_the_source(motion):
    """Every frame's window (corners: centre + scale * R(angle) * half-size) lies in the source; one touches its edge."""
    speed = SPEEDS[motion.split("_")[0]][1]
    path = camera_path(motion, speed, 16, (150, 260), (64, 96))
    radians = torch.deg2rad(path.angle)
    rotation = torch.stack([torch.stack([radians.cos(), -radians.sin()], -1), torch.stack([radians.sin(), radians.cos()], -1)], -2)
    half = torch.tensor([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=torch.float64) * torch.tensor([95 / 2, 63 / 2])
    corners = path.centre[:, None] + path.scale[:, None, None] * torch.einsum("fij,cj->fci", rotation, half)  # (16, 4, 2)
    margins = torch.cat([corners.flatten(0, 1), torch.tensor([259.0, 149.0]) - corners.flatten(0, 1)])
    assert margins.min() > -1e-9 and margins.min() < 1e-6


def test_camera_motion_rejects_bad_speeds_and_names(still):
    for motion, speed in [("pan_left", 0.6), ("zoom_in", 0.0), ("roll_clockwise", -2.0), ("tilt_up", float("nan"))]:
        with pytest.raises(ValueError, match=rf"{motion} speed .* is out of range: 0 < speed <= .*per frame"):
            camera_motion(still, motion, speed)
    with pytest.raises(ValueError, match=r"needs the 96x96 source enlarged .* \(at most 2.0x\): use speed <= 0\.0[0-9]+"):
        camera_motion(still[:, :96, :96], "pan_left", 0.3, size=(SIZE, SIZE))
    with pytest.raises(ValueError) as error:
        camera_motion(still, "dolly_zoom", 0.05)
    assert all(name in str(error.value) for name in CAMERA_MOTIONS) and "'dolly_zoom'" in str(error.value)


def write_video(path, frames: list[np.ndarray], rate: int = 8):
    """An mpeg4 video of ``(h, w, 3)`` uint8 frames, at a bit rate that keeps gray levels within 1 of 255."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt, stream.bit_rate = "yuv420p", 4_000_000
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def gray(level: int, height: int, width: int) -> np.ndarray:
    return np.full((height, width, 3), level, dtype=np.uint8)


def frame_numbers(frames: torch.Tensor, first: int, step: int) -> list[int]:
    """The frame numbers written as gray levels ``first + step * number`` into the frames' centres."""
    levels = frames[:, :, frames.shape[2] // 4:-frames.shape[2] // 4, frames.shape[3] // 4:-frames.shape[3] // 4].mean((1, 2, 3)) * 255
    return [round((level - first) / step) for level in levels.tolist()]


def test_video_clips_take_every_frame_stride_th_frame(tmp_path):
    write_video(tmp_path / "fade.mp4", [gray(10 + 8 * i, 32, 48) for i in range(30)])
    (tmp_path / "fade.txt").write_text("a gray fade\n")
    dataset = ClipDataset(tmp_path, (32, 32), length=8, frame_stride=3)
    assert len(dataset) == 1
    generator = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(6):
        clip = dataset.clip(0, generator)
        assert clip.frames.shape == (8, 3, 32, 32) and clip.frames.dtype == torch.float32
        assert 0 <= clip.frames.min() and clip.frames.max() <= 1
        assert clip.caption == "a gray fade" and clip.source == tmp_path / "fade.mp4"
        assert frame_numbers(clip.frames, 10, 8) == [clip.start + 3 * j for j in range(8)]
        starts.add(clip.start)
    assert len(starts) > 1 and max(starts) <= 30 - 22


def test_image_sequences_in_natural_order_centre_cropped(tmp_path):
    sequence = tmp_path / "shot"
    sequence.mkdir()
    for i in range(12):  # f0.png … f11.png: f10 sorts after f9; red bands left and right, outside the centre crop
        image = gray(20 * i, 24, 40)
        image[:, :8] = image[:, -8:] = (255, 0, 0)
        Image.fromarray(image).save(sequence / f"f{i}.png")
    gif = [Image.fromarray(gray(25 * i, 16, 16)) for i in range(10)]
    gif[0].save(tmp_path / "blink.gif", save_all=True, append_images=gif[1:], duration=100)
    dataset = ClipDataset(tmp_path, (24, 24), length=4, frame_stride=3, caption="default")
    assert [source.path.name for source in dataset.sources] == ["blink.gif", "shot"]
    generator = torch.Generator().manual_seed(1)
    gif_clip, shot_clip = dataset.clip(0, generator), dataset.clip(1, generator)
    assert frame_numbers(gif_clip.frames, 0, 25) == [0, 3, 6, 9]
    assert shot_clip.caption == "default" and shot_clip.frames.shape == (4, 3, 24, 24)
    expected = torch.tensor([20 * (shot_clip.start + 3 * j) / 255 for j in range(4)])
    assert torch.allclose(shot_clip.frames, expected[:, None, None, None].expand(4, 3, 24, 24), atol=1e-6)  # no red left


def test_stills_are_filmed_by_the_camera(tmp_path):
    image = (texture(64, 80).permute(1, 2, 0) * 255).to(torch.uint8).numpy()
    Image.fromarray(image).save(tmp_path / "cat.png")
    with pytest.raises(TrainingDataError, match=r"cat\.png: a still image .* camera=\(motion, speed\)"):
        ClipDataset(tmp_path, (32, 32), length=8)
    with pytest.raises(TrainingDataError, match=r"cat\.png: pan_left at speed 0.4 over 16 frames .* enlarged"):
        ClipDataset(tmp_path, (32, 32), length=16, camera=("pan_left", 0.4))
    dataset = ClipDataset(tmp_path, (32, 32), length=8, camera=("pan_left", 0.05))
    frames = dataset.clip(0, torch.Generator().manual_seed(0)).frames
    assert frames.shape == (8, 3, 32, 32)
    assert torch.equal(frames, camera_motion(torch.from_numpy(image).permute(2, 0, 1) / 255, "pan_left", 0.05, length=8, size=(32, 32)))


def test_same_seed_same_clips_and_resumable(tmp_path):
    write_video(tmp_path / "a.mp4", [gray(10 + 8 * i, 32, 32) for i in range(24)])
    write_video(tmp_path / "b.mp4", [gray(250 - 8 * i, 32, 32) for i in range(24)])
    dataset = ClipDataset(tmp_path, (32, 32), length=4, frame_stride=2)
    draw = lambda generator, n=6: [dataset.clip(i % len(dataset), generator) for i in range(n)]
    first, second = draw(torch.Generator().manual_seed(5)), draw(torch.Generator().manual_seed(5))
    assert [c.start for c in first] == [c.start for c in second]
    assert all(torch.equal(a.frames, b.frames) for a, b in zip(first, second, strict=True))
    assert [c.start for c in draw(torch.Generator().manual_seed(6))] != [c.start for c in first]
    generator = torch.Generator().manual_seed(5)
    draw(generator, 3)
    resumed = torch.Generator()
    resumed.set_state(generator.get_state())
    assert [c.start for c in draw(resumed, 3)] == [c.start for c in first[3:]]


def test_clear_errors_naming_the_file(tmp_path):
    (tmp_path / "notes.txt").write_text("no media here")
    with pytest.raises(TrainingDataError, match=rf"{tmp_path}: no training data"):
        ClipDataset(tmp_path, (32, 32))
    write_video(tmp_path / "short.mp4", [gray(100, 32, 32)] * 10)
    with pytest.raises(TrainingDataError, match=r"short\.mp4: has 10 frames; 8 frames at frame_stride 2 need 15: use frame_stride 1 or less"):
        ClipDataset(tmp_path, (32, 32), length=8, frame_stride=2)
    with pytest.raises(TrainingDataError, match=r"short\.mp4: has 10 frames; 16 frames .* use a shorter length"):
        ClipDataset(tmp_path, (32, 32), length=16)
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(TrainingDataError, match=r"broken\.mp4: unreadable"):
        ClipDataset(tmp_path, (32, 32), length=8)
    with pytest.raises(ValueError, match="multiples of 8"):
        ClipDataset(tmp_path, (30, 32))
