"""Workflows in AnimateDiff-Evolved's format, written for the converter's tests from ADE's node definitions (d8d163c:
each node's INPUT_TYPES, names and defaults as ADE declares them). One case per supported ADE node id; they run on
the random test models at smoke-test size once converted.
"""

from __future__ import annotations

from weights import CHECKPOINT, SPARSECTRL

MM, LORA = "mm_v2_random.safetensors", "v2_lora_ZoomIn_random.safetensors"
PIA, LCM_I2V = "pia_random.safetensors", "animatelcm_i2v_random.safetensors"


def base(model_ref=("ckpt", 0), latent=None, positive=("pos", 0), frames: int = 8, save="PreviewImage") -> dict:
    """Checkpoint -> prompts -> KSampler (1 step, 32x32) -> VAEDecode -> preview; ``model_ref``: what the sampler takes."""
    graph = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": "a meadow"}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": ""}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": frames}},
        "sampler": {"class_type": "KSampler", "inputs": {
            "model": list(model_ref), "positive": list(positive), "negative": ["neg", 0], "latent_image": list(latent or ("latent", 0)),
            "seed": 3, "steps": 1, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sampler", 0], "vae": ["ckpt", 2]}},
    }
    if save == "PreviewImage":
        graph["save"] = {"class_type": "PreviewImage", "inputs": {"images": ["decode", 0]}}
    return graph


def gen1(extra_inputs: dict | None = None, **nodes) -> dict:
    graph = base(("ade", 0))
    graph["ade"] = {"class_type": "ADE_AnimateDiffLoaderGen1", "inputs": {
        "model": ["ckpt", 0], "model_name": MM, "beta_schedule": "autoselect", **(extra_inputs or {})}}
    graph.update(nodes)
    return graph


def context(class_type: str, **inputs) -> dict:
    return gen1({"context_options": ["ctx", 0]}, ctx={"class_type": class_type, "inputs": {"context_length": 4, **inputs}})


def gen2(apply: dict, **evolved) -> dict:
    graph = base(("evolved", 0))
    graph["load"] = {"class_type": "ADE_LoadAnimateDiffModel", "inputs": {"model_name": MM}}
    graph["apply"] = apply
    graph["evolved"] = {"class_type": "ADE_UseEvolvedSampling", "inputs": {
        "model": ["ckpt", 0], "beta_schedule": "autoselect", "m_models": ["apply", 0], **evolved}}
    return graph


def pia(pia_input: dict | None = None, **nodes) -> dict:
    """ADE's PIA: load pia.ckpt -> Apply AnimateDiff-PIA Model (a still, the VAE; ``pia_input``) -> Use Evolved Sampling
    with context windows."""
    inputs = {"motion_model": ["load", 0], "image": ["still", 0], "vae": ["ckpt", 2], "start_percent": 0.0, "end_percent": 1.0}
    graph = gen2({"class_type": "ADE_ApplyAnimateDiffModelWithPIA",
                  "inputs": inputs | ({"pia_input": ["pia", 0]} if pia_input else {})}, context_options=["ctx", 0])
    graph["load"]["inputs"]["model_name"] = PIA
    graph["still"] = {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 0x3080C0}}
    graph["ctx"] = {"class_type": "ADE_StandardStaticContextOptions", "inputs": {"context_length": 4, "context_overlap": 1}}
    if pia_input:
        graph["pia"] = pia_input
    graph.update(nodes)
    return graph


def animatelcm_i2v() -> dict:
    """ADE's AnimateLCM-I2V: Load AnimateLCM-I2V Model -> Apply AnimateLCM-I2V Model (a VAE-encoded still) -> Use Evolved Sampling."""
    graph = gen2({"class_type": "ADE_ApplyAnimateLCMI2VModel", "inputs": {
        "motion_model": ["load", 0], "ref_latent": ["ref", 0], "ref_drift": 0.25, "apply_ref_when_disabled": False,
        "start_percent": 0.0, "end_percent": 1.0}}, beta_schedule="lcm >> sqrt_linear")
    graph["load"] = {"class_type": "ADE_LoadAnimateLCMI2VModel", "inputs": {"model_name": LCM_I2V}}
    graph["still"] = {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 0x3080C0}}
    graph["ref"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["still", 0], "vae": ["ckpt", 2]}}
    return graph


