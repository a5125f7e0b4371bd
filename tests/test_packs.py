"""Other packs inside our context windows: Advanced-ControlNet, IPAdapter_plus, VideoHelperSuite (real checkouts, real server).

The oracle: on a plain SD model each frame's prediction depends on that frame's inputs only and a frame's fuse weights
sum to 1, so ``AnimDiffApplyContextOptions`` must give the latents the same graph gives without windows, at every
``windows_per_call``; a pack input cut wrongly in a window shows at exactly those frames. With a motion module (and for
SparseCtrl, whose own temporal layers couple the frames of a window) batched windows must equal one window per call,
and an Advanced-ControlNet control must equal the stock one it stands for.

The packs are never committed: ``ANIMDIFF_PACKS_DIR`` names a folder with one checkout per pack (docs/compatibility.md, *Other packs*).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import safetensors.torch
import torch
from comfy_server import PromptError, linked_custom_nodes, output_files
from graphs import WORKFLOWS, shipped
from pack_graphs import (
    EMBEDS,
    FRAMES,
    IPADAPTER,
    NEG_EMBEDS,
    VIDEO_EMBEDS,
    WINDOWS_PER_CALL,
    controlnet_graph,
    ipadapter_graph,
    keyframe_nodes,
    pack_workflow_on_test_models,
)
from pack_import import PACK_DIR, load_package
from servers import comfy_test_server
from weights import CLIP_VISION, SPARSECTRL, clip_vision_path
from workflow_ui import OTHER_PACKS, inputs_of, is_widget, pack_properties, ui_to_api

load_package("ade_convert", PACK_DIR / "ade_convert")
from ade_convert.table import NEEDS_ADE  # noqa: E402

PACKS = tuple(OTHER_PACKS)  # the checkouts ANIMDIFF_PACKS_DIR holds, by folder name
PACKS_DIR = os.environ.get("ANIMDIFF_PACKS_DIR")
pytestmark = pytest.mark.skipif(not PACKS_DIR, reason="ANIMDIFF_PACKS_DIR is unset: a folder with checkouts of "
                                f"{', '.join(PACKS)} (docs/compatibility.md, Other packs)")
TOLERANCE = 1e-3  # latents (values of order 1) of the same graph with and without windows: float summation order only


def checkouts() -> dict[str, Path]:
    missing = [name for name in PACKS if not (Path(PACKS_DIR) / name).is_dir()]
    if missing:
        pytest.fail(f"ANIMDIFF_PACKS_DIR={PACKS_DIR} lacks {', '.join(missing)} (one checkout per pack, named as the pack)")
    return {name: Path(PACKS_DIR) / name for name in PACKS}


def write_ipadapter(path: Path, seed: int = 11) -> None:
    """Random ip-adapter_sd15 weights in the official layout, as IPAdapter_plus's loader reads them: ``image_proj``
    (ImageProjModel: 1024-d CLIP-ViT-H image embeds -> 4 tokens of 768) and ``ip_adapter.{2n+1}.to_k_ip/to_v_ip`` for the
    16 cross-attentions of the SD1.5 UNet in its patch order: input blocks, output blocks, middle."""
    gen = torch.Generator().manual_seed(seed)
    dims = [320, 320, 640, 640, 1280, 1280] + [1280] * 3 + [640] * 3 + [320] * 3 + [1280]
    tensors = {"image_proj.proj.weight": torch.randn(4 * 768, 1024, generator=gen) * 0.03,
               "image_proj.proj.bias": torch.zeros(4 * 768),
               "image_proj.norm.weight": torch.ones(768), "image_proj.norm.bias": torch.zeros(768)}
    for n, dim in enumerate(dims):
        for kv in ("k", "v"):
            tensors[f"ip_adapter.{2 * n + 1}.to_{kv}_ip.weight"] = torch.randn(dim, 768, generator=gen) * 0.05
    safetensors.torch.save_file({k: v.half() for k, v in tensors.items()}, path)


@pytest.fixture(scope="module")
def packs_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("packs")
    nodes = linked_custom_nodes(tmp / "other_packs", checkouts())
    with comfy_test_server(tmp, nodes, ("ipadapter", "clip_vision")) as running:
        write_ipadapter(running.scratch / "ipadapter" / IPADAPTER)
        torch.save(torch.randn(FRAMES, 1024, generator=torch.Generator().manual_seed(5)), running.input_dir / EMBEDS)
        torch.save(torch.randn(24, 1024, generator=torch.Generator().manual_seed(6)), running.input_dir / VIDEO_EMBEDS)
        torch.save(torch.zeros(24, 1024), running.input_dir / NEG_EMBEDS)
        yield running


@pytest.fixture(autouse=True)
def models_unloaded(packs_server):
    """Each prompt loads its models anew (no cache): unload them after each test, or a CPU server keeps them all."""
    yield
    packs_server.post("/free", {"unload_models": True, "free_memory": True})


def latents(server, prompt: dict) -> dict[str, torch.Tensor]:
    """The saved latents of each branch of ``prompt``, by branch name (the SaveLatent prefix)."""
    files = output_files(server.run(prompt), server.output_dir)
    return {path.name.rsplit("_", 2)[0]: safetensors.torch.load_file(path)["latent_tensor"] for path in files}


def frames_off(a: torch.Tensor, b: torch.Tensor, tolerance: float = TOLERANCE) -> dict[int, float]:
    """Frame -> max |a - b| for the frames that differ by more than ``tolerance``."""
    diff = (a - b).abs().flatten(1).amax(1)
    return {i: round(float(d), 5) for i, d in enumerate(diff) if d > tolerance}


def assert_all_equal(out: dict[str, torch.Tensor], reference: str, names) -> None:
    wrong = {name: frames_off(out[name], out[reference]) for name in names}
    assert not any(wrong.values()), f"frames that differ from {reference}: {wrong}"


def assert_windows_equal_whole(out: dict[str, torch.Tensor]) -> None:
    assert out["whole"].shape[0] == FRAMES and torch.isfinite(out["whole"]).all()
    assert_all_equal(out, "whole", [f"wpc{n}" for n in WINDOWS_PER_CALL])


@pytest.mark.slow  # several samplings of 16 frames on the full-size test model (minutes on two shared cores)
def test_acn_per_frame_hints_and_masks_in_windows(packs_server):
    out = latents(packs_server, controlnet_graph([("acn", "acn", {"mask_optional": ["masks", 0]})], plain=True))
    assert_windows_equal_whole(out)
    assert len(frames_off(out["whole"], out["plain"])) == FRAMES  # the control steers every frame


@pytest.mark.slow  # several samplings of 16 frames on the full-size test model (minutes on two shared cores)
def test_acn_timestep_and_latent_keyframes_in_windows(packs_server):
    """Latent keyframes on frames two windows share: with several windows per call each frame is there once."""
    out = latents(packs_server, controlnet_graph([("acn", "acn", {"timestep_kf": ["tk1", 0], "latent_kf_override": ["lkf", 0]})],
                                                 keyframe_nodes(), steps=2))
    assert_windows_equal_whole(out)


@pytest.mark.slow  # several samplings of 16 frames on the full-size test model (minutes on two shared cores)
@pytest.mark.parametrize("order", ["acn_over_stock", "stock_over_acn"])
def test_acn_and_stock_controlnet_chained_in_windows(packs_server, order):
    """The control applied last is on top: its chain below must be the window's copy too."""
    steps = [("stock", "cn", {}), ("acn", "acn", {"mask_optional": ["masks", 0]})]
    out = latents(packs_server, controlnet_graph(steps if order == "acn_over_stock" else steps[::-1]))
    assert_windows_equal_whole(out)


