"""Time and peak memory of context-windowed sampling for 16, 48 and 128 frames (16/4 uniform windows),
windows batched into one model call as memory allows vs one window per call.

Runs the random full-size SD1.5 + v3 motion module in-process through ComfyUI's sampler (cfg 1),
one process per frame count and mode (peak memory: CUDA max allocated, or CPU peak RSS above the
state after loading), and prints windows per step, windows/s, time and peak memory, and each
time as a ratio to the 16-frame run next to the ideal ratio: the windows evaluated (each costs one
16-frame evaluation).

    flock /tmp/animdiff-heavy.lock env PYTHONSAFEPATH=1 .cache/venv/bin/python benchmarks/context_windows.py \
        [--latent 8] [--steps 2] [--frames 16,48,128]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak_memory import PeakMemory  # noqa: E402

FRAMES = "16,48,128"
MODES = {"batched": 0, "one by one": 1}  # ContextOptions.windows_per_call


def measure(frames: int, latent: int, steps: int, per_call: int) -> dict:
    from pack_import import import_pack

    import_pack()
    import comfy.sample
    import comfy.sd
    import torch
    from animdiff.animate.model import apply_motion_module
    from animdiff.motion_module import load_motion_module
    from animdiff.sampling.windows.plan import ContextOptions, context_windows
    from weights import checkpoint_path, motion_module_path

    import nodes

    model, clip = comfy.sd.load_checkpoint_guess_config(str(checkpoint_path()), output_vae=False, output_clip=True)[:2]
    motion_module = load_motion_module(motion_module_path("mm_v3_random.safetensors"))
    options = ContextOptions(16, 4, windows_per_call=per_call)
    animated = apply_motion_module(model, motion_module, "autoselect", context_options=options)
    positive = nodes.CLIPTextEncode().encode(clip, "a river")[0]
    x = torch.randn(frames, 4, latent, latent, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    with PeakMemory() as peak:
        comfy.sample.sample(animated, x, steps, 1.0, "euler", "normal", positive, positive, torch.zeros_like(x), seed=0, disable_pbar=True)
    seconds = time.perf_counter() - start
    windows = sum(len(context_windows(frames, options, step)) for step in range(steps))
    return {"frames": frames, "windows": windows, "seconds": seconds, "peak_bytes": peak.bytes}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latent", type=int, default=8, help="latent side (8 = 64x64 pixels)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--frames", default=FRAMES, help="comma-separated frame counts")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--per-call", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.latent, args.steps, args.per_call)))
        return
    rows = []
    for frames in map(int, args.frames.split(",")):
        for mode, per_call in MODES.items():
            command = [sys.executable, __file__, "--one", str(frames), "--latent", str(args.latent), "--steps", str(args.steps)]
            out = subprocess.run(command + ["--per-call", str(per_call)],
                                 check=True, capture_output=True, text=True).stdout
            rows.append({**json.loads(out.strip().splitlines()[-1]), "mode": mode})
    base = {r["mode"]: r for r in rows if r["frames"] == rows[0]["frames"]}
    print(f"context 16/4 uniform pyramid, latent {args.latent}x{args.latent}, {args.steps} step(s), cfg 1")
    print("frames  mode        windows/step  windows/s  seconds  time ratio  ideal ratio  peak MiB")
    for r in rows:
        b = base[r["mode"]]
        print(f"{r['frames']:6d}  {r['mode']:10s}  {r['windows'] / args.steps:12.1f}  {r['windows'] / r['seconds']:9.2f}  {r['seconds']:7.1f}  "
              f"{r['seconds'] / b['seconds']:10.2f}  {r['windows'] / b['windows']:11.2f}  {r['peak_bytes'] / 2**20:8.0f}")


if __name__ == "__main__":
    main()
