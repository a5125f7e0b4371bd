"""Per-step time and peak memory of the animated UNet vs the plain UNet, same 16-frame batch.

Each variant runs in its own process; peak memory is above the state after building the model
(CUDA's allocator peak, or the CPU resident set sampled every 5 ms). Prints the ratios measured in this run.

    bash scripts/main.sh --help >/dev/null  # (set-up once) then:
    PYTHONSAFEPATH=1 .cache/venv/bin/python benchmarks/unet_step.py --size reduced   # CPU-friendly
    PYTHONSAFEPATH=1 .cache/venv/bin/python benchmarks/unet_step.py --size sd15      # SD1.5 512x512x16 (GPU)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak_memory import PeakMemory  # noqa: E402

SIZES = {  # model_channels, latent side, frames
    "reduced": (64, 32, 16),
    "sd15": (320, 64, 16),
}


def measure(variant: str, size: str, steps: int) -> dict:
    from pack_import import import_pack

    import_pack()
    import comfy.ops
    import torch
    from animdiff.motion_module import MotionModuleConfig, MotionNetwork
    from animdiff.motion_module.injection import motion_injected
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    channels, side, frames = SIZES[size]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    with torch.device(device):
        unet = UNetModel(in_channels=4, out_channels=4, model_channels=channels, num_res_blocks=[2] * 4, channel_mult=[1, 2, 4, 4],
                         transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0], transformer_depth_middle=1,
                         transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], context_dim=768, num_heads=8,
                         use_linear_in_transformer=False, use_spatial_transformer=True, legacy=False, image_size=side,
                         use_checkpoint=False, adm_in_channels=None, operations=comfy.ops.manual_cast, dtype=dtype, device=device)
        network = MotionNetwork(MotionModuleConfig("v3", tuple(channels * m for m in (1, 2, 4, 4)), False, 32), device=device, dtype=dtype)
    for tensor in [*unet.parameters(), *network.parameters()]:
        torch.nn.init.normal_(tensor, std=0.02)
    batch = 2 * frames  # cond + uncond, as with cfg > 1
    x = torch.randn(batch, 4, side, side, device=device, dtype=dtype)
    t = torch.full((batch,), 500.0, device=device)
    context = torch.randn(batch, 77, 768, device=device, dtype=dtype)

    def step():
        if variant == "animated":
            with motion_injected(unet, network, frames, 1.0):
                return unet(x, t, context)
        return unet(x, t, context)

    with torch.no_grad(), PeakMemory() as peak:
        step()  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / steps
    return {"variant": variant, "device": str(device), "seconds_per_step": seconds, "peak_bytes": peak.bytes}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="reduced")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--variant", choices=["plain", "animated"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args.variant, args.size, args.steps)))
        return
    results = {}
    for variant in ("plain", "animated"):
        out = subprocess.run([sys.executable, __file__, "--size", args.size, "--steps", str(args.steps), "--variant", variant],
                             check=True, capture_output=True, text=True).stdout
        results[variant] = json.loads(out.strip().splitlines()[-1])
    plain, animated = results["plain"], results["animated"]
    channels, side, frames = SIZES[args.size]
    print(f"{args.size}: model_channels {channels}, latent {side}x{side}, {frames} frames x (cond+uncond), on {plain['device']}")
    for name, r in results.items():
        print(f"  {name:9s} {r['seconds_per_step']:.3f} s/step  peak {r['peak_bytes'] / 2**20:.0f} MiB")
    print(f"  ratio animated/plain: time {animated['seconds_per_step'] / plain['seconds_per_step']:.3f}, "
          f"peak memory {animated['peak_bytes'] / max(plain['peak_bytes'], 1):.3f}")


if __name__ == "__main__":
    main()
