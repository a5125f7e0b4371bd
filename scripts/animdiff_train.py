"""Train a MotionLoRA, a domain adapter or a motion module (AnimateDiff's three stages) from the command line.

    PYTHONSAFEPATH=1 .cache/venv/bin/python scripts/animdiff_train.py --stage motion_lora \\
        --checkpoint models/sd15.safetensors --motion-module models/mm_sd_v15_v2.ckpt \\
        --data clips/ --steps 2000 --out zoom_in.safetensors
    ... --still photo.png --camera zoom_in --speed 0.03 --caption "a street at night"   # one still, filmed

Data: ``--data FOLDER`` holds videos, image-sequence folders and (with ``--camera``) stills, captions in
``NAME.txt`` beside them or ``--caption`` (read by ``training/data.py``); ``--clips-per-source``
clips (random starts) are drawn from each with a generator seeded by ``--seed``. ``--still IMAGE`` films one
image with ``--camera``/``--speed`` (``training/augment.py``). Clips are encoded with the
checkpoint's VAE and captions with its CLIP once, before training.

Every ``--checkpoint-every`` steps the training state goes to ``--state`` (default ``OUT.state.pt``);
``--resume STATE`` continues a run to ``--steps`` with the same result as an uninterrupted one.
The output loads with AnimDiffMotionLoRA / AnimDiffDomainAdapter / AnimDiffLoadMotionModule.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run with PYTHONSAFEPATH: add only scripts/
from pack_import import import_pack  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    import_pack()
    import animdiff.training as training  # the stages, precisions and dtypes the trainer knows
    from animdiff.nodes.folders import name_max
    from animdiff.weight_files import TEMPORARY
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--stage", choices=list(training.STAGES), required=True)
    parser.add_argument("--checkpoint", type=Path, required=True, help="SD1.5/SDXL checkpoint file (UNet, CLIP, VAE)")
    parser.add_argument("--motion-module", type=Path, help="motion module file: the base of a MotionLoRA, or one to fine-tune")
    parser.add_argument("--version", default="v3", help="architecture of a new motion module (motion_module stage without "
                                                        "--motion-module): v1, v2, v3 or sdxl")
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", type=Path, help="folder of videos / image-sequence folders / stills")
    data.add_argument("--still", type=Path, help="one image, filmed with --camera")
    parser.add_argument("--camera", help="camera motion added to every clip (needed for stills): zoom_in, zoom_out, pan_left, "
                                         "pan_right, tilt_up, tilt_down, roll_clockwise, roll_anticlockwise")
    parser.add_argument("--speed", type=float, default=0.03, help="camera speed per frame (see augment.py for units)")
    parser.add_argument("--caption", default="", help="caption of sources without a NAME.txt (and of --still)")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--frames", type=int, default=16, help="frames per training clip")
    parser.add_argument("--frame-stride", type=int, default=1)
    parser.add_argument("--clips-per-source", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True, help="the .safetensors file to write (an existing file only with "
                                                                "--overwrite, or when resuming the run that wrote it)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--steps", type=int, default=2000)
    ranks = ", ".join(f"{stage.rank} for {name}" for name, stage in training.STAGES.items() if stage.rank)
    parser.add_argument("--rank", type=int, help=f"LoRA rank (default {ranks})")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grad-accumulation", type=int, default=1)
    parser.add_argument("--image-batch", type=int, default=4, help="frames per step of the domain adapter")
    parser.add_argument("--precision", choices=training.PRECISIONS, default="auto")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--beta-schedule", default="autoselect")
    parser.add_argument("--save-dtype", choices=list(training.DTYPES), default="fp16")
    parser.add_argument("--checkpoint-every", type=int, default=0, help="steps between training-state files")
    parser.add_argument("--state", type=Path, help="training-state file (default OUT.state.pt)")
    parser.add_argument("--resume", type=Path, help="training-state file to continue from")
    parser.add_argument("--log-every", type=int, default=10)
    args = parser.parse_args(argv)
    stage = training.STAGES[args.stage]
    if stage.uses_motion_module and not stage.creates_motion_module and args.motion_module is None:
        parser.error(f"--stage {stage} needs --motion-module (the module the {stage} is for)")
    if not stage.uses_motion_module and args.motion_module is not None:
        parser.error(f"--stage {stage} trains the image model alone; drop --motion-module")
    if args.still is not None and args.camera is None:
        parser.error("--still needs --camera: a still has no motion of its own")
    if args.out.suffix.lower() != ".safetensors":
        parser.error("--out must be a .safetensors file")
    args.state = args.state or args.out.with_name(args.out.name + ".state.pt")
    for option, path in (("--out", args.out), ("--state", args.state)):  # before any work: a too long name fails at the end
        limit = name_max(path.parent)
        if len(os.fsencode(path.name + TEMPORARY)) > limit:
            parser.error(f"{option} {path.name[:60]}…: the file name (with {TEMPORARY!r} while it is written) is longer than the "
                         f"file system's limit of {limit} bytes")
    return args


def load_models(args: argparse.Namespace):
    """(model, clip, vae, motion) from the files named on the command line."""
    import comfy.sd
    import folder_paths
    from animdiff.motion_module import load_motion_module
    from animdiff.motion_module.config import official_config

    model, clip, vae = comfy.sd.load_checkpoint_guess_config(str(args.checkpoint), output_vae=True, output_clip=True,
                                                             embedding_directory=folder_paths.get_folder_paths("embeddings"))[:3]
    if args.motion_module is not None:
        motion_module = load_motion_module(args.motion_module)
    elif args.stage == "motion_module":
        if args.version not in ("v1", "v2", "v3", "sdxl"):
            raise SystemExit(f"--version {args.version!r}: a new motion module is v1, v2, v3 or sdxl")
        motion_module = official_config(args.version)
    else:
        motion_module = None
    return model, clip, vae, motion_module


def read_clips(args: argparse.Namespace) -> tuple[list, list[str]]:
    """Pixel clips ``(frames, 3, h, w)`` and their captions, drawn reproducibly from ``--seed``."""
    import torch

    size, generator = (args.height, args.width), torch.Generator().manual_seed(args.seed)
    camera = (args.camera, args.speed) if args.camera else None
    from animdiff.training.augment import camera_motion
    from animdiff.training.data import ClipDataset, read_still

    if args.still is not None:
        return [camera_motion(read_still(args.still), args.camera, args.speed, length=args.frames, size=size)], [args.caption]

    dataset = ClipDataset(args.data, size, length=args.frames, frame_stride=args.frame_stride, caption=args.caption, camera=camera)
    pixels, captions = [], []
    for index in range(len(dataset)):
        for _ in range(args.clips_per_source):
            clip = dataset.clip(index, generator)
            pixels.append(clip.frames)
            captions.append(clip.caption)
    return pixels, captions


class ProgressPrinter:
    """One line every ``every`` steps (and the last): loss, mean loss of those steps, iterations per second."""

    def __init__(self, every: int):
        self.every, self.window, self.first = max(1, every), [], None

    def __call__(self, progress) -> None:
        if self.first is None:
            self.first = progress.step - 1  # a resumed run starts later
        self.window.append(progress.loss)
        if progress.step % self.every == 0 or progress.step == progress.steps:
            rate = (progress.step - self.first) / max(progress.seconds, 1e-9)
            print(f"step {progress.step}/{progress.steps}  loss {progress.loss:.4f}  mean {sum(self.window) / len(self.window):.4f}  "
                  f"{rate:.2f} it/s", flush=True)
            self.window = []


def run(args: argparse.Namespace, model, clip, vae, motion_module) -> Path:
    """Encode the data, train, save; returns the written file."""
    from animdiff.training import TrainConfig, encode_clips, train_to_file

    config = TrainConfig(stage=args.stage, steps=args.steps, learning_rate=args.lr, rank=args.rank, seed=args.seed, frames=args.frames,
                         image_batch=args.image_batch, grad_accumulation=args.grad_accumulation, beta_schedule=args.beta_schedule,
                         precision=args.precision, gradient_checkpointing=args.gradient_checkpointing,
                         checkpoint_every=args.checkpoint_every, save_dtype=args.save_dtype)
    what = f"{args.stage}" + (f" rank {config.rank}" if config.rank else "") + f", {config.steps} steps, lr {config.learning_rate:g}"

    def clips():
        pixels, captions = read_clips(args)
        print(f"{len(pixels)} clips of {args.frames} frames at {args.width}x{args.height}, {len(set(captions))} captions", flush=True)
        encoded = encode_clips(pixels, vae, captions=captions, clip=clip)
        print(f"training {what}" + (f", resuming from {args.resume}" if args.resume else ""), flush=True)
        return encoded

    result = train_to_file(config, model, clips, motion_module, args.out, state_path=args.state, resume=args.resume,
                           overwrite=args.overwrite, source="--out", switch="pass --overwrite", progress=ProgressPrinter(args.log_every))
    print(f"saved {args.out} ({len(result.tensors)} tensors); training state {args.state}", flush=True)
    return args.out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run(args, *load_models(args))


if __name__ == "__main__":
    main()
