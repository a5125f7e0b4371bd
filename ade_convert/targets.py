"""The nodes a conversion writes (ours and ComfyUI's own), as ``/object_info`` declares them.

The UI format stores widget values by position, so a converted node's ``widgets_values`` follow this order.
``tests/test_ade_convert.py`` checks every signature here against the live server's ``/object_info``, with the
ordering rules of ``scripts/workflow_ui.py`` (required then optional inputs in declared order; a control value after
a ``seed``/``noise_seed`` INT widget).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Input:
    """``widget``: a value on the node (else a socket); ``extra``: values the frontend stores after it."""

    name: str
    type: str
    widget: bool
    optional: bool = False
    extra: tuple = ()


@dataclass(frozen=True)
class Target:
    inputs: tuple[Input, ...]
    outputs: tuple[tuple[str, str], ...]  # (name, type)
    pack: bool = True  # ours (else comfy-core)

    def input(self, name: str) -> Input:
        return next(i for i in self.inputs if i.name == name)


def W(name, type_, optional=False):  # noqa: N802 - a widget
    return Input(name, type_, True, optional)


def S(name, type_, optional=False):  # noqa: N802 - a socket
    return Input(name, type_, False, optional)


TARGETS: dict[str, Target] = {
    "AnimDiffLoadMotionModule": Target((W("model_name", "COMBO"), W("version", "COMBO", True)), (("MOTION_MODULE", "MOTION_MODULE"),)),
    "AnimDiffApplyMotionModule": Target((
        S("model", "MODEL"), S("motion_module", "MOTION_MODULE"), W("beta_schedule", "COMBO"), W("motion_scale", "FLOAT"),
        W("start_percent", "FLOAT"), W("end_percent", "FLOAT"), S("context_options", "CONTEXT_OPTIONS", True),
        S("motion_scale_schedule", "STRING", True), S("motion_scale_mask", "MASK", True), S("keyframes", "MOTION_KEYFRAMES", True),
    ), (("MODEL", "MODEL"),)),
    "AnimDiffContextOptions": Target((
        W("context_length", "INT"), W("context_overlap", "INT"), W("context_stride", "INT"), W("closed_loop", "BOOLEAN"),
        W("schedule", "COMBO"), W("fuse_method", "COMBO"), W("views", "BOOLEAN", True), W("windows_per_call", "INT", True),
    ), (("CONTEXT_OPTIONS", "CONTEXT_OPTIONS"),)),
    "AnimDiffApplyContextOptions": Target((S("model", "MODEL"), S("context_options", "CONTEXT_OPTIONS")), (("MODEL", "MODEL"),)),
    "AnimDiffContextAnchors": Target((
        S("context_options", "CONTEXT_OPTIONS"), W("share", "COMBO"), W("mode", "COMBO"), W("frames", "INT"), W("indexes", "STRING"),
        W("strength", "FLOAT"), W("start_percent", "FLOAT"), W("end_percent", "FLOAT"),
    ), (("CONTEXT_OPTIONS", "CONTEXT_OPTIONS"),)),
    "AnimDiffNaiveReuse": Target((S("context_options", "CONTEXT_OPTIONS"), W("weighted_mean", "FLOAT"), W("start_percent", "FLOAT"),
                                  W("end_percent", "FLOAT")), (("CONTEXT_OPTIONS", "CONTEXT_OPTIONS"),)),
    "AnimDiffMotionLoRA": Target((S("motion_module", "MOTION_MODULE"), W("lora_name", "COMBO"), W("strength", "FLOAT")),
                                 (("MOTION_MODULE", "MOTION_MODULE"),)),
    "AnimDiffMotionKeyframe": Target((W("start_percent", "FLOAT"), W("scale_multiplier", "FLOAT"),
                                      S("prev_keyframes", "MOTION_KEYFRAMES", True)), (("MOTION_KEYFRAMES", "MOTION_KEYFRAMES"),)),
    "AnimDiffPromptSchedule": Target((S("clip", "CLIP"), W("text", "STRING"), W("frames", "INT"), W("pre_text", "STRING", True),
                                      W("app_text", "STRING", True), W("interpolation", "COMBO", True)),
                                     (("CONDITIONING", "CONDITIONING"),)),
    "AnimDiffNoise": Target((S("model", "MODEL"), W("noise_type", "COMBO"), W("context_length", "INT"), W("window_stride", "INT"),
                             W("mix_weight", "FLOAT"), W("seed_offset", "INT")), (("MODEL", "MODEL"),)),
    "AnimDiffFreeInit": Target((S("model", "MODEL"), W("iterations", "INT"), W("filter", "COMBO"), W("order", "INT"),
                                W("spatial_stop", "FLOAT"), W("temporal_stop", "FLOAT"), W("noise", "COMBO")), (("MODEL", "MODEL"),)),
    "AnimDiffApplyPIA": Target((
        S("model", "MODEL"), S("vae", "VAE"), S("image", "IMAGE"), W("preset", "COMBO"), W("cond_frame", "INT"), W("strength", "FLOAT"),
        S("strength_schedule", "STRING", True)), (("MODEL", "MODEL"),)),
    "AnimDiffApplyAnimateLCMI2V": Target((
        S("model", "MODEL"), S("ref_latent", "LATENT"), W("ref_drift", "FLOAT"), W("strength", "FLOAT"), W("start_percent", "FLOAT"),
        W("end_percent", "FLOAT")), (("MODEL", "MODEL"),)),
    "AnimDiffLoadSparseCtrl": Target((W("sparsectrl_name", "COMBO"), W("frame_indices", "STRING")), (("CONTROL_NET", "CONTROL_NET"),)),
    "CheckpointLoaderSimple": Target((W("ckpt_name", "COMBO"),), (("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")), pack=False),
    "EmptyLatentImage": Target((W("width", "INT"), W("height", "INT"), W("batch_size", "INT")), (("LATENT", "LATENT"),), pack=False),
    "SaveAnimatedWEBP": Target((S("images", "IMAGE"), W("filename_prefix", "STRING"), W("fps", "FLOAT"), W("lossless", "BOOLEAN"),
                                W("quality", "INT"), W("method", "COMBO")), (), pack=False),
}