MOTION_MODULE = "mm_v3_random.safetensors"


@pytest.mark.slow  # two samplings with a motion module and SparseCtrl
@pytest.mark.parametrize("applies, stock", [
    ([("stock", "sc", {}), ("acn", "acn", {})], [("stock", "sc", {}), ("stock", "cn", {})]),  # ACN over our SparseCtrl
    ([("acn", "acn", {}), ("stock", "sc", {})], [("stock", "cn", {}), ("stock", "sc", {})]),  # our SparseCtrl over ACN
    ([("acn", "sc", {})], [("stock", "sc", {})]),  # our SparseCtrl through ACN's apply node
], ids=["acn_over_sparsectrl", "sparsectrl_over_acn", "sparsectrl_through_acn_apply"])
def test_acn_and_our_sparsectrl_chained_in_windows(packs_server, applies, stock):
    """SparseCtrl's own temporal layers couple a window's frames, so windows differ from none: the oracle is the same
    chain with the stock apply node, whose slicing the core tests prove (ACN's default weights are the stock ones)."""
    out = {name: latents(packs_server, controlnet_graph(chain, motion_module=MOTION_MODULE, whole=False, windows_per_call=(0,)))["wpc0"]
           for name, chain in (("acn", applies), ("stock", stock))}
    assert_all_equal(out, "stock", ["acn"])


