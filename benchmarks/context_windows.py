"""Time and peak memory of context-windowed sampling for 16, 32, 64 and 128 frames (16/4 windows).

Runs the random full-size SD1.5 + v3 motion module in-process through ComfyUI's sampler, one
process per frame count (peak memory: CUDA max allocated, or CPU peak RSS above the state after
loading), and prints each as a ratio to the 16-frame run next to the ideal ratio: the number of
windows (each window costs one 16-frame evaluation).

    PYTHONSAFEPATH=1 .cache/venv/bin/python benchmarks/context_windows.py [--latent 8] [--steps 1]
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

FRAMES = [16, 32, 64, 128]


def measure(frames: int, latent: int, steps: int) -> dict:
    from pack_import import import_pack

    import_pack()
    import comfy.sample
    import comfy.sd
    import torch
    from animdiff.motion_module import load_motion_module
    from animdiff.motion_module.patcher import apply_motion_module
    from animdiff.sampling.context import ContextOptions, context_windows
    from weights import checkpoint_path, motion_module_path

    import nodes

    model, clip = comfy.sd.load_checkpoint_guess_config(str(checkpoint_path()), output_vae=False, output_clip=True)[:2]
    motion_module = load_motion_module(motion_module_path("mm_v3_random.safetensors"))
    options = ContextOptions(16, 4, schedule="static")
    animated = apply_motion_module(model, motion_module, "autoselect", context_options=options)
    positive = nodes.CLIPTextEncode().encode(clip, "a river")[0]
    x = torch.randn(frames, 4, latent, latent, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    with PeakMemory() as peak:
        comfy.sample.sample(animated, x, steps, 1.0, "euler", "normal", positive, positive, torch.zeros_like(x), seed=0, disable_pbar=True)
    seconds = time.perf_counter() - start
    return {"frames": frames, "windows": len(context_windows(frames, options)), "seconds": seconds, "peak_bytes": peak.bytes}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latent", type=int, default=8, help="latent side (8 = 64x64 pixels)")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--frames", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.frames:
        print(json.dumps(measure(args.frames, args.latent, args.steps)))
        return
    rows = []
    for frames in FRAMES:
        out = subprocess.run([sys.executable, __file__, "--frames", str(frames), "--latent", str(args.latent), "--steps", str(args.steps)],
                             check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    base = rows[0]
    print(f"context 16/4 (static), latent {args.latent}x{args.latent}, {args.steps} step(s), cfg 1")
    print("frames  windows  seconds  time ratio  ideal ratio  peak MiB  memory ratio")
    for r in rows:
        print(f"{r['frames']:6d}  {r['windows']:7d}  {r['seconds']:7.1f}  {r['seconds'] / base['seconds']:10.2f}  "
              f"{r['windows'] / base['windows']:11.2f}  {r['peak_bytes'] / 2**20:8.0f}  {r['peak_bytes'] / max(base['peak_bytes'], 1):12.2f}")


if __name__ == "__main__":
    main()
