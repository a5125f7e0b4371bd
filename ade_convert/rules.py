"""How each supported ADE node becomes ours: one function per kind of ADE node, named in ``table.TABLE``.

A rule gets the node's values by ADE input name (constants, or :class:`~.graph.Link` for sockets) and returns a
:class:`~.graph.Rewrite`. Approximations go into ``differs`` with what differs, in words.
"""

from __future__ import annotations

import re

from .graph import Context, Link, Local, NewNode, Rewrite, Unsupported, Virtual
from .values import BETA_SCHEDULES, FREEINIT_FILTERS, FUSE_METHODS, INTERPOLATIONS, NOISE_TYPES, SEED_GENERATION, choose

SCALE_DIFFERS = ("ADE's scale multiplies each temporal attention's output inside the motion module; ours (ADE's effect) "
                 "multiplies the module's whole residual: the same at 1, otherwise the nearest (issue #27 adds scale apart from effect)")
DEFAULT_LENGTH, DEFAULT_OVERLAP = 16, 4


class Builder:
    """The new nodes of one rewrite and the notes on what differs."""

    def __init__(self, ctx: Context):
        self.ctx, self.nodes, self.differs = ctx, [], []

    def add(self, cls: str, **inputs) -> Local:
        self.nodes.append(NewNode(cls, {k: v for k, v in inputs.items() if v is not None}))
        return Local(len(self.nodes) - 1, 0)

    def note(self, text: str | None) -> None:
        if text and text not in self.differs:
            self.differs.append(text)

    def choose(self, table: dict, value, what: str):
        if isinstance(value, Link):
            self.note(f"{what} comes from a link: set it on the converted node")
            return None
        ours, note = choose(table, value, what)
        self.note(note)
        return ours

    def virtual(self, value, kind: str, name: str):
        """The Virtual behind a link; a source that stays unconverted is named and left out."""
        try:
            return self.ctx.virtual(value, kind)
        except Unsupported as err:
            self.note(f"{name} not applied: {err}")
            return None

    def ignored(self, values: dict, defaults: dict, why: str) -> None:
        """Inputs ours has no equivalent of, noted when they are not at ADE's default (or are connected)."""
        for name, default in defaults.items():
            value = values.get(name)
            if value is not None and value != default:
                self.note(f"{name}={_show(value)} ignored ({why})")

    def done(self, outputs: dict) -> Rewrite:
        return Rewrite(self.nodes, outputs, self.differs)


def _show(value) -> str:
    return f"link from node {value.node}" if isinstance(value, Link) else repr(value)


def _number(value, default):
    return value.widget_value if isinstance(value, Link) and value.widget_value is not None else (value if value is not None else default)


# --- values that ours folds into other nodes -------------------------------------------------------------------

def motion_lora(ctx, v):
    b = Builder(ctx)
    chain = b.virtual(v.get("prev_motion_lora"), "MOTION_LORA", "prev_motion_lora") or []
    return b.done({0: Virtual("MOTION_LORA", [*chain, (v["name"], v["strength"])])})


def multival(ctx, v):
    return Builder(ctx).done({0: Virtual("MULTIVAL", {"float": v["float_val"], "mask": v.get("mask_optional")})})


def sample_settings(ctx, v):
    b = Builder(ctx)
    noise, note = choose(NOISE_TYPES, v["noise_type"], "noise_type") if not isinstance(v["noise_type"], Link) else ("default", None)
    b.note(note)
    b.note(SEED_GENERATION.get(v["seed_gen"], f"unknown ADE seed_gen {v['seed_gen']!r}"))
    b.ignored(v, {"batch_offset": 0, "adapt_denoise_steps": False}, "no AnimDiff equivalent")
    for name, why in (("noise_layers", "noise layers have no AnimDiff equivalent"), ("custom_cfg", "per-frame CFG waits for issue #27"),
                      ("sigma_schedule", "sigma schedules have no AnimDiff equivalent"), ("seed_override", "no AnimDiff equivalent"),
                      ("image_inject", "image injection has no AnimDiff equivalent"), ("ancestral_opts", "no AnimDiff equivalent")):
        if v.get(name) not in (None, 0):  # an old ADE's seed_override widget stores 0 for none
            b.note(f"{name} not applied: {why}")
    freeinit = b.virtual(v.get("iteration_opts"), "ITERATION_OPTS", "iteration_opts")
    seed_offset = v["seed_offset"]
    if isinstance(seed_offset, int) and seed_offset < 0:
        b.note(f"seed_offset {seed_offset} is negative: AnimDiff's is at least 0, 0 is used")
        seed_offset = 0
    return b.done({0: Virtual("SAMPLE_SETTINGS", {"noise": noise, "seed_offset": seed_offset, "freeinit": freeinit,
                                                  "differs": b.differs})})


