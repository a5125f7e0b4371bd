"""Where an animated sampling step spends its time above the FLOP floor (issue 16), in-process.

Random full-size SD1.5 + the official-layout v2 module (``tests/weights.py``), cfg 7.5, euler, 64x64
pixels. For each workload (16 frames in one pass; 48 frames in 16/4 uniform pyramid windows) it
times plain and animated sampling (one warm-up step first, then ``--steps`` timed), then profiles the
animated run twice: cProfile for the pack's Python (window slicing, ``placements()`` + slot insertion
+ hooks, einops rearranges, motion modules, UNet calls) and torch.profiler for the aten ops (copies
vs GEMMs vs attention), plain next to animated. ``--compile`` instead counts TorchDynamo compiles,
recompiles and graph breaks of ComfyUI's ``TorchCompileModel`` wrapper (``set_torch_compile_wrapper``,
backend ``eager`` by default: the recompile question is Dynamo's, not the backend's) over a few steps,
plain and animated.

    flock /tmp/animdiff-heavy.lock env PYTHONSAFEPATH=1 .cache/venv-test/bin/python benchmarks/profile_overheads.py [--steps 2]
    flock /tmp/animdiff-heavy.lock env PYTHONSAFEPATH=1 .cache/venv-test/bin/python benchmarks/profile_overheads.py --compile [--backend eager]

``--per-call`` times the pack's own work around one UNet call piece by piece (each the minimum over many runs;
the wrapper as a whole with the UNet's place taken by a function returning a fixed output), next to one
16-frame cond + uncond UNet call at 64x64 pixels, plain and animated (v2, and v1 for its cross-frame norm hooks).

    flock /tmp/animdiff-heavy.lock env PYTHONSAFEPATH=1 .cache/venv-test/bin/python benchmarks/profile_overheads.py --per-call
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))


def functions() -> list[tuple[str, object]]:
    """(label, function): the pack's per-call and per-window work, and the big blocks (matched by code object)."""
    import comfy.samplers
    import einops
    from animdiff.animate import model as patcher
    from animdiff.motion_module import injection, transformer
    from animdiff.sampling.windows import evaluation as windowed
    from animdiff.sampling.windows import plan as context
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    return [
        ("WindowedEvaluation (all windows)", windowed.WindowedEvaluation.__call__),
        ("  slice_cond", windowed.slice_cond),
        ("  slice_control", windowed.slice_control),
        ("  context_windows", context.context_windows),
        ("  fuse_weights", context.fuse_weights),
        ("MotionWrapper (per UNet call)", patcher.MotionWrapper.__call__),
        ("  motion_injected set-up + tear-down", injection.motion_injected.__wrapped__),
        ("    placements()", injection.placements),
        ("UNetModel._forward (UNet calls)", UNetModel._forward),
        ("  motion modules (TemporalModule.forward)", transformer.TemporalModule.forward),
        ("  einops rearrange (everywhere)", einops.rearrange),
        ("calc_cond_batch (ComfyUI, per call)", comfy.samplers._calc_cond_batch),
    ]


def setup(windowed: bool):
    from pack_import import import_pack

    import_pack()
    import comfy.sd
    from animdiff.animate.model import apply_motion_module
    from animdiff.motion_module import load_motion_module
    from animdiff.sampling.windows.plan import ContextOptions
    from weights import checkpoint_path, motion_module_path

    import nodes

    model, clip = comfy.sd.load_checkpoint_guess_config(str(checkpoint_path()), output_vae=False, output_clip=True)[:2]
    motion_module = load_motion_module(motion_module_path("mm_v2_random.safetensors"))
    options = ContextOptions(16, 4, schedule="uniform", fuse_method="pyramid") if windowed else None
    animated = apply_motion_module(model, motion_module, "autoselect", context_options=options)
    positive = nodes.CLIPTextEncode().encode(clip, "a paper boat on a rainy street")[0]
    negative = nodes.CLIPTextEncode().encode(clip, "blurry")[0]
    return model, animated, positive, negative


def sample(model, frames: int, steps: int, positive, negative, callback=None):
    import comfy.sample
    import torch

    x = torch.zeros(frames, 4, 8, 8)
    return comfy.sample.sample(model, torch.randn_like(x), steps, 7.5, "euler", "normal", positive, negative, x,
                               seed=0, disable_pbar=True, callback=callback)


def timed_steps(model, frames, steps, positive, negative) -> float:
    """Seconds of the ``steps`` steps after one warm-up step (the sampler's per-step callback)."""
    marks = []
    sample(model, frames, steps + 1, positive, negative, callback=lambda *a: marks.append(time.perf_counter()))
    return marks[-1] - marks[0]


