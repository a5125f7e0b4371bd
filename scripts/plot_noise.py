"""Draw the frame-to-frame correlation of the initial noise for each AnimDiffNoise type (docs/features.md picture).

For 64 frames of 4x64x64 noise (a 512x512 video), each panel is the 64x64 matrix of Pearson
correlations between the noise of frame i (row) and frame j (column): white 0, dark 1. Noise types
as the node sets them: context_length 16, window_stride 4, mix_weight 0.5. Pillow only.

    PYTHONSAFEPATH=1 .cache/venv/bin/python scripts/plot_noise.py [--out docs/noise_correlation.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw

FRAMES, CELL, MARGIN, TITLE = 64, 4, 16, 28


def colour(value: float) -> tuple[int, int, int]:
    """0 (or below) white -> 1 dark blue."""
    t = min(max(value, 0.0), 1.0)
    return tuple(round(255 + (c - 255) * t) for c in (20, 40, 120))


def panel(correlation: torch.Tensor, title: str) -> Image.Image:
    size = FRAMES * CELL
    image = Image.new("RGB", (size + 2 * MARGIN, size + TITLE + 2 * MARGIN), "white")
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, MARGIN // 2), title, fill="black")
    for i in range(FRAMES):
        for j in range(FRAMES):
            x, y = MARGIN + j * CELL, TITLE + MARGIN + i * CELL
            draw.rectangle([x, y, x + CELL - 1, y + CELL - 1], fill=colour(float(correlation[i, j])))
    draw.rectangle([MARGIN - 1, TITLE + MARGIN - 1, MARGIN + size, TITLE + MARGIN + size], outline="grey")
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "noise_correlation.png")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from pack_import import import_pack

    import_pack()
    from animdiff.sampling.noise.initial import NOISE_TYPES, NoiseOptions, frame_correlation, initial_noise

    noise = torch.randn(FRAMES, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    panels = []
    for noise_type in NOISE_TYPES:
        options = NoiseOptions(noise_type, context_length=16, stride=4, weight=0.5)
        panels.append(panel(frame_correlation(initial_noise(noise, options, seed=0)), noise_type))
    width = sum(p.width for p in panels)
    sheet = Image.new("RGB", (width, panels[0].height), "white")
    for k, p in enumerate(panels):
        sheet.paste(p, (k * p.width, 0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