def freeinit_options(ctx, v):
    b = Builder(ctx)
    b.ignored(v, {"sigma_step": 999, "apply_to_1st_iter": False, "iter_batch_offset": 0, "iter_seed_offset": 1},
              "AnimDiff's FreeInit always re-noises to the first step's level, with fresh noise of seed + pass")
    opts = {"iterations": v["iterations"], "filter": b.choose(FREEINIT_FILTERS, v["filter"], "filter"), "order": v["n_butterworth"],
            "spatial_stop": v["d_s"], "temporal_stop": v["d_t"], "noise": "fresh"}
    return b.done({0: Virtual("ITERATION_OPTS", {"opts": opts, "differs": b.differs})})


def apply_motion_model(ctx, v):
    b = Builder(ctx)
    if v.get("prev_m_models") is not None:
        raise Unsupported("several motion models at once (prev_m_models) wait for issue #27")
    if v.get("per_block") is not None:
        raise Unsupported("per-block strength (per_block) waits for issue #27")
    value = {"motion": v["motion_model"], "loras": b.virtual(v.get("motion_lora"), "MOTION_LORA", "motion_lora") or [],
             "scale": b.virtual(v.get("scale_multival"), "MULTIVAL", "scale_multival"),
             "effect": b.virtual(v.get("effect_multival"), "MULTIVAL", "effect_multival"),
             "keyframes": v.get("ad_keyframes"), "start": v.get("start_percent", 0.0), "end": v.get("end_percent", 1.0),
             "differs": b.differs}
    return b.done({0: Virtual("M_MODELS", value)})


PIA_CONSTANT = "Constant (strength and schedule only)"  # AnimDiffApplyPIA's preset for ADE's plain multival input
PIA_LOOPS_DIFFER = ("ADE stretches a loop preset by mirroring its first half over the video; AnimDiffApplyPIA's loop presets are "
                    "the original PIA's 16 values (continued with their last): Loop (Small/Medium Motion) differ even at 16 frames")


def pia_multival(ctx, v):
    b = Builder(ctx)
    mv = b.virtual(v.get("multival"), "MULTIVAL", "multival") or {"float": 1.0, "mask": None}
    if mv["mask"] is not None:
        b.note("the PIA multival's mask not applied: AnimDiffApplyPIA's affinity is one number per frame")
    return b.done({0: Virtual("PIA_INPUT", {"preset": PIA_CONSTANT, "cond_frame": 0, "strength": mv["float"], "differs": b.differs})})


def pia_paper_presets(ctx, v):
    b = Builder(ctx)
    mv = b.virtual(v.get("mult_multival"), "MULTIVAL", "mult_multival") or {"float": 1.0, "mask": None}
    if mv["mask"] is not None:
        b.note("mult_multival's mask not applied: AnimDiffApplyPIA's affinity is one number per frame")
    if isinstance(v["preset"], str) and v["preset"].startswith("Loop"):
        b.note(PIA_LOOPS_DIFFER)
    return b.done({0: Virtual("PIA_INPUT", {"preset": v["preset"], "cond_frame": v["batch_index"], "strength": mv["float"],
                                            "differs": b.differs})})


def apply_pia_model(ctx, v):
    rewrite = apply_motion_model(ctx, v)
    b = Builder(ctx)
    pia = b.virtual(v.get("pia_input"), "PIA_INPUT", "pia_input") or {"preset": PIA_CONSTANT, "cond_frame": 0, "strength": 1.0, "differs": []}
    models = rewrite.outputs[0].value
    models["pia"] = {"image": v["image"], "vae": v["vae"], **pia}
    for note in [*pia["differs"], *b.differs]:
        if note not in models["differs"]:
            models["differs"].append(note)
    return rewrite


def apply_animatelcm_i2v_model(ctx, v):
    rewrite = apply_motion_model(ctx, v)
    models = rewrite.outputs[0].value
    models["i2v"] = {"ref_latent": v["ref_latent"], "drift": v["ref_drift"], "start": v.get("start_percent", 0.0),
                     "end": v.get("end_percent", 1.0)}
    if v.get("apply_ref_when_disabled"):
        models["differs"].append("apply_ref_when_disabled on: AnimDiff adds the reference only where the motion module acts")
    return rewrite


