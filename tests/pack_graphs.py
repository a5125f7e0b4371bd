"""API-format graphs with other packs' nodes (Advanced-ControlNet, IPAdapter_plus, VideoHelperSuite) for tests/test_packs.py.

Every graph samples 16 frames of the test video (32x32, 1 or 2 steps, CFG 2) once per branch: ``whole`` (no windows) and
``wpc0``/``wpc1``/``wpc2`` (three 8-frame static windows: 0-7, 6-13, 8-15, at that ``windows_per_call``), each saved as latents
with its branch name as the file prefix. The conditioning (and the model patches) under test are shared by the branches.
"""

from __future__ import annotations

from graphs import on_test_models
from weights import CHECKPOINT, CONTROLNET, SPARSECTRL

FRAMES = 16
WINDOWS_PER_CALL = (0, 1, 2)  # 0: as many as fit (here all three windows in one call), 1: one by one, N = 2
IPADAPTER = "ip-adapter_sd15_random.safetensors"
EMBEDS = "frame_embeds.ipadpt"  # written by the test into the server's input folder: (16, 1024) CLIP-vision image embeds
NEG_EMBEDS = "zero_embeds.ipadpt"  # (24, 1024) zeros: the negative embeds IPAdapter_plus would take for this model


def base(motion_module: str | None = None) -> tuple[dict, list]:
    """Checkpoint, prompts, the test video as images and latents, per-frame masks (its red channel), the controls; and
    the model (with ``motion_module`` applied, without windows)."""
    prompt = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": "a dancer on a stage"}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": "blurry"}},
        "video": {"class_type": "LoadVideo", "inputs": {"file": "input.mp4"}},
        "components": {"class_type": "GetVideoComponents", "inputs": {"video": ["video", 0]}},
        "frames": {"class_type": "ImageFromBatch", "inputs": {"image": ["components", 0], "batch_index": 0, "length": FRAMES}},
        "latent": {"class_type": "VAEEncode", "inputs": {"pixels": ["frames", 0], "vae": ["ckpt", 2]}},
        "masks": {"class_type": "ImageToMask", "inputs": {"image": ["frames", 0], "channel": "red"}},
        "cn": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": CONTROLNET}},
        "acn": {"class_type": "ACN_ControlNetLoaderAdvanced", "inputs": {"cnet": CONTROLNET}},
        "sc": {"class_type": "AnimDiffLoadSparseCtrl", "inputs": {"sparsectrl_name": SPARSECTRL["scribble"], "frame_indices": "0,7,15"}},
        "keys": {"class_type": "ImageFromBatch", "inputs": {"image": ["frames", 0], "batch_index": 0, "length": 3}},
    }
    model = ["ckpt", 0]
    if motion_module:
        prompt["mm"] = {"class_type": "AnimDiffLoadMotionModule", "inputs": {"model_name": motion_module}}
        prompt["anim"] = {"class_type": "AnimDiffApplyMotionModule", "inputs": {
            "model": model, "motion_module": ["mm", 0], "beta_schedule": "autoselect", "motion_scale": 1.0,
            "start_percent": 0.0, "end_percent": 1.0}}
        model = ["anim", 0]
    return prompt, model


def stock_apply(name: str, positive, negative, control: str, image, strength: float = 0.9) -> dict:
    return {name: {"class_type": "ControlNetApplyAdvanced", "inputs": {
        "positive": positive, "negative": negative, "control_net": [control, 0], "image": image, "strength": strength,
        "start_percent": 0.0, "end_percent": 1.0, "vae": ["ckpt", 2]}}}


def acn_apply(name: str, positive, negative, control: str, image, strength: float = 0.9, **optional) -> dict:
    return {name: {"class_type": "ACN_AdvancedControlNetApply_v2", "inputs": {
        "positive": positive, "negative": negative, "control_net": [control, 0], "image": image, "strength": strength,
        "start_percent": 0.0, "end_percent": 1.0, "vae_optional": ["ckpt", 2], **optional}}}