@pytest.mark.slow  # several samplings of 16 frames on the full-size test model (minutes on two shared cores)
def test_with_a_motion_module_batched_windows_equal_one_by_one(packs_server):
    """ACN hints, mask, timestep and latent keyframes, and IPAdapter per-frame embeds, mask and weights together."""
    prompt = ipadapter_graph(MOTION_MODULE, whole=False, controlnet=True)
    prompt["apply0"]["inputs"].update(timestep_kf=["tk1", 0], latent_kf_override=["lkf", 0])
    prompt.update(keyframe_nodes())
    out = latents(packs_server, prompt)
    assert_all_equal(out, "wpc1", ["wpc0", "wpc2"])


@pytest.mark.slow  # several samplings of 16 frames on the full-size test model (minutes on two shared cores)
def test_ipadapter_batch_embeds_masks_and_weights_in_windows(packs_server):
    out = latents(packs_server, ipadapter_graph(plain=True))
    assert_windows_equal_whole(out)
    assert len(frames_off(out["whole"], out["plain"])) == FRAMES  # the embeds steer every frame


@pytest.mark.slow  # the CLIP-vision encoding of 16 frames by a full-size ViT-H, then several samplings of 16 frames
def test_ipadapter_batch_images_through_clip_vision_in_windows(packs_server):
    """IPAdapterBatch: the frames encoded by a full-size random CLIP ViT-H (ComfyUI's loader's layout), one embed per
    frame, with the per-frame mask and weights; windows batched and one by one equal no windows."""
    (packs_server.scratch / "clip_vision" / CLIP_VISION).symlink_to(clip_vision_path())
    out = latents(packs_server, ipadapter_graph(plain=True, clip_vision=CLIP_VISION))
    assert_windows_equal_whole(out)
    assert len(frames_off(out["whole"], out["plain"])) == FRAMES  # the images steer every frame


def acn_sparsectrl_prompt() -> dict:
    """ACN's SparseCtrl loader into ACN's apply node, 3 keyframes spread over 16 frames (ACN's default spread)."""
    prompt = controlnet_graph([("acn", "sc", {})], whole=True, windows_per_call=())
    prompt["sc"] = {"class_type": "ACN_SparseCtrlLoaderAdvanced", "inputs": {
        "sparsectrl_name": SPARSECTRL["scribble"], "use_motion": True, "motion_strength": 1.0, "motion_scale": 1.0}}
    return prompt


