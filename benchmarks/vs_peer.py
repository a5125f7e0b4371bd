"""Plain SD1.5 vs this pack vs AnimateDiff-Evolved on the same work, in one ComfyUI server.

Three workloads (issue 16): 16 frames 64x64 4 steps; 16 frames 128x128 3 steps; 48 frames 64x64
2 steps with 16/4 uniform pyramid windows, that last one twice: ours batching windows as far as
ComfyUI's memory rule allows (the default), and ours one window per call (``windows_per_call`` 1,
the peer's way). Each is queued as the same graph shape (checkpoint ->
[motion] -> KSampler cfg 7.5 euler -> SaveLatent) for plain SD1.5, ours (AnimDiffLoadMotionModule +
AnimDiffApplyMotionModule [+ AnimDiffContextOptions]) and, with ``--peer-dir``, the peer
(ADE_LoadAnimateDiffModel + ADE_ApplyAnimateDiffModelSimple + ADE_UseEvolvedSampling
[+ ADE_StandardUniformContextOptions]), beta schedule ``autoselect`` in both (sqrt_linear for a v2
module). Models: the random full-size SD1.5 and official-layout v2 module of ``tests/weights.py``.

Timing: each KSampler runs one warm-up step more than the workload's; the timed steps are those
after it (from the server's websocket ``progress`` events: first step done -> last step done), so
the weights' first touch (``--cache-none`` reloads the checkpoint every prompt) stays out; the whole
KSampler node (``executing`` events) is reported too. Runs interleaved (plain, ours, peer, plain,
...), the minimum of ``--runs``. Next to the ratios it
prints the FLOP floor: torch's FlopCounterMode on one UNet call of diffusers' UNetMotionModel (v2
adapter) vs its plain UNet2DConditionModel at the workload's latent size (meta tensors, no weights),
times the frames our window plan evaluates in the timed steps per frame of video. Then the peak resident memory of the
server while each variant runs each workload, each in a fresh server, and ``--frames``: windows/s
of ours for those frame counts (64x64, 16/4 uniform windows), each in a fresh server.

``--gpu`` (issue 16, for a GPU machine): SD1.5 512x512x16 20 steps, SD1.5 128 frames 512x512 10 steps in 16/4
windows, and SDXL 1024x1024x16 20 steps with a random full-size SDXL checkpoint (written once, about 7 GB) and the
SDXL-layout motion module; peak memory is then the server's VRAM (nvidia-smi). The FLOP floor is SD1.5's only.

The peer is never committed: point ``--peer-dir`` at a local checkout; the server loads it through
a ``custom_nodes:`` entry of a temporary extra_model_paths.yaml (docs/benchmarks.md, *vs AnimateDiff-Evolved*, says how to get one).

    flock /tmp/animdiff-heavy.lock env PYTHONSAFEPATH=1 .cache/venv-test/bin/python benchmarks/vs_peer.py \\
        [--peer-dir DIR] [--runs 2] [--frames 16,48,128] [--only TEXT] [--quick | --gpu]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import psutil  # noqa: E402
import torch  # noqa: E402
import websocket  # noqa: E402
from comfy_server import ComfyServer, linked_custom_nodes  # noqa: E402
from pack_import import COMFYUI_DIR  # noqa: E402
from peak_memory import PolledPeak  # noqa: E402
from weights import CHECKPOINT, MODELS_DIR, SDXL_CHECKPOINT, checkpoint_path, motion_module_path, sdxl_checkpoint_path  # noqa: E402

BASES = {"sd15": (CHECKPOINT, "mm_v2_random.safetensors"), "sdxl": (SDXL_CHECKPOINT, "mm_sdxl_random.safetensors")}
PEER_LINK = "ComfyUI-AnimateDiff-Evolved"
SAMPLER = "10"  # the KSampler's node id in every graph


@dataclass(frozen=True)
class Workload:
    name: str
    frames: int
    side: int  # pixels
    steps: int
    windowed: bool = False
    base: str = "sd15"  # the checkpoint and motion module: BASES
    windows_per_call: int = 0  # ours' AnimDiffContextOptions input (0: as many as ComfyUI's memory rule allows)


WORKLOADS = [Workload("16 frames 64x64, 4 steps", 16, 64, 4),
             Workload("16 frames 128x128, 3 steps", 16, 128, 3),
             Workload("48 frames 64x64, 2 steps, windows 16/4 uniform pyramid", 48, 64, 2, windowed=True),
             Workload("48 frames 64x64, 2 steps, windows 16/4, ours one window per call", 48, 64, 2, windowed=True, windows_per_call=1)]
GPU = [Workload("SD1.5 16 frames 512x512, 20 steps", 16, 512, 20),
       Workload("SD1.5 128 frames 512x512, 10 steps, windows 16/4 uniform pyramid", 128, 512, 10, windowed=True),
       Workload("SD1.5 128 frames 512x512, 10 steps, windows 16/4, ours one window per call", 128, 512, 10, windowed=True,
                windows_per_call=1),
       Workload("SDXL 16 frames 1024x1024, 20 steps", 16, 1024, 20, base="sdxl")]
QUICK = [Workload("16 frames 32x32, 1 step", 16, 32, 1),
         Workload("24 frames 32x32, 1 step, windows 16/4 uniform pyramid", 24, 32, 1, windowed=True),
         Workload("24 frames 32x32, 1 step, windows 16/4, ours one window per call", 24, 32, 1, windowed=True, windows_per_call=1)]


def graph(variant: str, work: Workload, frames: int | None = None) -> dict:
    """API-format prompt: checkpoint -> [motion] -> KSampler -> SaveLatent; the same shape for every variant."""
    frames = frames or work.frames
    checkpoint, motion_module = BASES[work.base]
    g = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a paper boat on a rainy street"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "blurry"}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": work.side, "height": work.side, "batch_size": frames}},
        SAMPLER: {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
                                                      "latent_image": ["4", 0], "seed": 0, "steps": work.steps + 1, "cfg": 7.5,
                                                      "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "11": {"class_type": "SaveLatent", "inputs": {"samples": [SAMPLER, 0], "filename_prefix": f"bench/{variant}"}},
    }
    if variant == "ours":
        g["20"] = {"class_type": "AnimDiffLoadMotionModule", "inputs": {"model_name": motion_module, "version": "auto"}}
        g["21"] = {"class_type": "AnimDiffApplyMotionModule", "inputs": {
            "model": ["1", 0], "motion_module": ["20", 0], "beta_schedule": "autoselect", "motion_scale": 1.0,
            "start_percent": 0.0, "end_percent": 1.0}}
        if work.windowed:
            g["22"] = {"class_type": "AnimDiffContextOptions", "inputs": {
                "context_length": 16, "context_overlap": 4, "context_stride": 1, "closed_loop": False,
                "schedule": "uniform", "fuse_method": "pyramid", "windows_per_call": work.windows_per_call}}
            g["21"]["inputs"]["context_options"] = ["22", 0]
        g[SAMPLER]["inputs"]["model"] = ["21", 0]
    elif variant == "peer":
        g["30"] = {"class_type": "ADE_LoadAnimateDiffModel", "inputs": {"model_name": motion_module}}
        g["31"] = {"class_type": "ADE_ApplyAnimateDiffModelSimple", "inputs": {"motion_model": ["30", 0]}}
        g["33"] = {"class_type": "ADE_UseEvolvedSampling", "inputs": {
            "model": ["1", 0], "beta_schedule": "autoselect", "m_models": ["31", 0]}}
        if work.windowed:
            g["32"] = {"class_type": "ADE_StandardUniformContextOptions", "inputs": {
                "context_length": 16, "context_stride": 1, "context_overlap": 4, "fuse_method": "pyramid",
                "use_on_equal_length": False, "start_percent": 0.0, "guarantee_steps": 1}}
            g["33"]["inputs"]["context_options"] = ["32", 0]
        g[SAMPLER]["inputs"]["model"] = ["33", 0]
    return g


class Server(ComfyServer):
    """A benchmark server: the test models, optionally the peer (by path), no cache; KSampler timing over /ws."""

    def __init__(self, tmp: Path, peer_dir: Path | None, name: str):
        yaml = tmp / f"{name}.yaml"
        text = (f"animdiff_bench:\n    base_path: {MODELS_DIR}\n    checkpoints: checkpoints\n"
                "    animatediff_models: animatediff_models\n")
        if peer_dir:
            nodes_dir = linked_custom_nodes(tmp / "peer_nodes", {PEER_LINK: peer_dir})
            text += f"peer_nodes:\n    custom_nodes: {nodes_dir}\n"
        yaml.write_text(text)
        args = ["--extra-model-paths-config", str(yaml), "--output-directory", str(tmp / "output"), "--cache-none"]
        if not torch.cuda.is_available():
            args.append("--cpu")
        runtime = ROOT / ".cache" / "venv" / "bin" / "python"  # the server runs in the runtime venv, not the test tools
        python = os.environ.get("ANIMDIFF_RUNTIME_PYTHON") or (str(runtime) if runtime.exists() else sys.executable)
        super().__init__(COMFYUI_DIR, args, tmp / f"{name}.log", python=python)

    def __enter__(self) -> Server:
        super().__enter__()
        self.client_id = uuid.uuid4().hex
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{self.port}/ws?clientId={self.client_id}", timeout=1800)
        return self

    def __exit__(self, *exc):
        if getattr(self, "ws", None):
            self.ws.close()
        super().__exit__(*exc)

    def sampler_seconds(self, prompt: dict, peak: PolledPeak | None = None) -> tuple[float, float]:
        """Run ``prompt`` (whose KSampler has one warm-up step more than is timed).

        Returns (seconds of the timed steps: the KSampler's first step done -> its last step done, from
        its websocket ``progress`` events; seconds of the whole KSampler node, model loading included).
        """
        prompt_id = self.post("/prompt", {"prompt": prompt, "client_id": self.client_id})["prompt_id"]
        started = ended = None
        steps = {}
        while True:
            message = self.ws.recv()
            now = time.perf_counter()
            if not isinstance(message, str):
                continue  # binary previews
            event = json.loads(message)
            data = event.get("data", {})
            if data.get("prompt_id") != prompt_id:
                continue
            if event["type"] == "progress" and data.get("node") == SAMPLER:
                steps[data["value"]] = now
            if event["type"] == "executing":
                if data.get("node") == SAMPLER:
                    started = now
                    if peak:
                        peak.start()
                elif started is not None and ended is None:
                    ended = now
                    if peak:
                        peak.stop()
            if event["type"] == "execution_error":
                raise RuntimeError(f"{prompt_id} failed: {data.get('exception_message')}\n{self.log()[-3000:]}")
            if event["type"] == "execution_success":
                if peak and ended is None:
                    peak.stop()
                return steps[max(steps)] - steps[1], (ended or now) - started


def process_rss(process: psutil.Process) -> int:
    """Resident memory of a process and its children."""
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])


def process_vram(process: psutil.Process) -> int:
    """GPU memory a process and its children hold (nvidia-smi's per-process figure, PyTorch's cache included): what
    the process takes from the card, as a user sees it."""
    import subprocess

    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=True).stdout
    pids = {process.pid, *(p.pid for p in process.children(recursive=True))}
    return sum(int(mib) * 2**20 for pid, mib in (line.split(", ") for line in out.splitlines() if line) if int(pid) in pids)


MEMORY = "VRAM" if torch.cuda.is_available() else "RSS"


def memory_peak(pid: int) -> PolledPeak:
    """Peak VRAM of the server on a GPU (sampled every 50 ms), else its peak resident memory (every 5 ms)."""
    process = psutil.Process(pid)
    if torch.cuda.is_available():
        return PolledPeak(lambda: process_vram(process), interval=0.05)
    return PolledPeak(lambda: process_rss(process))


def timed_windows(frames: int, steps: int) -> int:
    """Windows our 16/4 uniform plan evaluates in the timed steps (indices 1..steps, after the warm-up step 0)."""
    from animdiff.sampling.windows.plan import ContextOptions, context_windows

    options = ContextOptions(16, 4, schedule="uniform", fuse_method="pyramid")
    return sum(len(context_windows(frames, options, step)) for step in range(1, steps + 1))


def peer_timed_windows(peer_dir: Path, frames: int, steps: int) -> int:
    """Windows the peer's standard uniform 16/4 plan evaluates in the timed steps, from its own code (imported
    by path as ``animdiff_peer``; it is not ours: the two plans differ, see docs/benchmarks.md)."""
    import importlib
    import types

    if "animdiff_peer" not in sys.modules:
        package = types.ModuleType("animdiff_peer")
        package.__path__ = [str(peer_dir.resolve())]
        sys.modules["animdiff_peer"] = package
    context = importlib.import_module("animdiff_peer.animatediff.context")
    options = context.ContextOptions(context_length=16, context_overlap=4, context_stride=1,
                                     context_schedule=context.ContextSchedules.UNIFORM_STANDARD)
    total = 0
    for step in range(1, steps + 1):
        options.step = step
        total += len(context.get_context_windows(frames, options))
    return total


def flop_ratio(side: int, frames: int = 16) -> float:
    """Animated/plain FLOPs of one UNet call at ``frames`` x side/8 x side/8 latents (diffusers, meta tensors)."""
    from diffusers import UNet2DConditionModel, UNetMotionModel
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    latent = side // 8
    with torch.device("meta"):
        plain = UNet2DConditionModel(cross_attention_dim=768)
        motion = UNetMotionModel(cross_attention_dim=768, use_motion_mid_block=True, motion_max_seq_length=32)  # v2
        context = torch.empty(frames, 77, 768)
        t = torch.tensor([500.0])

        def flops(model, x):
            # the math kernel: attention as matmuls, which the counter counts on every device
            with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
                model(x, t, encoder_hidden_states=context)
            return counter.get_total_flops()

        return flops(motion, torch.empty(1, 4, frames, latent, latent)) / flops(plain, torch.empty(frames, 4, latent, latent))


def windows(work: Workload, peer_dir: Path | None = None) -> int:
    """UNet evaluations (of 16 frames or fewer, per cond batch) in the timed steps: ours, or the peer's."""
    if not work.windowed:
        return work.steps
    return peer_timed_windows(peer_dir, work.frames, work.steps) if peer_dir else timed_windows(work.frames, work.steps)