# --- nodes that become ours ------------------------------------------------------------------------------------

def acn_sparsectrl_loader(ctx, v):
    """Advanced-ControlNet's SparseCtrl loader, which needs ADE, as ours; the apply node it feeds takes ours as it is."""
    b = Builder(ctx)
    if v.get("sparse_method") is not None:
        b.note("sparse_method (an Advanced-ControlNet SparseCtrl method node) is not read: give each keyframe's frame in frame_indices")
    b.note("empty frame_indices spread the keyframes evenly, rounded; ACN's default spread (uniform) truncates, so a keyframe "
           "may sit one frame earlier there: give frame_indices to pin them")
    b.ignored(v, {"use_motion": True, "motion_strength": 1.0, "motion_scale": 1.0, "context_aware": "nearest_hint", "sparse_hint_mult": 1.0,
                  "sparse_nonhint_mult": 1.0, "sparse_mask_mult": 1.0}, "no AnimDiff equivalent")
    b.ignored(v, {"tk_optional": None}, "connect timestep keyframes to Advanced-ControlNet's apply node instead")
    b.add("AnimDiffLoadSparseCtrl", sparsectrl_name=v["sparsectrl_name"], frame_indices="")
    return b.done({0: Local(0, 0)})


def load_motion_model(ctx, v):
    b = Builder(ctx)
    if v.get("ad_settings") is not None:
        raise Unsupported("ad_settings (positional-encoding and weight adjustments) wait for issue #27")
    b.add("AnimDiffLoadMotionModule", model_name=v["model_name"], version="auto")
    return b.done({0: Local(0, 0)})


def animate(b: Builder, model, motion, loras, beta, scale=None, effect=None, start=0.0, end=1.0, context=None,
            keyframes=None, settings=None, pia=None, i2v=None) -> Local:
    """Load-side MotionLoRAs, the apply node, PIA's image or AnimateLCM-I2V's reference, then the sample settings' noise and
    FreeInit nodes; the last MODEL."""
    for name, strength in loras:
        motion = b.add("AnimDiffMotionLoRA", motion_module=motion, lora_name=name, strength=strength)
    motion_scale, mask = 1.0, None
    if effect:
        motion_scale, mask = effect["float"], effect["mask"]
    if scale:
        if scale["float"] != 1.0 or scale["mask"] is not None:
            b.note(SCALE_DIFFERS)
        if isinstance(scale["float"], (int, float)) and isinstance(motion_scale, (int, float)):
            motion_scale *= scale["float"]
        if mask is None:
            mask = scale["mask"]
        elif scale["mask"] is not None:
            b.note("scale_multival's mask not applied beside effect_multival's")
    if isinstance(motion_scale, Link):
        b.note("motion scale comes from a link: AnimDiff's motion_scale is a widget, set on the converted node")
        motion_scale = _number(motion_scale, 1.0)
    out = b.add("AnimDiffApplyMotionModule", model=model, motion_module=motion,
                beta_schedule=b.choose(BETA_SCHEDULES, beta, "beta_schedule") or "autoselect", motion_scale=motion_scale,
                start_percent=start, end_percent=end, context_options=context, motion_scale_mask=mask, keyframes=keyframes)
    if pia:
        strength, cond_frame = pia["strength"], pia["cond_frame"]
        if isinstance(strength, Link) or isinstance(cond_frame, Link):
            b.note("PIA's strength or batch_index comes from a link: AnimDiffApplyPIA's are widgets, set them on the converted node")
        out = b.add("AnimDiffApplyPIA", model=out, vae=pia["vae"], image=pia["image"], preset=pia["preset"],
                    cond_frame=_number(cond_frame, 0), strength=_number(strength, 1.0))
    if i2v:
        if isinstance(i2v["drift"], Link):
            b.note("ref_drift comes from a link: AnimDiffApplyAnimateLCMI2V's is a widget, set it on the converted node")
        out = b.add("AnimDiffApplyAnimateLCMI2V", model=out, ref_latent=i2v["ref_latent"], ref_drift=_number(i2v["drift"], 0.0),
                    strength=1.0, start_percent=i2v["start"], end_percent=i2v["end"])
    return after_settings(b, out, settings, context)


