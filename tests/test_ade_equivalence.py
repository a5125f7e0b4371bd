"""Converted ADE workflows on AnimDiff against the originals on AnimateDiff-Evolved, both packs in one server (ADE
loaded by path from ``ANIMDIFF_ADE_DIR``, as ``benchmarks/vs_peer.py`` loads it; never committed).

Where the two compute the same thing (Gen1 and Gen2 loaders without windows, v2 and v3 modules, MotionLoRA, motion
strength as ADE's ``effect``) the latents agree within float tolerance. Where they differ by design the test says
so: ADE's ``scale`` (the legacy loader's ``motion_scale``) multiplies each temporal attention's output, ours the
whole residual; context schedules are compared window by window below.
"""

from __future__ import annotations

import copy
import importlib
import os
import sys
import types
from pathlib import Path

import pytest
import torch
from ade_workflows import LORA, MM, gen1, gen2
from comfy_server import ComfyServer
from pack_import import COMFYUI_DIR, PACK_DIR, load_package
from weights import extra_model_paths_yaml, write_all

ADE_DIR = os.environ.get("ANIMDIFF_ADE_DIR")
pytestmark = pytest.mark.skipif(not ADE_DIR, reason="set ANIMDIFF_ADE_DIR to an AnimateDiff-Evolved checkout")
load_package("ade_convert", PACK_DIR / "ade_convert")
from ade_convert import convert  # noqa: E402

MM_V3 = "mm_v3_random.safetensors"


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """A server with this pack and ADE (by path), the random test models and no cache."""
    write_all()
    tmp = tmp_path_factory.mktemp("both")
    yaml = extra_model_paths_yaml(tmp / "models.yaml")
    nodes = tmp / "peer_nodes"
    nodes.mkdir()
    (nodes / "ComfyUI-AnimateDiff-Evolved").symlink_to(Path(ADE_DIR).resolve(), target_is_directory=True)
    yaml.write_text(yaml.read_text() + f"peer_nodes:\n    custom_nodes: {nodes}\n")
    args = ["--extra-model-paths-config", str(yaml), "--output-directory", str(tmp / "output"), "--cache-none"]
    if not torch.cuda.is_available():
        args.append("--cpu")
    with ComfyServer(COMFYUI_DIR, args, tmp / "comfyui.log") as server:
        assert "ADE_UseEvolvedSampling" in server.get("/object_info"), "ADE did not load: see " + str(tmp / "comfyui.log")
        server.output_dir = tmp / "output"
        yield server


def latent_of(server, workflow: dict, prefix: str) -> torch.Tensor:
    """Run ``workflow`` with its sampler's result saved (SaveLatent) and read the latent back."""
    from safetensors.torch import load_file

    graph = copy.deepcopy(workflow)
    for key in ("decode", "save"):
        graph.pop(key, None)
    graph["save"] = {"class_type": "SaveLatent", "inputs": {"samples": ["sampler", 0], "filename_prefix": f"latents/{prefix}"}}
    server.run(graph, timeout=900)
    (path,) = sorted((server.output_dir / "latents").glob(f"{prefix}_*.latent"))
    return load_file(str(path))["latent_tensor"].float()


def lora_gen1() -> dict:
    return gen1({"motion_lora": ["lora", 0]}, lora={"class_type": "ADE_AnimateDiffLoRALoader", "inputs": {"name": LORA, "strength": 0.8}})


def effect_gen2() -> dict:
    graph = gen2({"class_type": "ADE_ApplyAnimateDiffModelSimple", "inputs": {"motion_model": ["load", 0], "effect_multival": ["mv", 0]}})
    graph["mv"] = {"class_type": "ADE_MultivalDynamic", "inputs": {"float_val": 0.6}}
    return graph


def v3_gen2() -> dict:
    graph = gen2({"class_type": "ADE_ApplyAnimateDiffModelSimple", "inputs": {"motion_model": ["load", 0]}})
    graph["load"]["inputs"]["model_name"] = MM_V3
    return graph