def floor(work: Workload, ratios: dict[int, float], evaluations: int) -> float:
    """The FLOP floor of animated/plain: per-call ratio times frames evaluated per frame of video (SD1.5 only: NaN
    for SDXL)."""
    if work.base != "sd15":
        return float("nan")
    if not work.windowed:
        return ratios[work.side]
    return ratios[work.side] * evaluations * 16 / (work.steps * work.frames)


def timings(tmp: Path, work_list: list[Workload], variants: list[str], runs: int, peer_dir: Path | None) -> dict:
    """{(workload, variant): (min seconds of the timed steps, min seconds of the whole KSampler)} from one
    server, runs interleaved."""
    best: dict = {}
    with Server(tmp, peer_dir, "timing") as server:
        for work in work_list:
            for run in range(runs):
                for variant in variants:
                    seconds, whole = server.sampler_seconds(graph(variant, work))
                    key = (work.name, variant)
                    old = best.get(key, (float("inf"), float("inf")))
                    best[key] = (min(old[0], seconds), min(old[1], whole))
                    print(f"  run {run + 1}: {work.name}, {variant}: {seconds:.2f} s timed steps, {whole:.2f} s KSampler", flush=True)
    return best


def peaks(tmp: Path, work_list: list[Workload], variants: list[str], peer_dir: Path | None) -> dict:
    """{(workload, variant): peak server memory (VRAM on a GPU, else RSS) in bytes during the KSampler}, each in a
    fresh server (one run)."""
    result = {}
    for work in work_list:
        for variant in variants:
            with Server(tmp, peer_dir if variant == "peer" else None, f"memory-{variant}") as server:
                peak = memory_peak(server.process.pid)
                server.sampler_seconds(graph(variant, work), peak)
                result[(work.name, variant)] = peak.high
                print(f"  peak: {work.name}, {variant}: {peak.high / 2**20:.0f} MiB", flush=True)
    return result