def after_settings(b: Builder, model, settings, context) -> object:
    if not settings:
        return model
    for note in settings["differs"]:
        b.note(note)
    if settings["noise"] != "default":
        length, overlap = context_size(b.ctx, context)
        model = b.add("AnimDiffNoise", model=model, noise_type=settings["noise"], context_length=length,
                      window_stride=max(1, length - overlap), mix_weight=0.5, seed_offset=settings["seed_offset"])
        if settings["noise"] == "FreeNoise":
            b.note("FreeNoise shuffles with AnimDiff's random permutations (seed + seed_offset), not ADE's: a different video")
    if settings["freeinit"]:
        for note in settings["freeinit"]["differs"]:
            b.note(note)
        model = b.add("AnimDiffFreeInit", model=model, **settings["freeinit"]["opts"])
    return model


def context_size(ctx: Context, context) -> tuple[int, int]:
    """``context_length`` and ``context_overlap`` of the ADE context options a link brings (16 and 4 without)."""
    node = ctx.node(context)
    if node is None:
        return DEFAULT_LENGTH, DEFAULT_OVERLAP
    length, overlap = node.inputs.get("context_length", DEFAULT_LENGTH), node.inputs.get("context_overlap", DEFAULT_OVERLAP)
    return (_number(length, DEFAULT_LENGTH), _number(overlap, DEFAULT_OVERLAP))


def gen1_loader(ctx, v):
    b = Builder(ctx)
    for name in ("ad_settings", "per_block"):
        if v.get(name) is not None:
            raise Unsupported(f"{name} waits for issue #27 (positional-encoding, weight and per-block adjustments)")
    motion = b.add("AnimDiffLoadMotionModule", model_name=v["model_name"], version="auto")
    out = animate(b, v["model"], motion, b.virtual(v.get("motion_lora"), "MOTION_LORA", "motion_lora") or [], v["beta_schedule"],
                  b.virtual(v.get("scale_multival"), "MULTIVAL", "scale_multival"),
                  b.virtual(v.get("effect_multival"), "MULTIVAL", "effect_multival"), context=v.get("context_options"),
                  keyframes=v.get("ad_keyframes"), settings=b.virtual(v.get("sample_settings"), "SAMPLE_SETTINGS", "sample_settings"))
    return b.done({0: out})


def legacy_loader(ctx, v):
    b = Builder(ctx)
    if v.get("ad_settings") is not None:
        raise Unsupported("ad_settings (positional-encoding and weight adjustments) wait for issue #27")
    if v.get("apply_v2_models_properly") is False:
        b.note("apply_v2_models_properly off (ADE's old v2 GroupNorm hack) is not reproduced: v2 modules run as trained")
    motion = b.add("AnimDiffLoadMotionModule", model_name=v["model_name"], version="auto")
    scale = {"float": v["motion_scale"], "mask": None} if v["motion_scale"] != 1.0 else None
    out = animate(b, v["model"], motion, b.virtual(v.get("motion_lora"), "MOTION_LORA", "motion_lora") or [], v["beta_schedule"],
                  scale, context=v.get("context_options"), keyframes=v.get("ad_keyframes"),
                  settings=b.virtual(v.get("sample_settings"), "SAMPLE_SETTINGS", "sample_settings"))
    return b.done({0: out})


def v1_loader(ctx, v, context=None):
    b = Builder(ctx)
    if v.get("unlimited_area_hack"):
        b.note("unlimited_area_hack has no AnimDiff equivalent (ours never splits the batch)")
    motion = b.add("AnimDiffLoadMotionModule", model_name=v["model_name"], version="auto")
    if context is not None:
        context = b.add("AnimDiffContextOptions", **context)
        b.note(SCHEDULE_NOTES["looped_uniform"])
    out = animate(b, v["model"], motion, [], v["beta_schedule"], context=context)
    return b.done({0: out, 1: v["latents"]})


def v1_loader_advanced(ctx, v):
    return v1_loader(ctx, v, {"context_length": v["context_length"], "context_overlap": v["context_overlap"],
                              "context_stride": v["context_stride"], "closed_loop": v["closed_loop"], "schedule": "uniform",
                              "fuse_method": "flat", "views": False, "windows_per_call": 0})