def chain(applies: list[tuple[str, str, dict]]) -> tuple[dict, list, list]:
    """Apply nodes one after the other: ``(kind, control node, extra inputs)``, kind ``stock`` or ``acn``;
    the hints are the video frames (``keys`` for SparseCtrl). Returns the nodes and the last (positive, negative)."""
    nodes, positive, negative = {}, ["pos", 0], ["neg", 0]
    for number, (kind, control, extra) in enumerate(applies):
        name = f"apply{number}"
        image = ["keys", 0] if control == "sc" else ["frames", 0]
        nodes.update((stock_apply if kind == "stock" else acn_apply)(name, positive, negative, control, image, **extra))
        positive, negative = [name, 0], [name, 1]
    return nodes, positive, negative


def branches(prompt: dict, model, positive, negative, whole: bool = True, windows_per_call=WINDOWS_PER_CALL,
             plain=None, steps: int = 1) -> dict:
    """Add the sampler branches (``whole`` without windows, ``wpc<N>`` in windows) to ``prompt``; ``plain``: the model
    of a ``plain`` branch without windows and without the conditioning under test (which must then matter)."""
    models = {"whole": model} if whole else {}
    for n in windows_per_call:
        prompt[f"ctx{n}"] = {"class_type": "AnimDiffContextOptions", "inputs": {
            "context_length": 8, "context_overlap": 2, "context_stride": 1, "closed_loop": False, "schedule": "static",
            "fuse_method": "pyramid", "views": False, "windows_per_call": n}}
        prompt[f"windowed{n}"] = {"class_type": "AnimDiffApplyContextOptions", "inputs": {"model": model, "context_options": [f"ctx{n}", 0]}}
        models[f"wpc{n}"] = [f"windowed{n}", 0]
    conds = {name: (positive, negative) for name in models}
    if plain is not None:
        models["plain"], conds["plain"] = plain, (["pos", 0], ["neg", 0])
    for name, branch_model in models.items():
        prompt[f"sample_{name}"] = {"class_type": "KSampler", "inputs": {
            "model": branch_model, "positive": conds[name][0], "negative": conds[name][1], "latent_image": ["latent", 0], "seed": 3,
            "steps": steps, "cfg": 2.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 0.8}}
        prompt[f"save_{name}"] = {"class_type": "SaveLatent", "inputs": {"samples": [f"sample_{name}", 0], "filename_prefix": name}}
    return prompt


def controlnet_graph(applies: list[tuple[str, str, dict]], extra_nodes: dict | None = None, motion_module: str | None = None,
                     whole: bool = True, windows_per_call=WINDOWS_PER_CALL, plain: bool = False, steps: int = 1) -> dict:
    """A ControlNet chain (:func:`chain`) under test, sampled with and without windows (:func:`branches`)."""
    prompt, model = base(motion_module)
    nodes, positive, negative = chain(applies)
    prompt.update(nodes)
    prompt.update(extra_nodes or {})
    return branches(prompt, model, positive, negative, whole, windows_per_call, model if plain else None, steps)


def keyframe_nodes() -> dict:
    """ACN timestep keyframes (strength 1 then 0.4 with a per-frame mask from half-way) and latent keyframes on frames
    where windows overlap (6, 7, 12: in two windows each) and at the ends (sample with 2 steps)."""
    return {
        "tk0": {"class_type": "TimestepKeyframe", "inputs": {"start_percent": 0.0, "strength": 1.0}},
        "tk1": {"class_type": "TimestepKeyframe", "inputs": {
            "start_percent": 0.5, "strength": 0.4, "prev_timestep_kf": ["tk0", 0], "mask_optional": ["masks", 0]}},
        "lkf": {"class_type": "LatentKeyframeGroup", "inputs": {"index_strengths": "0=1.0, 6=0.8, 7=0.5, 12=1.0, 15=0.7"}},
    }