def frame_curve(tmp: Path, frame_counts: list[int], runs: int, side: int = 64) -> list[dict]:
    """Ours at side x side, 2 steps, 16/4 uniform windows: windows/s and peak memory per frame count, a fresh server each."""
    work = Workload("curve", 0, side, 2, windowed=True)
    rows = []
    for frames in frame_counts:
        with Server(tmp, None, f"curve-{frames}") as server:
            peak = memory_peak(server.process.pid)
            seconds = min(server.sampler_seconds(graph("ours", work, frames), peak)[0] for _ in range(runs))
        windows = timed_windows(frames, work.steps) if frames > 16 else work.steps
        rows.append({"frames": frames, "windows": windows, "seconds": seconds, "windows_per_s": windows / seconds,
                     "peak_mib": peak.high / 2**20})
        print(f"  curve: {frames} frames: {windows} windows in {seconds:.2f} s, peak {peak.high / 2**20:.0f} MiB", flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-dir", type=Path, help="a local AnimateDiff-Evolved checkout (never committed)")
    parser.add_argument("--runs", type=int, default=2, help="timed runs per variant (the minimum is reported)")
    parser.add_argument("--frames", default="16,48,128", help="frame counts for ours' windows/s curve ('' to skip)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory servers")
    parser.add_argument("--quick", action="store_true", help="validate end to end: 1 run, tiny latents, 1 step")
    parser.add_argument("--gpu", action="store_true", help="the GPU workloads: SD1.5 512x512x16 20 steps, 128 frames "
                        "windowed, SDXL 1024x1024x16 (a random full-size SDXL, written once: about 7 GB); peak VRAM")
    parser.add_argument("--only", help="run only the workloads whose name contains this text")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.peer_dir and not (args.peer_dir / "animatediff" / "nodes.py").is_file():
        parser.error(f"--peer-dir {args.peer_dir}: not an AnimateDiff-Evolved checkout (no animatediff/nodes.py)")
    from pack_import import import_pack

    import_pack()
    work_list = [w for w in (QUICK if args.quick else GPU if args.gpu else WORKLOADS) if args.only is None or args.only in w.name]
    if not work_list:
        parser.error(f"--only {args.only!r}: no workload's name contains it")
    for base in {w.base for w in work_list}:  # written once if missing
        (sdxl_checkpoint_path if base == "sdxl" else checkpoint_path)()
        motion_module_path(BASES[base][1])
    runs = 1 if args.quick else args.runs
    frame_counts = [int(f) for f in args.frames.split(",") if f] if not args.quick else [16]  # the windowed runs are above
    variants = ["plain", "ours"] + (["peer"] if args.peer_dir else [])
    ratios = {side: flop_ratio(side) for side in {w.side for w in work_list if w.base == "sd15"}}
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="animdiff-vs-peer-") as tmp_name:
        tmp = Path(tmp_name)
        best = timings(tmp, work_list, variants, runs, args.peer_dir)
        memory = {} if args.no_memory else peaks(tmp, work_list, variants, args.peer_dir)
        curve = frame_curve(tmp, frame_counts, runs, 32 if args.quick else 64) if frame_counts else []
    load = [max(a, b) for a, b in zip(load, os.getloadavg(), strict=True)]

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    print(f"\n{datetime.date.today()}, {device}, min of {runs} run(s), load average up to "
          f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; timed steps, cfg 7.5, euler")
    head = "| workload | plain s | ours/plain | ours' FLOP floor |" + (
        f" peer/plain | peer's FLOP floor | ours/peer | ours/peer per window | ours/peer peak {MEMORY} |" if args.peer_dir else "")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    rows = []
    for work in work_list:
        (plain, plain_whole), (ours, ours_whole) = best[(work.name, "plain")], best[(work.name, "ours")]
        ours_windows = windows(work)
        row = {"workload": work.name, "plain_s": plain, "ours_s": ours, "floor": floor(work, ratios, ours_windows),
               "plain_ksampler_s": plain_whole, "ours_ksampler_s": ours_whole, "ours_windows": ours_windows}
        line = f"| {work.name} | {plain:.2f} | {ours / plain:.3f} | {row['floor']:.3f} |"
        if args.peer_dir:
            peer, row["peer_ksampler_s"] = best[(work.name, "peer")]
            row["peer_s"] = peer
            memory_ratio = (memory[(work.name, "ours")] / memory[(work.name, "peer")]) if memory else float("nan")
            row["peer_windows"] = peer_windows = windows(work, args.peer_dir)
            row["peer_floor"] = floor(work, ratios, peer_windows)
            per_window = (ours / ours_windows) / (peer / peer_windows)
            line += (f" {peer / plain:.3f} | {row['peer_floor']:.3f} | {ours / peer:.3f} | {per_window:.3f} "
                     f"({ours_windows} vs {peer_windows} windows) | {memory_ratio:.3f} |")
        rows.append(row)
        print(line)
    print("whole KSampler node (weights' first touch included): " + "; ".join(
        f"{r['workload']}: ours/plain {r['ours_ksampler_s'] / r['plain_ksampler_s']:.3f}"
        + (f", peer/plain {r['peer_ksampler_s'] / r['plain_ksampler_s']:.3f}" if "peer_s" in r else "") for r in rows))
    if memory:
        print(f"\npeak server {MEMORY} during the KSampler, MiB (each in a fresh server): " + "; ".join(
            f"{work.name}: " + ", ".join(f"{v} {memory[(work.name, v)] / 2**20:.0f}" for v in variants) for work in work_list))
    if curve:
        print(f"\nours, {32 if args.quick else 64} px, 2 steps, 16/4 uniform windows, a fresh server each")
        print(f"| frames | windows | seconds | windows/s | peak {MEMORY} MiB |\n|---|---|---|---|---|")
        for r in curve:
            print(f"| {r['frames']} | {r['windows']} | {r['seconds']:.2f} | {r['windows_per_s']:.2f} | {r['peak_mib']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "curve": curve, "load": load, "device": device,
                                         "memory": {f"{k[0]} | {k[1]}": v for k, v in memory.items()}}, indent=1))


if __name__ == "__main__":
    main()