def prompt_latents() -> dict:
    graph = base(("ade", 0), latent=("sched", 1), positive=("sched", 0))
    graph["ade"] = {"class_type": "ADE_AnimateDiffLoaderGen1", "inputs": {"model": ["ckpt", 0], "model_name": MM, "beta_schedule": "autoselect"}}
    graph["sched"] = {"class_type": "ADE_PromptSchedulingLatents", "inputs": {
        "prompts": '"0": "a meadow", "7": "a forest"', "clip": ["ckpt", 1], "latent": ["latent", 0]}}
    return graph


def v1(advanced: bool) -> dict:
    graph = base(("ade", 0), latent=("ade", 1))
    inputs = {"model": ["ckpt", 0], "latents": ["latent", 0], "model_name": MM, "unlimited_area_hack": False,
              "beta_schedule": "sqrt_linear (AnimateDiff)"}
    if advanced:
        inputs.update(context_length=4, context_stride=1, context_overlap=1, context_schedule="uniform", closed_loop=False)
    graph["ade"] = {"class_type": "ADE_AnimateDiffLoaderV1Advanced" if advanced else "AnimateDiffLoaderV1", "inputs": inputs}
    return graph


def acn_sparsectrl() -> dict:
    """Advanced-ControlNet's SparseCtrl loader (ACN 1.5.8's inputs) into the stock apply node, under the Gen1 loader."""
    graph = gen1()
    graph["sc"] = {"class_type": "ACN_SparseCtrlLoaderAdvanced", "inputs": {
        "sparsectrl_name": SPARSECTRL["scribble"], "use_motion": True, "motion_strength": 1.0, "motion_scale": 1.0}}
    graph["keys"] = {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 2, "color": 0xFFFFFF}}
    graph["apply"] = {"class_type": "ControlNetApplyAdvanced", "inputs": {
        "positive": ["pos", 0], "negative": ["neg", 0], "control_net": ["sc", 0], "image": ["keys", 0],
        "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}}
    graph["sampler"]["inputs"].update(positive=["apply", 0], negative=["apply", 1])
    return graph


def with_node(graph: dict, node_id: str, class_type: str, inputs: dict, rewire: dict) -> dict:
    """``graph`` with one more node; ``rewire``: ``{(node, input): [source, slot]}`` links to point at it."""
    graph[node_id] = {"class_type": class_type, "inputs": inputs}
    for (target, name), source in rewire.items():
        graph[target]["inputs"][name] = source
    return graph


def context_extras(mode: dict, tune: str = "ADE_ContextExtras_ContextRef_TuneAttn") -> dict:
    """Static context options -> NaiveReuse -> ContextRef (a mode, a tune) -> Set Context Extras -> the Gen1 loader."""
    graph = context("ADE_StandardStaticContextOptions", context_overlap=1, fuse_method="pyramid")
    graph["ade"]["inputs"]["context_options"] = ["set", 0]
    tunes = {"attn_style_fidelity": 1.0, "attn_ref_weight": 1.0, "attn_strength": 0.8}
    if tune.endswith("Adain"):
        tunes.update(adain_style_fidelity=0.0, adain_ref_weight=0.0, adain_strength=0.0)
    return graph | {
        "reuse": {"class_type": "ADE_ContextExtras_NaiveReuse", "inputs": {"start_percent": 0.0, "end_percent": 0.15, "weighted_mean": 0.9}},
        "mode": mode, "tune": {"class_type": tune, "inputs": tunes},
        "ref": {"class_type": "ADE_ContextExtras_ContextRef", "inputs": {
            "prev_extras": ["reuse", 0], "contextref_mode": ["mode", 0], "contextref_tune": ["tune", 0], "start_percent": 0.0,
            "end_percent": 0.5}},
        "set": {"class_type": "ADE_ContextExtras_Set", "inputs": {"context_opts": ["ctx", 0], "context_extras": ["ref", 0]}},
    }


FIRST_MODE = {"class_type": "ADE_ContextExtras_ContextRef_ModeFirst", "inputs": {}}

CASES = {
    "ADE_AnimateDiffLoaderGen1": lambda: gen1(),
    "ADE_AnimateDiffLoRALoader": lambda: gen1({"motion_lora": ["lora2", 0]},
                                             lora1={"class_type": "ADE_AnimateDiffLoRALoader", "inputs": {"name": LORA, "strength": 0.5}},
                                             lora2={"class_type": "ADE_AnimateDiffLoRALoader", "inputs": {
                                                 "name": LORA, "strength": 0.25, "prev_motion_lora": ["lora1", 0]}}),
    "ADE_MultivalDynamic": lambda: gen1({"effect_multival": ["mv", 0]}, mv={"class_type": "ADE_MultivalDynamic", "inputs": {"float_val": 0.6}}),
    "ADE_AnimateDiffKeyframe": lambda: gen1({"ad_keyframes": ["kf", 0]}, kf={"class_type": "ADE_AnimateDiffKeyframe", "inputs": {
        "start_percent": 0.5, "effect_multival": ["mv", 0]}}, mv={"class_type": "ADE_MultivalDynamic", "inputs": {"float_val": 0.5}}),
    "ADE_StandardStaticContextOptions": lambda: context("ADE_StandardStaticContextOptions", context_overlap=1, fuse_method="pyramid"),
    "ADE_StandardUniformContextOptions": lambda: context("ADE_StandardUniformContextOptions", context_stride=1, context_overlap=1),
    "ADE_LoopedUniformContextOptions": lambda: context("ADE_LoopedUniformContextOptions", context_stride=1, context_overlap=1, closed_loop=True),
    "ADE_AnimateDiffUniformContextOptions": lambda: context("ADE_AnimateDiffUniformContextOptions", context_stride=2, context_overlap=1,
                                                            context_schedule="uniform", closed_loop=False),
    "ADE_BatchedContextOptions": lambda: context("ADE_BatchedContextOptions"),
    "ADE_AnimateDiffSamplingSettings": lambda: gen1({"sample_settings": ["ss", 0]}, ss={
        "class_type": "ADE_AnimateDiffSamplingSettings", "inputs": {"batch_offset": 0, "noise_type": "FreeNoise", "seed_gen": "comfy",
                                                                     "seed_offset": 2}}),
    "ADE_IterationOptsFreeInit": lambda: gen1({"sample_settings": ["ss", 0]}, ss={
        "class_type": "ADE_AnimateDiffSamplingSettings", "inputs": {"batch_offset": 0, "noise_type": "default", "seed_gen": "comfy",
                                                                     "seed_offset": 0, "iteration_opts": ["fi", 0]}},
        fi={"class_type": "ADE_IterationOptsFreeInit", "inputs": {
            "iterations": 2, "filter": "butterworth", "d_s": 0.25, "d_t": 0.25, "n_butterworth": 4, "sigma_step": 999,
            "apply_to_1st_iter": False, "init_type": "FreeInit [sampler sigma]"}}),
    "ADE_UseEvolvedSampling": lambda: gen2({"class_type": "ADE_ApplyAnimateDiffModelSimple", "inputs": {"motion_model": ["load", 0]}}),
    "ADE_ApplyAnimateDiffModelSimple": lambda: gen2({"class_type": "ADE_ApplyAnimateDiffModelSimple", "inputs": {
        "motion_model": ["load", 0], "motion_lora": ["lora", 0]}}, context_options=["ctx", 0]) | {
        "lora": {"class_type": "ADE_AnimateDiffLoRALoader", "inputs": {"name": LORA, "strength": 1.0}},
        "ctx": {"class_type": "ADE_StandardStaticContextOptions", "inputs": {"context_length": 4, "context_overlap": 1}}},
    "ADE_ApplyAnimateDiffModel": lambda: gen2({"class_type": "ADE_ApplyAnimateDiffModel", "inputs": {
        "motion_model": ["load", 0], "start_percent": 0.0, "end_percent": 0.5}}),
    "ADE_ApplyAnimateDiffModelWithPIA": lambda: pia(),
    "ADE_InputPIA_PaperPresets": lambda: pia({"class_type": "ADE_InputPIA_PaperPresets", "inputs": {
        "preset": "Loop (Medium Motion)", "batch_index": -1, "mult_multival": ["mv", 0]}},
        mv={"class_type": "ADE_MultivalDynamic", "inputs": {"float_val": 0.9}}),
    "ADE_InputPIA_Multival": lambda: pia({"class_type": "ADE_InputPIA_Multival", "inputs": {"multival": ["mv", 0]}},
                                         mv={"class_type": "ADE_MultivalDynamic", "inputs": {"float_val": 0.8}}),
    "ADE_ApplyAnimateLCMI2VModel": animatelcm_i2v,
    "ADE_LoadAnimateLCMI2VModel": animatelcm_i2v,
    "ADE_LoadAnimateDiffModel": lambda: gen2({"class_type": "ADE_ApplyAnimateDiffModelSimple", "inputs": {"motion_model": ["load", 0]}}),
    "ADE_AnimateDiffLoaderWithContext": lambda: with_node(base(("ade", 0)), "ade", "ADE_AnimateDiffLoaderWithContext", {
        "model": ["ckpt", 0], "model_name": MM, "beta_schedule": "sqrt_linear (AnimateDiff)", "context_options": ["ctx", 0],
        "motion_scale": 1.0, "apply_v2_models_properly": True}, {}) | {
        "ctx": {"class_type": "ADE_AnimateDiffUniformContextOptions", "inputs": {
            "context_length": 4, "context_stride": 1, "context_overlap": 1, "context_schedule": "uniform", "closed_loop": False}}},
    "ADE_PromptScheduling": lambda: with_node(gen1(), "sched", "ADE_PromptScheduling", {
        "prompts": '"0": "a meadow",\n"4": "a forest"', "clip": ["ckpt", 1], "max_length": 8}, {("sampler", "positive"): ["sched", 0]}),
    "ADE_PromptSchedulingLatents": prompt_latents,
    "ADE_EmptyLatentImageLarge": lambda: with_node(gen1(), "latent", "ADE_EmptyLatentImageLarge", {"width": 32, "height": 32, "batch_size": 8}, {}),
    "CheckpointLoaderSimpleWithNoiseSelect": lambda: with_node(gen1(), "ckpt", "CheckpointLoaderSimpleWithNoiseSelect", {
        "ckpt_name": CHECKPOINT, "beta_schedule": "use existing"}, {}),
    "AnimateDiffLoaderV1": lambda: v1(False),
    "ADE_AnimateDiffLoaderV1Advanced": lambda: v1(True),
    "ADE_ContextExtras_Set": lambda: context_extras(FIRST_MODE),
    "ADE_ContextExtras_ContextRef": lambda: context_extras(FIRST_MODE),
    "ADE_ContextExtras_NaiveReuse": lambda: context_extras(FIRST_MODE),
    "ADE_ContextExtras_ContextRef_ModeFirst": lambda: context_extras(FIRST_MODE),
    "ADE_ContextExtras_ContextRef_ModeSliding": lambda: context_extras(
        {"class_type": "ADE_ContextExtras_ContextRef_ModeSliding", "inputs": {"sliding_width": 3}}),
    "ADE_ContextExtras_ContextRef_ModeIndexes": lambda: context_extras(
        {"class_type": "ADE_ContextExtras_ContextRef_ModeIndexes", "inputs": {"switch_on_idxs": "5", "always_include_0": True}}),
    "ADE_ContextExtras_ContextRef_TuneAttn": lambda: context_extras(FIRST_MODE),
    "ADE_ContextExtras_ContextRef_TuneAttnAdain": lambda: context_extras(FIRST_MODE, "ADE_ContextExtras_ContextRef_TuneAttnAdain"),
    "ACN_SparseCtrlLoaderAdvanced": acn_sparsectrl,
    "ADE_AnimateDiffCombine": lambda: {k: v for k, v in gen1().items() if k != "save"} | {"save": {
        "class_type": "ADE_AnimateDiffCombine", "inputs": {"images": ["decode", 0], "frame_rate": 8, "loop_count": 0,
                                                          "filename_prefix": "ade_combine", "format": "image/webp", "pingpong": False,
                                                          "save_image": True}}},
}


# --- UI format, as ADE's frontend saves it -----------------------------------------------------------------------

def ui_node(node_id, type_, widgets=(), inputs=(), outputs=(), **extra):
    """A UI node as ADE's frontend saves it: sockets ``(name, type, link id)``, outputs ``(type, [link ids])``."""
    return {"id": node_id, "type": type_, "pos": [100 * node_id, 50], "size": [300, 120], "flags": {}, "order": node_id, "mode": 0,
            "inputs": [{"name": n, "type": t, "link": link} for n, t, link in inputs],
            "outputs": [{"name": t, "type": t, "links": links, "slot_index": i} for i, (t, links) in enumerate(outputs)],
            "properties": {"Node name for S&R": type_}, "widgets_values": list(widgets), **extra}


def gen1_ui() -> dict:
    """Checkpoint -> ADE Gen1 loader (LoRA, looped-uniform context options) -> KSampler, widgets in ADE's order."""
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", [CHECKPOINT], outputs=[("MODEL", [1]), ("CLIP", [2, 3]), ("VAE", [8])]),
        ui_node(2, "CLIPTextEncode", ["a meadow"], [("clip", "CLIP", 2)], [("CONDITIONING", [4])]),
        ui_node(3, "CLIPTextEncode", [""], [("clip", "CLIP", 3)], [("CONDITIONING", [5])]),
        ui_node(4, "ADE_AnimateDiffLoRALoader", ["v2_lora_ZoomIn_random.safetensors", 0.5], [("prev_motion_lora", "MOTION_LORA", None)],
                [("MOTION_LORA", [9])]),
        ui_node(5, "ADE_LoopedUniformContextOptions", [4, 1, 1, False, "pyramid", False, 0, 1],
                [("prev_context", "CONTEXT_OPTIONS", None), ("view_opts", "VIEW_OPTS", None)], [("CONTEXT_OPTIONS", [10])],
                title="my context", color="#223", bgcolor="#335"),
        ui_node(6, "ADE_AnimateDiffLoaderGen1", [MM, "sqrt_linear (AnimateDiff)"],
                [("model", "MODEL", 1), ("context_options", "CONTEXT_OPTIONS", 10), ("motion_lora", "MOTION_LORA", 9)],
                [("MODEL", [6])], title="AnimateDiff Loader 🎭🅐🅓①"),
        ui_node(7, "EmptyLatentImage", [32, 32, 8], outputs=[("LATENT", [7])]),
        ui_node(8, "KSampler", [3, "fixed", 1, 7.0, "euler", "normal", 1.0],
                [("model", "MODEL", 6), ("positive", "CONDITIONING", 4), ("negative", "CONDITIONING", 5), ("latent_image", "LATENT", 7)],
                [("LATENT", [11])]),
        ui_node(9, "VAEDecode", [], [("samples", "LATENT", 11), ("vae", "VAE", 8)], [("IMAGE", [12])]),
        ui_node(10, "PreviewImage", [], [("images", "IMAGE", 12)]),
        ui_node(11, "ADE_CustomCFGSimple", [7.0], [("cond_mask", "MASK", None)], [("CUSTOM_CFG", None)]),
    ]
    links = [[1, 1, 0, 6, 0, "MODEL"], [2, 1, 1, 2, 0, "CLIP"], [3, 1, 1, 3, 0, "CLIP"], [4, 2, 0, 8, 1, "CONDITIONING"],
             [5, 3, 0, 8, 2, "CONDITIONING"], [6, 6, 0, 8, 0, "MODEL"], [7, 7, 0, 8, 3, "LATENT"], [8, 1, 2, 9, 1, "VAE"],
             [9, 4, 0, 6, 2, "MOTION_LORA"], [10, 5, 0, 6, 1, "CONTEXT_OPTIONS"], [11, 8, 0, 9, 0, "LATENT"], [12, 9, 0, 10, 0, "IMAGE"]]
    return {"last_node_id": 11, "last_link_id": 12, "nodes": nodes, "links": links,
            "groups": [{"title": "AnimateDiff", "bounding": [0, 0, 900, 400], "color": "#3f789e"}], "config": {}, "extra": {}, "version": 0.4}