def use_evolved_sampling(ctx, v):
    b = Builder(ctx)
    models = b.virtual(v.get("m_models"), "M_MODELS", "m_models")
    settings = b.virtual(v.get("sample_settings"), "SAMPLE_SETTINGS", "sample_settings")
    if models is None:
        if v.get("context_options") is None:
            b.note("no motion model: ADE only sets the beta schedule, which AnimDiff sets with a motion module; the model passes through")
            return b.done({0: after_settings(b, v["model"], settings, None)})
        out = b.add("AnimDiffApplyContextOptions", model=v["model"], context_options=v["context_options"])
        b.note("no motion model: windows only; ADE's beta schedule is not applied")
        return b.done({0: after_settings(b, out, settings, v["context_options"])})
    for note in models["differs"]:
        b.note(note)
    out = animate(b, v["model"], models["motion"], models["loras"], v["beta_schedule"], models["scale"], models["effect"],
                  models["start"], models["end"], v.get("context_options"), models["keyframes"], settings, models.get("pia"),
                  models.get("i2v"))
    return b.done({0: out})


def keyframe(ctx, v):
    b = Builder(ctx)
    if v.get("per_block_replace") is not None:
        raise Unsupported("per-block strength (per_block_replace) waits for issue #27")
    multiplier = 1.0
    for name in ("scale_multival", "effect_multival"):
        mv = b.virtual(v.get(name), "MULTIVAL", name)
        if mv:
            if mv["mask"] is not None:
                b.note(f"{name}'s mask not applied: AnimDiff's keyframes carry a multiplier only")
            if isinstance(mv["float"], (int, float)):
                multiplier *= mv["float"]
            if name == "scale_multival":
                b.note(SCALE_DIFFERS)
    b.note("ADE's keyframe replaces the motion model's scale/effect from start_percent on; ours multiplies motion_scale "
           "(the same when motion_scale is 1)")
    b.ignored(v, {"inherit_missing": True, "guarantee_steps": 1}, "no AnimDiff equivalent")
    b.add("AnimDiffMotionKeyframe", start_percent=v["start_percent"], scale_multiplier=multiplier, prev_keyframes=v.get("prev_ad_keyframes"))
    return b.done({0: Local(0, 0)})


SCHEDULE_NOTES = {
    "looped_uniform": "ADE's looped uniform schedule (AnimateDiff-CLI's) places its windows differently from ours at each step "
                      "(as many per step in a 16/4 check over 24-64 frames); ours shifts the seams with as many windows as static",
    "standard_uniform": "ADE's standard uniform schedule adds a window on some steps (48 frames, 16/4: 5 instead of 4 from step 4); "
                        "ours shifts the seams with as many windows as static",
}


def context_options(schedule: str, closed_loop=None):
    """A rule for one of ADE's context-options nodes, all of which become AnimDiffContextOptions."""
    ours = {"looped_uniform": "uniform", "standard_uniform": "uniform", "standard_static": "static", "batched": "batched"}[schedule]

    def rule(ctx, v):
        b = Builder(ctx)
        if v.get("prev_context") is not None:
            raise Unsupported("several context options keyed by start_percent (prev_context) wait for issue #29")
        if v.get("view_opts") is not None:
            raise Unsupported("views inside context windows (view_opts) wait for issue #29 (memory-bounded views)")
        b.ignored(v, {"use_on_equal_length": False, "start_percent": 0.0, "guarantee_steps": 1}, "no AnimDiff equivalent")
        b.note(SCHEDULE_NOTES.get(schedule))
        fuse = b.choose(FUSE_METHODS, v.get("fuse_method", "pyramid"), "fuse_method") or "pyramid"
        length, overlap = v["context_length"], 0 if ours == "batched" else v.get("context_overlap", DEFAULT_OVERLAP)
        if isinstance(length, int) and isinstance(overlap, int) and overlap >= length:
            b.note(f"context_overlap {overlap} is not below context_length {length}: {length - 1} is used")
            overlap = length - 1
        b.add("AnimDiffContextOptions", context_length=length, context_overlap=overlap,
              context_stride=v.get("context_stride", 1), closed_loop=v.get("closed_loop", False) if closed_loop is None else closed_loop,
              schedule=ours, fuse_method=fuse, views=False, windows_per_call=0)
        return b.done({0: Local(0, 0)})

    return rule