SAME = {"gen1_v2": gen1, "gen2_v3": v3_gen2, "gen1_motion_lora": lora_gen1, "gen2_effect_0.6": effect_gen2}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SAME))
def test_converted_workflow_on_ours_equals_the_original_on_ade(both, case):
    original = SAME[case]()
    converted, report = convert(original)
    assert report.unsupported == [] and report.approximated == [], report.approximated
    theirs, ours = latent_of(both, original, f"ade_{case}"), latent_of(both, converted, f"ours_{case}")
    plain = latent_of(both, {k: v for k, v in original.items() if k != "ade"} | {"sampler": {
        **original["sampler"], "inputs": {**original["sampler"]["inputs"], "model": ["ckpt", 0]}}}, f"plain_{case}") \
        if "ade" in original else None
    scale = theirs.abs().max().item()
    print(f"{case}: max |ours - ADE| = {(ours - theirs).abs().max().item():.3g} (latents up to {scale:.3g})")
    assert torch.allclose(ours, theirs, atol=2e-3 * scale, rtol=0), (ours - theirs).abs().max().item()
    if plain is not None:  # the motion module does something (the comparison can fail)
        assert (theirs - plain).abs().max().item() > 10 * (ours - theirs).abs().max().item()


@pytest.mark.slow
def test_legacy_motion_scale_differs_and_says_why(both):
    """ADE's legacy motion_scale is its ``scale`` (attention outputs); ours scales the residual: named, not hidden."""
    graph = gen1()
    graph["ade"] = {"class_type": "ADE_AnimateDiffLoaderWithContext", "inputs": {
        "model": ["ckpt", 0], "model_name": MM, "beta_schedule": "autoselect", "motion_scale": 0.5, "apply_v2_models_properly": True}}
    converted, report = convert(graph)
    (item,) = report.approximated
    assert "scale multiplies each temporal attention's output" in item["differs"]
    theirs, ours = latent_of(both, graph, "ade_scale"), latent_of(both, converted, "ours_scale")
    assert not torch.allclose(ours, theirs, atol=1e-4)


def ade_context():
    if "animdiff_peer" not in sys.modules:
        package = types.ModuleType("animdiff_peer")
        package.__path__ = [str(Path(ADE_DIR).resolve())]
        sys.modules["animdiff_peer"] = package
    return importlib.import_module("animdiff_peer.animatediff.context")


SCHEDULES = {  # ADE node -> (ADE schedule, the windows agree step by step)
    "ADE_StandardStaticContextOptions": ("standard_static", True),
    "ADE_BatchedContextOptions": ("batched", True),
    "ADE_StandardUniformContextOptions": ("standard_uniform", False),
    "ADE_LoopedUniformContextOptions": ("looped_uniform", False),
}


@pytest.mark.parametrize("ade_id", sorted(SCHEDULES))
@pytest.mark.parametrize("frames", [24, 48, 64])
def test_context_windows_cover_the_video_as_ades_do(ade_id, frames):
    """Static and batched: the same windows as ADE's; uniform schedules: both cover every frame at every step,
    ADE's with a different number of windows (named in the report and docs/ade-workflows.md)."""
    from animdiff.sampling.windows.plan import ContextOptions, context_windows

    schedule, same = SCHEDULES[ade_id]
    ctx = ade_context()
    converted, report = convert({"1": {"class_type": ade_id, "inputs": {"context_length": 16, "context_overlap": 4, "context_stride": 1}}})
    inputs = converted["1"]["inputs"]
    ours = ContextOptions(inputs["context_length"], inputs["context_overlap"], inputs["context_stride"], inputs["closed_loop"],
                          inputs["schedule"], inputs["fuse_method"])
    theirs = ctx.ContextOptions(context_length=16, context_overlap=4 if schedule != "batched" else None, context_stride=1,
                                context_schedule=schedule, closed_loop=False)
    for step in range(8):
        theirs.step = step
        ade_windows = ctx.get_context_windows(frames, theirs)
        our_windows = context_windows(frames, ours, step)
        assert set().union(*map(set, our_windows)) == set(range(frames)) == set().union(*map(set, ade_windows))
        if same:
            assert sorted(map(list, ade_windows)) == sorted(our_windows), step
    assert bool(report.approximated) != same