def test_acn_sparsectrl_loaders_are_offered_as_ours_without_animatediff_evolved(packs_server):
    """ACN's own SparseCtrl loaders build their motion layers through AnimateDiff-Evolved and fail without it, before any
    of our code runs (we never pretend to be ADE; ComfyUI's on_prompt handlers cannot refuse a prompt: docs/compatibility.md).
    Our way out, through the HTTP API on the real ACN: the pack's route names them, and the converter rewrites the loader
    into AnimDiffLoadSparseCtrl into the same ACN apply node, with ACN's declared inputs read right."""
    prompt = acn_sparsectrl_prompt()
    with pytest.raises(PromptError, match="AnimateDiff-Evolved nodes need to be installed"):
        packs_server.run(prompt)
    assert packs_server.get("/animdiff/ade/needs-ade") == sorted(NEEDS_ADE)
    info = packs_server.get("/object_info")
    for acn_id, entry in NEEDS_ADE.items():
        if entry.rule:  # the table reads ACN's inputs by name and (UI format) widget position: ACN's own order
            declared = [(name, is_widget(spec)) for name, spec, _ in inputs_of(info[acn_id])]
            assert declared == [(i.name, i.widget) for i in entry.inputs], acn_id
    answer = packs_server.post("/animdiff/ade/convert", {"workflow": prompt, "name": "acn_sparsectrl"})
    converted = answer["workflow"]
    assert converted["sc"]["class_type"] == "AnimDiffLoadSparseCtrl", converted["sc"]
    assert converted["apply0"] == prompt["apply0"]  # ACN's apply node stays, fed by ours
    assert [item["ade_class"] for item in answer["report"]["approximated"]] == ["ACN_SparseCtrlLoaderAdvanced"]
    merged = {"m": {"class_type": "ACN_SparseCtrlMergedLoaderAdvanced", "inputs": {}}}
    report = packs_server.post("/animdiff/ade/convert", {"workflow": {**prompt, **merged}, "name": "merged"})["report"]
    assert [(u["ade_class"], "AnimDiffLoadSparseCtrl" in u["reason"]) for u in report["unsupported"]] == [("ACN_SparseCtrlMergedLoaderAdvanced", True)]


@pytest.mark.slow  # two samplings of 16 frames with SparseCtrl
def test_converted_acn_sparsectrl_loader_runs_as_ours(packs_server):
    """The converted prompt runs through ACN's apply node and equals AnimDiffLoadSparseCtrl at the frames ours spreads
    the keyframes to (0, 8, 15: evenly, rounded)."""
    prompt = acn_sparsectrl_prompt()
    converted = packs_server.post("/animdiff/ade/convert", {"workflow": prompt, "name": "acn_sparsectrl"})["workflow"]
    direct = {"sc_direct": {"class_type": "AnimDiffLoadSparseCtrl", "inputs": {
                  "sparsectrl_name": SPARSECTRL["scribble"], "frame_indices": "0,8,15"}},
              "apply_direct": {**converted["apply0"], "inputs": {**converted["apply0"]["inputs"], "control_net": ["sc_direct", 0]}},
              "sample_direct": {**converted["sample_whole"], "inputs": {**converted["sample_whole"]["inputs"],
                                                                       "positive": ["apply_direct", 0], "negative": ["apply_direct", 1]}},
              "save_direct": {"class_type": "SaveLatent", "inputs": {"samples": ["sample_direct", 0], "filename_prefix": "direct"}}}
    out = latents(packs_server, {**converted, **direct})
    assert_all_equal(out, "direct", ["whole"])


PACK_WORKFLOWS = sorted(p.name.removesuffix(".api.json") for p in (WORKFLOWS / "packs").glob("*.api.json"))


@pytest.mark.slow  # several samplings of 16 frames on the full-size test model (minutes on two shared cores)
@pytest.mark.parametrize("name", PACK_WORKFLOWS)
def test_pack_workflow_runs_and_saves_through_videohelpersuite(packs_server, name):
    """VHS_LoadVideo -> our windowed vid2vid (8-frame windows here) -> VHS_VideoCombine, as shipped but on the test models."""
    files = output_files(packs_server.run(pack_workflow_on_test_models(shipped(f"packs/{name}.api.json"))), packs_server.output_dir)
    (video,) = [f for f in files if f.suffix == ".webp"]
    assert video.stat().st_size > 1000


@pytest.mark.parametrize("name", PACK_WORKFLOWS)
def test_pack_ui_workflow_is_its_api_twin_and_names_its_packs(packs_server, name):
    info = packs_server.get("/object_info")
    ui = shipped(f"packs/{name}.json")
    assert ui_to_api(ui, info) == shipped(f"packs/{name}.api.json")
    sources = {"custom_nodes." + folder: props for folder, props in OTHER_PACKS.items()}
    for node in ui["nodes"]:
        module = info[node["type"]]["python_module"]
        expected = sources.get(module) or (pack_properties() if module.startswith("custom_nodes.") else None)
        if expected:
            assert {k: node["properties"][k] for k in ("cnr_id", "ver")} == expected, node["type"]