def checkpoint_with_noise_select(ctx, v):
    b = Builder(ctx)
    ours = b.choose(BETA_SCHEDULES, v["beta_schedule"], "beta_schedule")
    if ours not in (None, "use model's own"):
        b.note(f"beta_schedule {v['beta_schedule']!r} is set on the checkpoint by ADE; AnimDiff sets it on "
               "AnimDiffApplyMotionModule (autoselect there picks the module's own)")
    b.ignored(v, {"use_custom_scale_factor": False}, "ComfyUI's latent scale factor of the checkpoint is used")
    b.add("CheckpointLoaderSimple", ckpt_name=v["ckpt_name"])
    return b.done({0: Local(0, 0), 1: Local(0, 1), 2: Local(0, 2)})


def empty_latent_large(ctx, v):
    b = Builder(ctx)
    batch = v["batch_size"]
    if isinstance(batch, int) and batch > 4096:
        b.note(f"batch_size {batch} is over EmptyLatentImage's 4096: 4096 is used")
        batch = 4096
    b.add("EmptyLatentImage", width=v["width"], height=v["height"], batch_size=batch)
    return b.done({0: Local(0, 0)})


KEYFRAME = re.compile(r'^\s*"?(-?\d+)"?\s*[:=]', re.M)


def schedule_frames(ctx: Context, v) -> tuple[int, str | None]:
    """Frames of a prompt schedule: the latent's batch (when a literal), max_length, else the last keyframe + 1."""
    latent = ctx.node(v.get("latent"))
    if latent is not None and latent.cls in ("EmptyLatentImage", "ADE_EmptyLatentImageLarge") and isinstance(latent.inputs.get("batch_size"), int):
        return latent.inputs["batch_size"], None
    if v.get("latent") is not None:
        return 16, "frames could not be read from the latent: 16 is used, set it to the latent's batch size"
    if isinstance(v.get("max_length"), int) and v["max_length"] > 0:
        return v["max_length"], None
    keys = [int(k) for k in KEYFRAME.findall(v["prompts"] if isinstance(v["prompts"], str) else "")]
    return (max([k for k in keys if k >= 0], default=0) + 1), None


def prompt_schedule(ctx, v):
    b = Builder(ctx)
    if v.get("values_replace") is not None:
        raise Unsupported("values_replace (value placeholders in prompts) has no AnimDiff equivalent")
    frames, note = schedule_frames(ctx, v)
    b.note(note)
    b.note("ADE's prompt-schedule syntax beyond FRAME: prompt lines (weights after prompts, expressions) is not read")
    text_inputs = {}
    for ade, ours in (("prepend_text", "pre_text"), ("append_text", "app_text")):
        value = v.get(ade)
        if isinstance(value, Link):
            b.note(f"{ade} comes from a link: AnimDiff's {ours} is a widget, set it on the converted node")
        elif value:
            text_inputs[ours] = value
    b.add("AnimDiffPromptSchedule", clip=v["clip"], text=v["prompts"], frames=frames, pre_text=text_inputs.get("pre_text", ""),
          app_text=text_inputs.get("app_text", ""),
          interpolation=b.choose(INTERPOLATIONS, v.get("tensor_interp", "lerp"), "tensor_interp") or "linear")
    outputs = {0: Local(0, 0)}
    if "latent" in v:
        outputs[1] = v["latent"]
    return b.done(outputs)


def combine(ctx, v):
    b = Builder(ctx)
    if v["format"] != "image/webp":
        b.note(f"format {v['format']!r}: written as animated WebP by SaveAnimatedWEBP")
    b.ignored(v, {"loop_count": 0, "pingpong": False, "save_image": True}, "SaveAnimatedWEBP has no such option")
    b.add("SaveAnimatedWEBP", images=v["images"], filename_prefix=v["filename_prefix"], fps=float(_number(v["frame_rate"], 8)),
          lossless=False, quality=80, method="default")
    return b.done({0: None})


# --- context extras: ContextRef and NaiveReuse become AnimDiffContextAnchors / AnimDiffNaiveReuse -------------------

KEYFRAMES_DIFFER = "keyframes over steps ({}) not applied: AnimDiff's anchors and NaiveReuse hold over start_percent to end_percent"


def contextref_mode(mode: str):
    """A rule for ADE's ContextRef mode nodes: the mode as a value the ContextRef node takes."""
    def rule(ctx, v):
        return Builder(ctx).done({0: Virtual("CONTEXTREF_MODE", {"mode": mode, **v})})
    return rule


