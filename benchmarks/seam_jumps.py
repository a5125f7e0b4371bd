"""Seam jumps with and without anchored windows (and NaiveReuse), on one fixed-seed case.

The seam jump at a window boundary ``t`` is ``mean|x[t+1] - x[t]|`` over the decoded frames' pixels, divided by the
median of that over all ``t`` (the definition the video report node uses); the boundaries are the frames where a
window of the static plan ends or the next begins. 1 means a seam jumps like any frame step; more is a visible seam.

Runs the random full-size SD1.5 + v3 motion module in-process through ComfyUI's sampler (fixed seed, static 16/4
windows, the same noise for every variant) and prints, per variant, the mean and largest seam jump and the mean
frame-to-frame difference. With random weights the frames are noise-like, so the numbers compare variants with one
another; they say nothing of a trained model's look.

    /work/heavy env PYTHONSAFEPATH=1 .cache/venv/bin/python benchmarks/seam_jumps.py [--frames 48] [--latent 8] [--steps 4] \
        [--checkpoint PATH --motion-module PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def seam_jumps(frames, windows: list[list[int]]) -> tuple[list[float], float, list[int]]:
    """``frames`` ``(F, H, W, C)`` decoded pixels -> (jump ratio at each seam, median step, the seams)."""
    steps = (frames[1:] - frames[:-1]).abs().flatten(1).mean(1)  # (F-1,) mean |x[t+1] - x[t]|
    median = float(steps.median())
    seams = sorted({w[0] - 1 for w in windows[1:]} | {w[-1] for w in windows[:-1]})
    return [float(steps[t]) / median for t in seams], median, seams


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--latent", type=int, default=8, help="latent side (8 = 64x64 pixels)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--checkpoint", type=Path, help="an SD1.5 checkpoint (default: the random test one)")
    parser.add_argument("--motion-module", type=Path, help="a v2/v3 motion module (default: the random v3 test one)")
    parser.add_argument("--prompt", default="a lighthouse on a cliff at dusk")
    args = parser.parse_args()

    from dataclasses import replace

    from pack_import import import_pack

    import_pack()
    import comfy.sample
    import comfy.sd
    import torch
    from animdiff.animate.model import apply_motion_module
    from animdiff.motion_module import load_motion_module
    from animdiff.sampling.windows.anchors import Anchors, NaiveReuse
    from animdiff.sampling.windows.plan import ContextOptions, context_windows
    from weights import checkpoint_path, motion_module_path

    import nodes

    checkpoint = args.checkpoint or checkpoint_path()
    model, clip, vae = comfy.sd.load_checkpoint_guess_config(str(checkpoint), output_vae=True, output_clip=True)[:3]
    motion_module = load_motion_module(args.motion_module or motion_module_path("mm_v3_random.safetensors"))
    positive = nodes.CLIPTextEncode().encode(clip, args.prompt)[0]
    base = ContextOptions(16, 4, 1, False, "static", "pyramid", windows_per_call=1)
    variants = {
        "no anchors": base,
        "anchors attention first 1": replace(base, anchors=Anchors("first", 1)),
        "anchors attention sliding 2": replace(base, anchors=Anchors("sliding", 2)),
        "anchors latents first 1": replace(base, anchors=Anchors("first", 1, share="latents")),
        "NaiveReuse 0.95, first 15 %": replace(base, naive_reuse=NaiveReuse()),
    }
    x = torch.randn(args.frames, 4, args.latent, args.latent, generator=torch.Generator().manual_seed(args.seed))
    windows = context_windows(args.frames, base)
    print(f"{args.frames} frames, latent {args.latent}x{args.latent}, {args.steps} euler steps, cfg 1, seed {args.seed}, "
          f"static 16/4 windows {[(w[0], w[-1]) for w in windows]}")
    print(f"{'variant':30s} {'mean seam jump':>15s} {'max seam jump':>14s} {'median step':>12s} {'seconds':>8s}")
    for name, options in variants.items():
        animated = apply_motion_module(model, motion_module, "autoselect", context_options=options)
        start = time.perf_counter()
        with torch.inference_mode():
            latent = comfy.sample.sample(animated, x, args.steps, 1.0, "euler", "normal", positive, positive, torch.zeros_like(x),
                                         seed=args.seed, disable_pbar=True)
            seconds = time.perf_counter() - start
            jumps, median, seams = seam_jumps(vae.decode(latent).float(), windows)
        print(f"{name:30s} {sum(jumps) / len(jumps):15.3f} {max(jumps):14.3f} {median:12.4f} {seconds:8.1f}")
    print(f"seams at t = {seams} (jump from frame t to t+1)")


if __name__ == "__main__":
    main()
