"""The main job: a headless ComfyUI with this pack renders an example workflow to an animated file.

With a checkpoint and a motion module in the user's ComfyUI (or named with --checkpoint and
--motion-module) it renders the workflow as written. Without, it writes random weights in the
official layouts once (cached) and makes a small smoke run, and says so: such output is noise.

Run through ``scripts/main.sh``, which sets up ComfyUI and the venv first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run with PYTHONSAFEPATH: add only scripts/
import torch  # noqa: E402
from comfy_server import ComfyServer, output_files  # noqa: E402
from pack_import import COMFYUI_DIR, PACK_DIR, import_pack  # noqa: E402

import client.api as client_api  # noqa: E402  (importable once comfy_server loaded the client)
from client.workflow import node_label  # noqa: E402  (importable once comfy_server loaded the client)

SMOKE_MODELS = PACK_DIR / ".cache" / "smoke-models"


def weights_in(folders: list[Path]):
    """``(folder, file)`` for each weights file the pack can read (its checkpoint reader's extensions)."""
    import_pack()
    from animdiff.weight_files import EXTENSIONS

    for folder in folders:
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                if path.suffix.lower() in EXTENSIONS:
                    yield folder, path


def is_motion_module(path: Path) -> bool:
    """Recognised by the pack's own layout detection (the folder also holds domain adapters)."""
    import_pack()
    from animdiff.errors import FileError
    from animdiff.motion_module.layout import recognise
    from animdiff.weight_files import read_state_dict

    try:
        recognise(read_state_dict(path), path.name)
        return True
    except FileError:
        return False


def user_models() -> tuple[str | None, str | None]:
    models = COMFYUI_DIR / "models"
    checkpoint = next((p.relative_to(f).as_posix() for f, p in weights_in([models / "checkpoints"])), None)
    motion_module = next((p.relative_to(f).as_posix() for f, p in weights_in([models / "animatediff_models", PACK_DIR / "models"])
                   if is_motion_module(p)), None)
    return checkpoint, motion_module


def smoke_models(yaml_path: Path) -> tuple[str, str]:
    import_pack()
    from random_weights import write_motion_module, write_sd15_checkpoint

    print("[main] no checkpoint + motion module found: writing random weights in the official layouts "
          f"(once, cached in {SMOKE_MODELS})", flush=True)
    write_sd15_checkpoint(SMOKE_MODELS / "checkpoints" / "sd15_random.safetensors")
    write_motion_module(SMOKE_MODELS / "animatediff_models" / "v3_sd15_mm_random.safetensors", "v3")
    yaml_path.write_text(f"animdiff_smoke:\n    base_path: {SMOKE_MODELS}\n    checkpoints: checkpoints\n"
                         "    animatediff_models: animatediff_models\n")
    return "sd15_random.safetensors", "v3_sd15_mm_random.safetensors"


def set_input(prompt: dict, class_type: str, **values) -> None:
    for node in prompt.values():
        if node["class_type"] == class_type:
            node["inputs"].update(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflow", type=Path, default=PACK_DIR / "workflows" / "txt2vid_16f.api.json")
    parser.add_argument("--checkpoint", help="checkpoint name in ComfyUI's models/checkpoints")
    parser.add_argument("--motion-module", help="motion module name in models/animatediff_models")
    args = parser.parse_args()

    prompt = json.loads(args.workflow.read_text())
    found_ckpt, found_mm = user_models()
    checkpoint, motion_module = args.checkpoint or found_ckpt, args.motion_module or found_mm
    log_dir = PACK_DIR / ".cache" / "main-job"
    log_dir.mkdir(parents=True, exist_ok=True)
    server_args = [] if torch.cuda.is_available() else ["--cpu"]
    smoke = not (checkpoint and motion_module)
    if smoke:
        checkpoint, motion_module = smoke_models(log_dir / "smoke_models.yaml")
        server_args += ["--extra-model-paths-config", str(log_dir / "smoke_models.yaml")]
        set_input(prompt, "EmptyLatentImage", width=64, height=64)
        set_input(prompt, "KSampler", steps=2)
        print("[main] SMOKE RUN with untrained random weights: the animation will be noise. "
              "Put a checkpoint and a motion module into ComfyUI's models folders for a real one.", flush=True)
    set_input(prompt, "CheckpointLoaderSimple", ckpt_name=checkpoint)
    set_input(prompt, "AnimDiffLoadMotionModule", model_name=motion_module)
    print(f"[main] ComfyUI: {COMFYUI_DIR}\n[main] checkpoint: {checkpoint}\n[main] motion module: {motion_module}", flush=True)

    with ComfyServer(COMFYUI_DIR, server_args, log_dir / "comfyui.log") as server:
        print(f"[main] ComfyUI is up at {server.url}; queueing {args.workflow.name}", flush=True)
        if client_api.websocket is None:
            print("[main] no step-by-step progress without websocket-client (requirements-batch.txt); waiting for the prompt", flush=True)
        started, last = time.time(), [""]

        def progress(message: dict):
            """Sampling steps and the running node, from the server's /ws messages for our prompt."""
            kind, data = message.get("type"), message.get("data") or {}
            if kind == "progress":
                text = f"step {data.get('value')}/{data.get('max')} of {node_label(data.get('node'), prompt)}"
            elif kind == "executing" and data.get("node") is not None:
                text = f"running {node_label(data['node'], prompt)}"
            else:
                return
            if text != last[0]:
                print(f"[main] {text} ({time.time() - started:.0f} s)", flush=True)
                last[0] = text

        entry = server.run(prompt, progress=progress)
        history_output = COMFYUI_DIR / "output"
        files = output_files(entry, history_output)
    for path in files:
        print(f"[main] wrote {path}")
    if smoke:
        print("[main] (smoke run: random weights, so the frames are noise)")
    return 0 if files else 1


if __name__ == "__main__":
    sys.exit(main())