def contextref_tune(ctx, v):
    b = Builder(ctx)
    b.ignored(v, {"attn_style_fidelity": 1.0, "attn_ref_weight": 1.0}, "AnimDiff's reference attention has one strength: attn_strength")
    b.ignored(v, {"adain_style_fidelity": 0.0, "adain_ref_weight": 0.0, "adain_strength": 0.0}, "AdaIN sharing has no AnimDiff equivalent")
    return b.done({0: Virtual("CONTEXTREF_TUNE", {"strength": v["attn_strength"], "differs": b.differs})})


def extras_base(b: Builder, v: dict, kf_input: str) -> dict:
    """The extras chained before this one (``prev_extras``), with the notes shared by both extras."""
    prev = dict(b.virtual(v.get("prev_extras"), "CONTEXT_EXTRAS", "prev_extras") or {})
    for note in prev.get("differs", []):
        b.note(note)
    if v.get(kf_input) is not None:
        b.note(KEYFRAMES_DIFFER.format(kf_input))
    return prev


def multival_strength(b: Builder, v: dict) -> float:
    """``strength_multival``'s float (1 without); a mask is noted, not applied."""
    value = b.virtual(v.get("strength_multival"), "MULTIVAL", "strength_multival")
    if value is None:
        return 1.0
    if value["mask"] is not None:
        b.note("strength_multival's mask not applied: AnimDiff's anchor strength is one number")
    return _number(value["float"], 1.0)


def context_ref(ctx, v):
    b = Builder(ctx)
    prev = extras_base(b, v, "contextref_kf")
    mode = b.virtual(v.get("contextref_mode"), "CONTEXTREF_MODE", "contextref_mode") or {"mode": "first"}
    tune = b.virtual(v.get("contextref_tune"), "CONTEXTREF_TUNE", "contextref_tune") or {"strength": 1.0, "differs": []}
    for note in tune["differs"]:
        b.note(note)
    anchors = {"share": "attention", "mode": mode["mode"], "frames": None, "indexes": "0",
               "strength": max(0.0, min(1.0, tune["strength"] * multival_strength(b, v))),
               "start_percent": v.get("start_percent", 0.0), "end_percent": v.get("end_percent", 0.25)}
    if mode["mode"] == "sliding":
        b.note("ContextRef sliding reads an earlier whole window, rewritten every sliding_width - 1 windows; AnimDiff's sliding "
               "anchors read the frames just before each window (frames = sliding_width - 1)")
        anchors["frames"] = max(1, min(16, _number(mode.get("sliding_width"), 2) - 1))
    elif mode["mode"] == "indexes":
        b.note("ContextRef indexes switches the reference to the windows holding those frames; AnimDiff's indexes anchors "
               "share those frames themselves with every window")
        listed = [p.strip() for p in str(_number(mode.get("switch_on_idxs"), "")).split(",") if p.strip()]
        anchors["indexes"] = ", ".join(dict.fromkeys((["0"] if mode.get("always_include_0", True) else []) + listed)) or "0"
    return b.done({0: Virtual("CONTEXT_EXTRAS", {**prev, "anchors": anchors, "differs": b.differs})})


def naive_reuse(ctx, v):
    b = Builder(ctx)
    prev = extras_base(b, v, "naivereuse_kf")
    reuse = {"weighted_mean": max(0.0, min(1.0, v.get("weighted_mean", 0.95) * multival_strength(b, v))),
             "start_percent": v.get("start_percent", 0.0), "end_percent": v.get("end_percent", 0.15)}
    return b.done({0: Virtual("CONTEXT_EXTRAS", {**prev, "reuse": reuse, "differs": b.differs})})


def set_context_extras(ctx, v):
    """ADE's Set Context Extras: the extras become our nodes after the context options."""
    b = Builder(ctx)
    out = v["context_opts"]
    extras = b.virtual(v.get("context_extras"), "CONTEXT_EXTRAS", "context_extras") or {}
    for note in extras.get("differs", []):
        b.note(note)
    if extras.get("anchors"):
        anchors = dict(extras["anchors"])
        if anchors["frames"] is None:  # ContextRef first: the whole first window
            anchors["frames"] = max(1, min(16, context_size(ctx, v["context_opts"])[0]))
        out = b.add("AnimDiffContextAnchors", context_options=out, **anchors)
    if extras.get("reuse"):
        out = b.add("AnimDiffNaiveReuse", context_options=out, **extras["reuse"])
    return b.done({0: out})