def cprofile_table(model, frames, steps, positive, negative):
    profile = cProfile.Profile()
    sample(model, frames, 1, positive, negative)  # warm-up
    profile.enable()
    sample(model, frames, steps, positive, negative)
    profile.disable()
    stats = pstats.Stats(profile).stats
    total = sum(tt for (_, _, _), (_, _, tt, _, _) in stats.items())
    print(f"    cProfile (profiled total {total:.2f} s; cProfile inflates Python-heavy parts)")
    for label, function in functions():
        code = function.__code__
        hit = stats.get((code.co_filename, code.co_firstlineno, code.co_name))
        if hit:
            calls, cumulative = hit[0], hit[3]
            print(f"    {label:45s} {calls:6d} calls {cumulative:8.3f} s  {100 * cumulative / total:5.1f} %")


def torch_ops(model, frames, steps, positive, negative, label, top: int = 12):
    from torch.profiler import ProfilerActivity, profile

    sample(model, frames, 1, positive, negative)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        sample(model, frames, steps, positive, negative)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    print(f"    torch ops, {label}: self CPU total {total / 1e6:.2f} s")
    for e in events[:top]:
        print(f"      {e.key:55s} {e.count:7d} calls {e.self_cpu_time_total / 1e6:7.3f} s {100 * e.self_cpu_time_total / total:5.1f} %")


class RecompileLog(logging.Handler):
    """Counts Dynamo's ``Recompiling function`` log records (TORCH_LOGS=recompiles) per sampling step."""

    def __init__(self, marks: list):
        super().__init__()
        self.marks = marks
        self.per_step: dict[int, int] = {}
        self.hit_limit = 0

    def emit(self, record):
        message = record.getMessage()
        step = len(self.marks) + 1
        if "Recompiling function" in message:
            self.per_step[step] = self.per_step.get(step, 0) + 1
        if "hit config.recompile_limit" in message:
            self.hit_limit += 1


def compile_counts(model, frames, steps, positive, negative, backend: str, label: str):
    import torch
    import torch._dynamo
    from comfy_api.torch_helpers import set_torch_compile_wrapper

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = model.clone()
    set_torch_compile_wrapper(model=compiled, backend=backend)
    marks = []
    log = RecompileLog(marks)
    logging.getLogger("torch._dynamo").addHandler(log)  # "torch" itself does not see them
    start = time.perf_counter()
    try:
        sample(compiled, frames, steps, positive, negative, callback=lambda *a: marks.append(time.perf_counter()))
    finally:
        logging.getLogger("torch._dynamo").removeHandler(log)
    counters = torch._dynamo.utils.counters
    steps_s = [round(b - a, 2) for a, b in zip([start, *marks], marks, strict=False)]
    print(f"    {label}: {steps} steps (one UNet call each), seconds per step {steps_s}; recompiles per step "
          f"{[log.per_step.get(i, 0) for i in range(1, steps + 1)]}, functions at the recompile limit {log.hit_limit}; "
          f"frames compiled {dict(counters['frames'])}, unique graphs {counters['stats'].get('unique_graphs')}, "
          f"graph breaks {sum(counters['graph_break'].values())}")
    for reason, count in list(counters["graph_break"].items())[:6]:
        print(f"      graph break x{count}: {reason.splitlines()[0][:160]} | {' '.join(reason.splitlines()[1:2])[:160]}")


def min_seconds(function, number: int) -> float:
    """The fastest of five rounds of ``number`` calls, per call."""
    import timeit

    function()
    return min(timeit.repeat(function, number=number, repeat=5)) / number


