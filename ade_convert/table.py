"""The mapping table: one entry per node id of AnimateDiff-Evolved's ``NODE_CLASS_MAPPINGS`` (d8d163c, deprecated
nodes included), and one per node of another pack that works only beside ADE (``NEEDS_ADE``: Advanced-ControlNet's
SparseCtrl loaders build their motion layers through ADE and fail without it).

A supported entry declares the ADE node's inputs in ADE's order (widgets as the UI format stores them, with ADE's
defaults for values a file leaves out) and the rule (``rules``) that rewrites it into ours; an unsupported one says
why and what it waits for. ``maps_to`` is what the table in docs/ade-workflows.md shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import rules
from .graph import GNode


@dataclass(frozen=True)
class AdeInput:
    """``widget``: stored in ``widgets_values`` (else a socket); ``warning``: ADE's deprecation-warning widget, which
    some ADE versions store and others do not."""

    name: str
    default: object = None
    widget: bool = True
    warning: bool = False


def S(name):  # noqa: N802 - a socket input
    return AdeInput(name, None, False)


WARN = AdeInput("deprecation_warning", None, True, True)


@dataclass(frozen=True)
class Entry:
    inputs: tuple[AdeInput, ...] = ()
    outputs: tuple[str, ...] = ()
    rule: Callable | None = None
    maps_to: str = ""
    reason: str = ""  # unsupported: why, and the issue or feature it waits for
    variants: tuple = ()  # widget orders of older ADE versions, told apart by their number of values

    @property
    def widgets(self) -> list[AdeInput]:
        return [i for i in self.inputs if i.widget]


def unsupported(reason: str) -> Entry:
    return Entry(reason=reason)


CTX = (AdeInput("use_on_equal_length", False), AdeInput("start_percent", 0.0), AdeInput("guarantee_steps", 1), S("prev_context"), S("view_opts"))
LOOPED = (AdeInput("context_length", 16), AdeInput("context_stride", 1), AdeInput("context_overlap", 4))
CONTEXT = ("CONTEXT_OPTIONS",)
APPLY = ("AnimDiffLoadMotionModule + AnimDiffApplyMotionModule", "AnimDiffApplyMotionModule")
MOTION_CONTROL = "waits for issue #27 (motion-model control: scale apart from effect, per-block, positional-encoding stretch)"
I2V = "waits for issue #28 (PIA, AnimateLCM-I2V and CameraCtrl)"
LONG = "waits for issue #29 (long-video tools: context extras, views, fuse methods)"
CFG = "per-frame and keyframed CFG wait for issue #27"
HOOKS = "ADE's deprecated LoRA hooks and masked conditioning: ComfyUI's own hooks nodes (Create Hook LoRA, Cond Set Props) do this now"
SIGMA = "sigma schedules have no AnimDiff equivalent (choose beta_schedule on AnimDiffApplyMotionModule)"

ACN_SPARSE = "Advanced-ControlNet's SparseCtrl loaders need AnimateDiff-Evolved (they fail without it)"
NEEDS_ADE: dict[str, Entry] = {
    "ACN_SparseCtrlLoaderAdvanced": Entry((
        AdeInput("sparsectrl_name"), AdeInput("use_motion", True), AdeInput("motion_strength", 1.0), AdeInput("motion_scale", 1.0),
        S("sparse_method"), S("tk_optional"), AdeInput("context_aware", "nearest_hint"), AdeInput("sparse_hint_mult", 1.0),
        AdeInput("sparse_nonhint_mult", 1.0), AdeInput("sparse_mask_mult", 1.0)), ("CONTROL_NET",), rules.acn_sparsectrl_loader,
        "AnimDiffLoadSparseCtrl (into the same apply node, stock or ACN's)"),
    "ACN_SparseCtrlMergedLoaderAdvanced": unsupported(
        ACN_SPARSE + "; AnimDiff merges no SparseCtrl into a ControlNet: load the SparseCtrl file with AnimDiffLoadSparseCtrl"),
}

TABLE: dict[str, Entry] = {
    **NEEDS_ADE,
    # --- converted ---------------------------------------------------------------------------------------------
    "ADE_AnimateDiffLoRALoader": Entry((AdeInput("name"), AdeInput("strength", 1.0), S("prev_motion_lora")), ("MOTION_LORA",),
                                       rules.motion_lora, "AnimDiffMotionLoRA (one per LoRA, between load and apply)"),
    "ADE_AnimateDiffSamplingSettings": Entry((
        AdeInput("batch_offset", 0), AdeInput("noise_type", "default"), AdeInput("seed_gen", "comfy"), AdeInput("seed_offset", 0),
        S("noise_layers"), S("iteration_opts"), S("seed_override"), AdeInput("adapt_denoise_steps", False), S("custom_cfg"),
        S("sigma_schedule"), S("image_inject"), S("ancestral_opts")), ("SAMPLE_SETTINGS",), rules.sample_settings,
        "AnimDiffNoise / AnimDiffFreeInit after the apply node",
        # before seed_override became a socket
        variants=(("batch_offset", "noise_type", "seed_gen", "seed_offset", "seed_override", "adapt_denoise_steps"),)),
    "ADE_AnimateDiffKeyframe": Entry((
        AdeInput("start_percent", 0.0), S("prev_ad_keyframes"), S("scale_multival"), S("effect_multival"), S("per_block_replace"),
        AdeInput("inherit_missing", True), AdeInput("guarantee_steps", 1)), ("AD_KEYFRAMES",), rules.keyframe, "AnimDiffMotionKeyframe"),
    "ADE_MultivalDynamic": Entry((AdeInput("float_val", 1.0), S("mask_optional")), ("MULTIVAL",), rules.multival,
                                 "motion_scale (and motion_scale_mask) of AnimDiffApplyMotionModule"),
    "ADE_StandardStaticContextOptions": Entry((AdeInput("context_length", 16), AdeInput("context_overlap", 4),
                                               AdeInput("fuse_method", "pyramid"), *CTX), CONTEXT,
                                              rules.context_options("standard_static", False), "AnimDiffContextOptions (static)"),
    "ADE_StandardUniformContextOptions": Entry((*LOOPED, AdeInput("fuse_method", "pyramid"), *CTX), CONTEXT,
                                               rules.context_options("standard_uniform", False), "AnimDiffContextOptions (uniform)"),
    "ADE_LoopedUniformContextOptions": Entry((*LOOPED, AdeInput("closed_loop", False), AdeInput("fuse_method", "flat"), *CTX),
                                             CONTEXT, rules.context_options("looped_uniform"), "AnimDiffContextOptions (uniform)"),
    "ADE_AnimateDiffUniformContextOptions": Entry((*LOOPED, AdeInput("context_schedule", "uniform"), AdeInput("closed_loop", False),
                                                   AdeInput("fuse_method", "flat"), *CTX, WARN), CONTEXT,
                                                  rules.context_options("looped_uniform"), "AnimDiffContextOptions (uniform)"),
    "ADE_BatchedContextOptions": Entry((AdeInput("context_length", 16), AdeInput("start_percent", 0.0), AdeInput("guarantee_steps", 1),
                                        S("prev_context")), CONTEXT, rules.context_options("batched", False),
                                       "AnimDiffContextOptions (batched)"),
    "ADE_IterationOptsFreeInit": Entry((
        AdeInput("iterations", 2), AdeInput("filter", "gaussian"), AdeInput("d_s", 0.25), AdeInput("d_t", 0.25),
        AdeInput("n_butterworth", 4), AdeInput("sigma_step", 999), AdeInput("apply_to_1st_iter", False), AdeInput("init_type", "FreeInit [sampler sigma]"),
        AdeInput("iter_batch_offset", 0), AdeInput("iter_seed_offset", 1)), ("ITERATION_OPTS",), rules.freeinit_options,
        "AnimDiffFreeInit (through the sample settings)"),
    "ADE_PromptScheduling": Entry((
        AdeInput("prompts", ""), S("clip"), S("prepend_text"), S("append_text"), S("values_replace"), AdeInput("print_schedule", False),
        AdeInput("max_length", 0), AdeInput("tensor_interp", "lerp")), ("CONDITIONING",), rules.prompt_schedule, "AnimDiffPromptSchedule"),
    "ADE_PromptSchedulingLatents": Entry((
        AdeInput("prompts", ""), S("clip"), S("latent"), S("prepend_text"), S("append_text"), S("values_replace"),
        AdeInput("print_schedule", False), AdeInput("tensor_interp", "lerp")), ("CONDITIONING", "LATENT"), rules.prompt_schedule,
        "AnimDiffPromptSchedule (the latent passes through)"),
    "ADE_EmptyLatentImageLarge": Entry((AdeInput("width", 512), AdeInput("height", 512), AdeInput("batch_size", 1)), ("LATENT",),
                                       rules.empty_latent_large, "EmptyLatentImage"),
    "CheckpointLoaderSimpleWithNoiseSelect": Entry((
        AdeInput("ckpt_name"), AdeInput("beta_schedule", "use existing"), AdeInput("use_custom_scale_factor", False),
        AdeInput("scale_factor", 0.18215)), ("MODEL", "CLIP", "VAE"), rules.checkpoint_with_noise_select, "CheckpointLoaderSimple"),
    "ADE_AnimateDiffLoaderGen1": Entry((
        S("model"), AdeInput("model_name"), AdeInput("beta_schedule", "autoselect"), S("context_options"), S("motion_lora"),
        S("ad_settings"), S("ad_keyframes"), S("sample_settings"), S("scale_multival"), S("effect_multival"), S("per_block")),
        ("MODEL",), rules.gen1_loader, APPLY[0]),
    "ADE_UseEvolvedSampling": Entry((S("model"), AdeInput("beta_schedule", "autoselect"), S("m_models"), S("context_options"),
                                     S("sample_settings")), ("MODEL",), rules.use_evolved_sampling, APPLY[1]),
    "ADE_ApplyAnimateDiffModelSimple": Entry((S("motion_model"), S("motion_lora"), S("scale_multival"), S("effect_multival"),
                                              S("ad_keyframes"), S("per_block")), ("M_MODELS",), rules.apply_motion_model,
                                             "AnimDiffApplyMotionModule (with the Use Evolved Sampling node)"),
    "ADE_ApplyAnimateDiffModel": Entry((S("motion_model"), AdeInput("start_percent", 0.0), AdeInput("end_percent", 1.0), S("motion_lora"),
                                        S("scale_multival"), S("effect_multival"), S("ad_keyframes"), S("prev_m_models"), S("per_block")),
                                       ("M_MODELS",), rules.apply_motion_model, "AnimDiffApplyMotionModule (with the Use Evolved Sampling node)"),
    "ADE_LoadAnimateDiffModel": Entry((AdeInput("model_name"), S("ad_settings")), ("MOTION_MODEL_ADE",), rules.load_motion_model,
                                      "AnimDiffLoadMotionModule"),
    "ADE_ApplyAnimateDiffModelWithPIA": Entry((
        S("motion_model"), S("image"), S("vae"), AdeInput("start_percent", 0.0), AdeInput("end_percent", 1.0), S("pia_input"),
        S("motion_lora"), S("scale_multival"), S("effect_multival"), S("ad_keyframes"), S("prev_m_models"), S("per_block")),
        ("M_MODELS",), rules.apply_pia_model, "AnimDiffApplyMotionModule + AnimDiffApplyPIA (with the Use Evolved Sampling node)"),
    "ADE_LoadAnimateLCMI2VModel": Entry((AdeInput("model_name"), S("ad_settings")), ("MOTION_MODEL_ADE", "MOTION_MODEL_ADE"),
                                        rules.load_motion_model, "AnimDiffLoadMotionModule (the encoder_only output: not converted)"),
    "ADE_ApplyAnimateLCMI2VModel": Entry((
        S("motion_model"), S("ref_latent"), AdeInput("ref_drift", 0.0), AdeInput("apply_ref_when_disabled", False),
        AdeInput("start_percent", 0.0), AdeInput("end_percent", 1.0), S("motion_lora"), S("scale_multival"), S("effect_multival"),
        S("ad_keyframes"), S("prev_m_models"), S("per_block")), ("M_MODELS",), rules.apply_animatelcm_i2v_model,
        "AnimDiffApplyMotionModule + AnimDiffApplyAnimateLCMI2V (with the Use Evolved Sampling node)"),
    "ADE_InputPIA_Multival": Entry((S("multival"),), ("PIA_INPUT",), rules.pia_multival,
                                   "AnimDiffApplyPIA (its strength; preset Constant)"),
    "ADE_InputPIA_PaperPresets": Entry((AdeInput("preset"), AdeInput("batch_index", 0), S("mult_multival"), AdeInput("print_values", False)),
                                       ("PIA_INPUT",), rules.pia_paper_presets, "AnimDiffApplyPIA (its preset, cond_frame and strength)"),
    "ADE_AnimateDiffLoaderWithContext": Entry((
        S("model"), AdeInput("model_name"), AdeInput("beta_schedule", "autoselect"), S("context_options"), S("motion_lora"),
        S("ad_settings"), S("sample_settings"), AdeInput("motion_scale", 1.0), AdeInput("apply_v2_models_properly", True),
        S("ad_keyframes"), WARN), ("MODEL",), rules.legacy_loader, APPLY[0]),
    "AnimateDiffLoaderV1": Entry((S("model"), S("latents"), AdeInput("model_name"), AdeInput("unlimited_area_hack", False),
                                  AdeInput("beta_schedule", "sqrt_linear (AnimateDiff)"), WARN), ("MODEL", "LATENT"), rules.v1_loader,
                                 APPLY[0] + " (the latent passes through)"),
    "ADE_AnimateDiffLoaderV1Advanced": Entry((
        S("model"), S("latents"), AdeInput("model_name"), AdeInput("unlimited_area_hack", False), AdeInput("context_length", 16),
        AdeInput("context_stride", 1), AdeInput("context_overlap", 4), AdeInput("context_schedule", "uniform"),
        AdeInput("closed_loop", False), AdeInput("beta_schedule", "sqrt_linear (AnimateDiff)"), WARN), ("MODEL", "LATENT"),
        rules.v1_loader_advanced, APPLY[0] + " + AnimDiffContextOptions"),
    "ADE_AnimateDiffCombine": Entry((S("images"), AdeInput("frame_rate", 8), AdeInput("loop_count", 0), AdeInput("filename_prefix", "AnimateDiff"),
                                     AdeInput("format", "image/gif"), AdeInput("pingpong", False), AdeInput("save_image", True), WARN),
                                    ("GIF",), rules.combine, "SaveAnimatedWEBP"),
    "ADE_ContextExtras_Set": Entry((S("context_opts"), S("context_extras")), CONTEXT, rules.set_context_extras,
                                   "AnimDiffContextAnchors / AnimDiffNaiveReuse after the context options"),
    "ADE_ContextExtras_ContextRef": Entry((S("prev_extras"), S("strength_multival"), S("contextref_mode"), S("contextref_tune"),
                                          S("contextref_kf"), AdeInput("start_percent", 0.0), AdeInput("end_percent", 0.25)),
                                         ("CONTEXT_EXTRAS",), rules.context_ref, "AnimDiffContextAnchors (share attention)"),
    "ADE_ContextExtras_ContextRef_ModeFirst": Entry((), ("CONTEXTREF_MODE",), rules.contextref_mode("first"),
                                                    "mode first of AnimDiffContextAnchors (frames: the context length)"),
    "ADE_ContextExtras_ContextRef_ModeSliding": Entry((AdeInput("sliding_width", 2),), ("CONTEXTREF_MODE",), rules.contextref_mode("sliding"),
                                                      "mode sliding of AnimDiffContextAnchors"),
    "ADE_ContextExtras_ContextRef_ModeIndexes": Entry((AdeInput("switch_on_idxs", ""), AdeInput("always_include_0", True)),
                                                      ("CONTEXTREF_MODE",), rules.contextref_mode("indexes"),
                                                      "mode indexes of AnimDiffContextAnchors"),
    "ADE_ContextExtras_ContextRef_TuneAttn": Entry((AdeInput("attn_style_fidelity", 1.0), AdeInput("attn_ref_weight", 1.0),
                                                   AdeInput("attn_strength", 1.0)), ("CONTEXTREF_TUNE",), rules.contextref_tune,
                                                  "strength of AnimDiffContextAnchors"),
    "ADE_ContextExtras_ContextRef_TuneAttnAdain": Entry((
        AdeInput("attn_style_fidelity", 1.0), AdeInput("attn_ref_weight", 1.0), AdeInput("attn_strength", 1.0),
        AdeInput("adain_style_fidelity", 1.0), AdeInput("adain_ref_weight", 1.0), AdeInput("adain_strength", 1.0)),
        ("CONTEXTREF_TUNE",), rules.contextref_tune, "strength of AnimDiffContextAnchors (AdaIN not applied)"),
    "ADE_ContextExtras_NaiveReuse": Entry((S("prev_extras"), S("strength_multival"), S("naivereuse_kf"), AdeInput("start_percent", 0.0),
                                          AdeInput("end_percent", 0.15), AdeInput("weighted_mean", 0.95)), ("CONTEXT_EXTRAS",),
                                         rules.naive_reuse, "AnimDiffNaiveReuse"),
    # --- not (yet) converted -----------------------------------------------------------------------------------
    "ADE_MultivalDynamicFloatInput": unsupported("per-frame float lists as multivals: " + MOTION_CONTROL),
    "ADE_MultivalDynamicFloats": unsupported("per-frame float lists as multivals: " + MOTION_CONTROL),
    "ADE_MultivalScaledMask": unsupported("scaled-mask multivals: " + MOTION_CONTROL),
    "ADE_MultivalConvertToMask": unsupported("multival to mask: " + MOTION_CONTROL),
    "ADE_ViewsOnlyContextOptions": unsupported("views as context options: " + LONG),
    "ADE_VisualizeContextOptionsK": unsupported("context visualisation: " + LONG + " (a consistency report node)"),
    "ADE_VisualizeContextOptionsKAdv": unsupported("context visualisation: " + LONG + " (a consistency report node)"),
    "ADE_VisualizeContextOptionsSCustom": unsupported("context visualisation: " + LONG + " (a consistency report node)"),
    "ADE_StandardStaticViewOptions": unsupported("view options: " + LONG + " (memory-bounded views)"),
    "ADE_StandardUniformViewOptions": unsupported("view options: " + LONG + " (memory-bounded views)"),
    "ADE_LoopedUniformViewOptions": unsupported("view options: " + LONG + " (memory-bounded views)"),
    **{name: unsupported("ContextRef/NaiveReuse keyframes over steps: AnimDiff's anchors and NaiveReuse hold over one "
                         "start_percent to end_percent range (leave the keyframe input empty)") for name in (
        "ADE_ContextExtras_ContextRef_Keyframe", "ADE_ContextExtras_ContextRef_KeyframeInterpolation",
        "ADE_ContextExtras_ContextRef_KeyframeFromList", "ADE_ContextExtras_NaiveReuse_Keyframe",
        "ADE_ContextExtras_NaiveReuse_KeyframeInterpolation", "ADE_ContextExtras_NaiveReuse_KeyframeFromList")},
    "ADE_IterationOptsDefault": unsupported("repeated sampling without FreeInit has no AnimDiff equivalent (AnimDiffFreeInit does FreeInit's)"),
    **{name: unsupported(HOOKS) for name in (
        "ADE_RegisterLoraHook", "ADE_RegisterLoraHookModelOnly", "ADE_RegisterModelAsLoraHook", "ADE_RegisterModelAsLoraHookModelOnly",
        "ADE_CombineLoraHooks", "ADE_CombineLoraHooksFour", "ADE_CombineLoraHooksEight", "ADE_SetLoraHookKeyframe",
        "ADE_AttachLoraHookToCLIP", "ADE_LoraHookKeyframe", "ADE_LoraHookKeyframeInterpolation", "ADE_LoraHookKeyframeFromStrengthList",
        "ADE_AttachLoraHookToConditioning", "ADE_PairedConditioningSetMask", "ADE_ConditioningSetMask",
        "ADE_PairedConditioningSetMaskAndCombine", "ADE_ConditioningSetMaskAndCombine", "ADE_PairedConditioningSetUnmaskedAndCombine",
        "ADE_ConditioningSetUnmaskedAndCombine", "ADE_PairedConditioningCombine", "ADE_ConditioningCombine", "ADE_TimestepsConditioning")},
    **{name: unsupported("ADE's noise layers have no AnimDiff equivalent (AnimDiffNoise chooses one noise type)") for name in (
        "ADE_NoiseLayerAdd", "ADE_NoiseLayerAddWeighted", "ADE_NoiseLayerNormalizedSum", "ADE_NoiseLayerReplace")},
    **{name: unsupported("positional-encoding and weight adjustments: " + MOTION_CONTROL) for name in (
        "ADE_AnimateDiffSettings", "ADE_AdjustPESweetspotStretch", "ADE_AdjustPEFullStretch", "ADE_AdjustPEManual",
        "ADE_AdjustWeightAllAdd", "ADE_AdjustWeightAllMult", "ADE_AdjustWeightIndivAdd", "ADE_AdjustWeightIndivMult",
        "ADE_AdjustWeightIndivAttnAdd", "ADE_AdjustWeightIndivAttnMult", "ADE_AnimateDiffModelSettings_Release",
        "ADE_AnimateDiffModelSettingsSimple", "ADE_AnimateDiffModelSettings", "ADE_AnimateDiffModelSettingsAdvancedAttnStrengths")},
    **{name: unsupported(CFG) for name in (
        "ADE_CustomCFGSimple", "ADE_CustomCFG", "ADE_CustomCFGKeyframeSimple", "ADE_CustomCFGKeyframe",
        "ADE_CustomCFGKeyframeInterpolation", "ADE_CustomCFGKeyframeFromList")},
    **{name: unsupported("CFG extras (PAG, RescaleCFG) inside ADE's sampling: use ComfyUI's PerturbedAttentionGuidance / RescaleCFG "
                         "nodes on the model") for name in (
        "ADE_CFGExtrasPAGSimple", "ADE_CFGExtrasPAG", "ADE_CFGExtrasRescaleCFGSimple", "ADE_CFGExtrasRescaleCFG",
        "ADE_PerturbedAttentionGuidanceMultival", "ADE_RescaleCFGMultival")},
    **{name: unsupported(SIGMA) for name in (
        "ADE_SigmaSchedule", "ADE_RawSigmaSchedule", "ADE_SigmaScheduleWeightedAverage", "ADE_SigmaScheduleWeightedAverageInterp",
        "ADE_SigmaScheduleSplitAndCombine", "ADE_SigmaScheduleToSigmas")},
    "ADE_NoisedImageInjection": unsupported("noised image injection during sampling has no AnimDiff equivalent"),
    "ADE_NoisedImageInjectOptions": unsupported("noised image injection during sampling has no AnimDiff equivalent"),
    "ADE_AncestralOptions": unsupported("ADE's ancestral-noise options have no AnimDiff equivalent"),
    "ADE_ValueScheduling": unsupported("value schedules as float lists: AnimDiff takes number schedules as text "
                                       "(AnimDiffApplyMotionModule's motion_scale_schedule); other uses wait for issue #27"),
    "ADE_ValueSchedulingLatents": unsupported("value schedules as float lists: AnimDiff takes number schedules as text "
                                              "(AnimDiffApplyMotionModule's motion_scale_schedule); other uses wait for issue #27"),
    "ADE_ConditionExtraction": unsupported("ADE's condition extraction has no AnimDiff equivalent"),
    "ADE_ValuesReplace": unsupported("value placeholders in prompt schedules have no AnimDiff equivalent"),
    "ADE_FloatToFloats": unsupported("float lists as multivals: " + MOTION_CONTROL),
    **{name: unsupported("per-block strength: " + MOTION_CONTROL) for name in (
        "ADE_ADBlockCombo", "ADE_ADBlockIndiv", "ADE_PerBlockHighLevel", "ADE_PerBlock_SD15_MidLevel", "ADE_PerBlock_SD15_LowLevel",
        "ADE_PerBlock_SD15_FromFloats", "ADE_PerBlock_SDXL_MidLevel", "ADE_PerBlock_SDXL_LowLevel", "ADE_PerBlock_SDXL_FromFloats")},
    "ADE_AnimateDiffUnload": unsupported("AnimDiff never changes its input model: connect the model from before "
                                         "AnimDiffApplyMotionModule instead"),
    "ADE_UpscaleAndVAEEncode": unsupported("use ComfyUI's VAE Encode (AnimDiffApplyAnimateLCMI2V resizes the reference latent to "
                                           "the video's latent size itself)"),
    "ADE_InjectI2VIntoAnimateDiffModel": unsupported("AnimateLCM-I2V's image encoder in another motion module (experimental in ADE): "
                                                     "AnimDiff takes the encoder only with its own motion module (AnimateLCM_sd15_i2v.ckpt)"),
    **{name: unsupported("CameraCtrl: " + I2V) for name in (
        "ADE_ApplyAnimateDiffModelWithCameraCtrl", "ADE_LoadAnimateDiffModelWithCameraCtrl", "ADE_CameraCtrlAnimateDiffKeyframe",
        "ADE_LoadCameraPoses", "ADE_LoadCameraPosesFromPath", "ADE_CameraPoseBasic", "ADE_CameraPoseCombo", "ADE_CameraPoseAdvanced",
        "ADE_CameraManualPoseAppend", "ADE_ReplaceCameraParameters", "ADE_ReplaceOriginalPoseAspectRatio")},
    "ADE_PIA_AnimateDiffKeyframe": unsupported("PIA input changing over sampling progress has no AnimDiff equivalent "
                                               "(AnimDiffApplyPIA's affinity is one per frame for the whole sampling)"),
    "ADE_InjectPIAIntoAnimateDiffModel": unsupported("PIA's input conv in another motion module (experimental in ADE): AnimDiff "
                                                     "takes PIA's input conv only with PIA's own motion module (pia.ckpt)"),
}


def ade_values(entry: Entry, node: GNode) -> tuple[dict, list[str]]:
    """The node's values by ADE input name, ADE's defaults where the file has none; notes on what was assumed."""
    values = {i.name: i.default for i in entry.inputs if not i.warning}
    values.update({k: v for k, v in node.inputs.items() if k in values})
    notes = []
    if missing := [i.name for i in entry.inputs if i.widget and not i.warning and i.default is None and values.get(i.name) is None]:
        notes.append(f"no value for {', '.join(missing)}: choose one on the converted node")
    return values, notes


def widget_values(entry: Entry, stored: list) -> tuple[dict, list[str]]:
    """Name the UI format's positional ``widgets_values`` of an ADE node by ADE's widget order (with or without the
    deprecation-warning widget some ADE versions store); extra or missing values are noted."""
    widgets = entry.widgets
    plain = [w for w in widgets if not w.warning]
    for variant in entry.variants:
        if len(stored) == len(variant) != len(plain):
            return dict(zip(variant, stored, strict=True)), []
    order = widgets if len(stored) >= len(widgets) and len(widgets) > len(plain) else plain
    named = {w.name: value for w, value in zip(order, stored, strict=False) if not w.warning}
    notes = []
    if len(stored) < len(order):
        notes.append(f"the file stores {len(stored)} widget values, ADE d8d163c's node {len(plain)}: "
                     f"{', '.join(w.name for w in order[len(stored):] if not w.warning)} take ADE's defaults")
    elif len(stored) > len(order):
        notes.append(f"the file stores {len(stored)} widget values, ADE d8d163c's node {len(plain)} (an other ADE version?): "
                     "read by position")
    return named, notes


def markdown() -> str:
    """The table in docs/ade-workflows.md of what each ADE node becomes (converted first, then unsupported, each sorted)."""
    rows = ["| ADE node id | becomes |", "|---|---|"]
    rows += [f"| `{ade_id}` | {entry.maps_to} |" for ade_id, entry in sorted(TABLE.items()) if entry.rule]
    by_reason: dict[str, list[str]] = {}
    for ade_id, entry in sorted(TABLE.items()):
        if not entry.rule:
            by_reason.setdefault(entry.reason, []).append(f"`{ade_id}`")
    rows += [f"| {', '.join(ids)} | unsupported: {reason} |" for reason, ids in by_reason.items()]
    return "\n".join(rows)