def ipadapter_graph(motion_module: str | None = None, whole: bool = True, windows_per_call=WINDOWS_PER_CALL,
                    controlnet: bool = False, plain: bool = False, clip_vision: str | None = None) -> dict:
    """IPAdapter_plus with one precomputed embed per frame, a per-frame attention mask and per-frame weights
    (``IPAdapterEmbedsBatch``); ``controlnet``: an ACN control on the video frames as well; ``clip_vision``: the frames
    themselves encoded by that CLIP-vision file instead (``IPAdapterBatch``, one image per frame)."""
    prompt, model = base(motion_module)
    weights = ", ".join(f"{0.4 + 0.6 * (i % 5) / 4:.2f}" for i in range(FRAMES))
    prompt.update({
        "ipa": {"class_type": "IPAdapterModelLoader", "inputs": {"ipadapter_file": IPADAPTER}},
        "embeds": {"class_type": "IPAdapterLoadEmbeds", "inputs": {"embeds": EMBEDS}},
        "weights": {"class_type": "IPAdapterWeights", "inputs": {
            "weights": weights, "timing": "custom", "frames": FRAMES, "start_frame": 0, "end_frame": 9999,
            "add_starting_frames": 0, "add_ending_frames": 0, "method": "full batch"}},
        "neg_embeds": {"class_type": "IPAdapterLoadEmbeds", "inputs": {"embeds": NEG_EMBEDS}},
        "ipa_apply": {"class_type": "IPAdapterEmbedsBatch", "inputs": {
            "model": model, "ipadapter": ["ipa", 0], "pos_embed": ["embeds", 0], "neg_embed": ["neg_embeds", 0], "weight": ["weights", 0],
            "weight_type": "linear", "start_at": 0.0, "end_at": 1.0, "embeds_scaling": "V only", "attn_mask": ["masks", 0]}},
    })
    if clip_vision:
        for unused in ("embeds", "neg_embeds"):
            del prompt[unused]
        prompt["clip_vision"] = {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": clip_vision}}
        prompt["ipa_apply"] = {"class_type": "IPAdapterBatch", "inputs": {
            "model": model, "ipadapter": ["ipa", 0], "image": ["frames", 0], "weight": ["weights", 0], "weight_type": "linear",
            "start_at": 0.0, "end_at": 1.0, "embeds_scaling": "V only", "encode_batch_size": 0, "attn_mask": ["masks", 0],
            "clip_vision": ["clip_vision", 0]}}
    positive, negative = ["pos", 0], ["neg", 0]
    if controlnet:
        nodes, positive, negative = chain([("acn", "acn", {"mask_optional": ["masks", 0]})])
        prompt.update(nodes)
    return branches(prompt, ["ipa_apply", 0], positive, negative, whole, windows_per_call, model if plain else None)


VIDEO_EMBEDS = "video_embeds.ipadpt"  # (24, 1024): one embed per frame of the whole test video


def pack_workflow_on_test_models(prompt: dict) -> dict:
    """A workflow of workflows/packs/ on the test models (:func:`graphs.on_test_models`), its CLIP-vision encoding of
    the frames replaced by precomputed embeds and zeros for the negative (no CLIP-vision weights are built for the tests)."""
    prompt = on_test_models(prompt, "input.mp4")
    for node_id, node in list(prompt.items()):
        inputs, kind = node["inputs"], node["class_type"]
        if kind == "VHS_LoadVideo":
            inputs.update(video="input.mp4", custom_width=32, custom_height=32, frame_load_cap=24)
        elif kind == "ACN_ControlNetLoaderAdvanced":
            inputs["cnet"] = CONTROLNET
        elif kind == "IPAdapterModelLoader":
            inputs["ipadapter_file"] = IPADAPTER
        elif kind == "IPAdapterEncoder":
            prompt[node_id] = {"class_type": "IPAdapterLoadEmbeds", "inputs": {"embeds": VIDEO_EMBEDS}}
            prompt[f"{node_id}_neg"] = {"class_type": "IPAdapterLoadEmbeds", "inputs": {"embeds": NEG_EMBEDS}}
        elif kind == "CLIPVisionLoader":
            del prompt[node_id]
        elif kind == "AnimDiffContextOptions":
            inputs.update(context_length=8, context_overlap=2)
    for node in prompt.values():  # the encoder's negative embeds (its second output): zeros, as for this model
        negative = node["inputs"].get("neg_embed")
        if node["class_type"] == "IPAdapterEmbedsBatch" and negative:
            node["inputs"]["neg_embed"] = [f"{negative[0]}_neg", 0]
    return prompt