def per_call(repeats: int):
    model, animated, positive, negative = setup(windowed=False)
    import comfy.patcher_extension
    import torch
    from animdiff.animate.model import check_finite_output
    from animdiff.motion_module import load_motion_module
    from animdiff.motion_module.injection import motion_injected, placements
    from animdiff.touchpoints import WrapperKeys
    from weights import motion_module_path

    unet = model.model.diffusion_model
    (wrapper,) = animated.get_wrappers(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WrapperKeys.MOTION_MODULE)
    networks = {"v2": wrapper.motion_module.network,
                "v1": load_motion_module(motion_module_path("mm_v1_random.safetensors")).network}
    frames, videos = 16, 2
    x = torch.randn(videos * frames, 4, 8, 8)
    t = torch.full((videos * frames,), 500.0)
    context = torch.cat([positive[0][0], negative[0][0]]).repeat_interleave(frames, 0)
    sigmas = torch.tensor([5.0])
    with torch.no_grad():
        out = unet(x, t, context)

    def wrapped_stub():  # the wrapper around a function in the UNet's place, as ComfyUI calls it
        options = {"cond_or_uncond": [0, 1], "sigmas": sigmas}
        executor = comfy.patcher_extension.WrapperExecutor.new_class_executor(lambda *args, **kwargs: out, unet, [wrapper])
        return executor.execute(x, t, context, None, None, options)

    def injected(network):
        with motion_injected(unet, network, frames, 1.0):
            pass

    pieces = [
        ("placements() v2", lambda: placements(unet, networks["v2"].config)),
        ("motion_injected set-up + tear-down v2", lambda: injected(networks["v2"])),
        ("motion_injected set-up + tear-down v1", lambda: injected(networks["v1"])),
        ("check_finite_output", lambda: check_finite_output(out, wrapper.motion_module)),
        ("MotionStrength.at (motion_scale 1)", lambda: wrapper.strength.at(sigmas, list(range(frames)), frames, videos)),
        ("MotionWrapper.__call__ v2, all but the UNet", wrapped_stub),
    ]
    results = {label: min_seconds(function, 200) for label, function in pieces}
    for key, side in (("down_blocks.0.motion_modules.0", 8), ("up_blocks.1.motion_modules.0", 2)):
        module = networks["v2"].module_at(key)
        h = torch.randn(videos * frames, module.temporal_transformer.norm.num_channels, side, side)
        with torch.no_grad():
            results[f"one motion module, {key} ({list(h.shape)})"] = min_seconds(lambda m=module, h=h: m(h, frames), 20)

    def unet_call(network):
        with torch.no_grad():
            if network is None:
                return unet(x, t, context)
            with motion_injected(unet, network, frames, 1.0):
                return unet(x, t, context)

    calls = {"plain": None, "animated v2": networks["v2"]}
    timed = {label: [] for label in calls}
    for _ in range(repeats):  # interleaved, so that a change in the machine's load hits both alike
        for label, network in calls.items():
            timed[label].append(timed_once(lambda n=network: unet_call(n)))
    timed = {label: min(seconds) for label, seconds in timed.items()}
    call = timed["animated v2"]
    print(f"per-call work (ms, min of 5 x 200) and its fraction of one animated v2 UNet call ({frames} frames x {videos} conds, "
          f"64x64 px, CPU, {torch.get_num_threads()} threads, min of {repeats}: {call * 1e3:.0f} ms; plain {timed['plain'] * 1e3:.0f} ms)")
    for label, seconds in results.items():
        print(f"  {label:50s} {seconds * 1e3:8.4f} ms  {seconds / call:9.2e}")


def timed_once(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="timed / profiled steps")
    parser.add_argument("--compile", action="store_true", help="count TorchCompileModel recompiles instead")
    parser.add_argument("--per-call", action="store_true", help="time the per-call work piece by piece instead")
    parser.add_argument("--repeats", type=int, default=5, help="UNet calls timed for --per-call (the minimum counts)")
    parser.add_argument("--backend", default="eager", help="torch.compile backend for --compile (the node offers inductor)")
    args = parser.parse_args()
    import torch

    torch.manual_seed(0)
    if args.per_call:
        per_call(args.repeats)
        return
    if args.compile:
        torch._logging.set_logs(recompiles=True, graph_breaks=True)
        logging.getLogger("torch._dynamo").setLevel(logging.INFO)
        model, animated, positive, negative = setup(windowed=False)
        compile_counts(model, 16, args.steps + 1, positive, negative, args.backend, "plain, 16 frames")
        compile_counts(animated, 16, args.steps + 1, positive, negative, args.backend, "animated, 16 frames")
        return
    for frames, windowed in ((16, False), (48, True)):
        model, animated, positive, negative = setup(windowed)
        plain = timed_steps(model, frames, args.steps, positive, negative)
        ours = timed_steps(animated, frames, args.steps, positive, negative)
        print(f"{frames} frames 64x64{' windows 16/4 uniform pyramid' if windowed else ''}, {args.steps} timed steps, cfg 7.5: "
              f"plain {plain:.2f} s, animated {ours:.2f} s, ratio {ours / plain:.3f}")
        cprofile_table(animated, frames, args.steps, positive, negative)
        torch_ops(model, frames, args.steps, positive, negative, "plain")
        torch_ops(animated, frames, args.steps, positive, negative, "animated")


if __name__ == "__main__":
    main()
