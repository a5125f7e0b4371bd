"""Training iterations per second and peak memory of each stage: MotionLoRA, domain adapter, motion module.

Each stage runs in its own process on random weights: ComfyUI's SD1.5 UNet and a v3 motion module at the
size chosen, one 16-frame clip per step (the domain adapter: 4 single frames per step), AdamW, the default
rank (64 / 128). Peak memory is above the state after building the models (CUDA's allocator peak, or the
CPU resident set sampled every 5 ms); the rate leaves out the first (warm-up) step. Prints what this run measured.

    PYTHONSAFEPATH=1 .cache/venv/bin/python benchmarks/training.py --size reduced                 # CPU-friendly
    PYTHONSAFEPATH=1 .cache/venv/bin/python benchmarks/training.py --size sd15-256                # GPU: AnimateDiff's training size
    PYTHONSAFEPATH=1 .cache/venv/bin/python benchmarks/training.py --size sd15 --gradient-checkpointing   # 512x512
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak_memory import PeakMemory  # noqa: E402

SIZES = {  # model_channels, channel_mult, latent side (pixels / 8), context dim
    "reduced": (64, (1, 2, 4, 4), 16, 64),
    "sd15-256": (320, (1, 2, 4, 4), 32, 768),
    "sd15": (320, (1, 2, 4, 4), 64, 768),
}
STAGES = ("motion_lora", "domain_adapter", "motion_module")


def measure(stage: str, args: argparse.Namespace) -> dict:
    from pack_import import import_pack

    import_pack()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from animdiff.training import TrainConfig, TrainingClips, train
    from training_models import conditioning, moving_square, small_motion, small_motion_config, small_sd15

    channels, mult, side, context = SIZES[args.size]
    model = small_sd15(channels=channels, mult=mult, context=context)
    motion_module = {"motion_lora": small_motion("v3", channels=channels, mult=mult), "domain_adapter": None,
              "motion_module": small_motion_config("v3", channels=channels, mult=mult)}[stage]
    data = TrainingClips.from_latents([moving_square(args.frames, size=side)], conditioning(0, tokens=77, context=context))
    config = TrainConfig(stage=stage, steps=args.steps + 1, learning_rate=1e-4, frames=args.frames, precision=args.precision,
                         gradient_checkpointing=args.gradient_checkpointing)
    times = []
    with PeakMemory() as peak:
        result = train(config, model, data, motion_module, progress=lambda p: times.append(time.perf_counter()))
    trained = sum(v.numel() for k, v in result.tensors.items() if not k.endswith(".pe"))
    device = str(model.load_device)
    if device.startswith("cuda"):
        device = torch.cuda.get_device_name()
    return {"stage": stage, "device": device, "steps_per_second": args.steps / (times[-1] - times[0]), "peak_bytes": peak.bytes,
            "trained_parameters": trained, "precision": args.precision, "threads": torch.get_num_threads()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="reduced")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up step)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(measure(args.stage, args)))
        return
    forwarded = ["--size", args.size, "--steps", str(args.steps), "--frames", str(args.frames), "--precision", args.precision,
                 "--threads", str(args.threads)] + (["--gradient-checkpointing"] if args.gradient_checkpointing else [])
    results = []
    for stage in args.stages:
        out = subprocess.run([sys.executable, __file__, *forwarded, "--stage", stage], check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    channels, mult, side, context = SIZES[args.size]
    first = results[0]
    print(f"{args.size}: UNet model_channels {channels} x {list(mult)}, {side * 8}x{side * 8} pixels ({side}x{side} latents), "
          f"{args.frames}-frame clips, batch 1, precision {args.precision}"
          f"{', gradient checkpointing' if args.gradient_checkpointing else ''}; on {first['device']} ({first['threads']} threads)")
    for r in results:
        print(f"  {r['stage']:15s} {r['steps_per_second']:7.3f} it/s  {1 / r['steps_per_second']:7.2f} s/it  "
              f"peak {r['peak_bytes'] / 2**20:8.0f} MiB  trained {r['trained_parameters'] / 1e6:7.2f} M parameters")


if __name__ == "__main__":
    main()
