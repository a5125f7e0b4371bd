"""Every place the pack touches ComfyUI, by name: the contract a ComfyUI version must keep for the pack to work.

``tests/test_touchpoints.py`` resolves each :class:`Touchpoint` in the running ComfyUI and checks that it
exists and still takes the parameters the pack passes, that the wrapper types and ``transformer_options``
keys are what a real sampling run shows, and that ControlNet objects carry the attributes window slicing
reads. A ComfyUI update that moves or changes any of them fails there with the symbol's name, not deep in
a sampling run. Add a line here with every new use of ComfyUI.

Nothing here imports ComfyUI: this module is the list, the test is the check. The keys the pack shares with ComfyUI
and other packs (``transformer_options``, wrapper keys) are declared here once; every user refers to the constant.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Touchpoint:
    """``symbol``: dotted path, module first (``comfy.model_patcher.ModelPatcher.clone``).

    ``parameters``: the names the pack passes, which the callable must accept (by that name, or through
    ``*args``/``**kwargs`` after the named ones). ``since``: a ComfyUI version before which the symbol may be
    missing (the pack checks for it before use). ``used_by``: where in the pack.
    """

    symbol: str
    parameters: tuple[str, ...] = ()
    used_by: str = ""
    since: str | None = None


class OptionKeys:
    """``transformer_options`` keys, declared once: ComfyUI's that the pack reads, and the pack's that other packs read."""

    SIGMAS = "sigmas"  # ComfyUI: this call's sigma per latent
    COND_OR_UNCOND = "cond_or_uncond"  # ComfyUI: which cond each slice of the call's batch is
    SAMPLE_SIGMAS = "sample_sigmas"  # ComfyUI: the sampler's whole schedule
    AD_PARAMS = "ad_params"  # ours, in AnimateDiff-Evolved's form: the frames of this call (sampling.windows.params)
    CONTEXT_WINDOW = "context_window"  # ours, in core ComfyUI's form: IndexListContextWindow of this call
    UUIDS = "uuids"  # ComfyUI: the cond (its uuid) of each slice of the call's batch (sampling.windows.anchors)
    PATCHES_REPLACE = "patches_replace"  # ComfyUI: replace patches, by kind ("attn1") and block (sampling.windows.anchors)
    # Inside an attention patch's extra_options (ComfyUI's BasicTransformerBlock sets them; sampling.windows.anchors):
    BLOCK = "block"  # ("input" | "middle" | "output", number) of the UNet block
    BLOCK_INDEX = "block_index"  # the transformer block within it
    N_HEADS = "n_heads"
    ATTN_PRECISION = "attn_precision"


class WrapperKeys:
    """The keys the pack's wrappers, callbacks and additional models are registered under on a ModelPatcher."""

    MOTION_MODULE = "animdiff"  # DIFFUSION_MODEL wrapper, ON_PRE_RUN callback, the motion patcher (animate.model)
    CONTEXT_WINDOWS = "animdiff_context"  # CALC_COND_BATCH and PREPARE_SAMPLING wrappers (sampling.windows.evaluation)
    SAMPLING_START = "animdiff_start"  # OUTER_SAMPLE wrapper: noise type and FreeInit (sampling.noise.start)
    COND_FRAMES = "animdiff_cond_frames"  # OUTER_SAMPLE wrapper: per-frame conds against the video (sampling.prompts.cond_frames)
    PIA = "animdiff_pia"  # DIFFUSION_MODEL wrapper: PIA's image input for the call's frames (animate.pia)


T = Touchpoint
PATCHER = "comfy.model_patcher.ModelPatcher"

TOUCHPOINTS: tuple[Touchpoint, ...] = (
    # The ModelPatcher: clones, wrappers, object patches, weight patches, additional models.
    T(f"{PATCHER}.__init__", ("model", "load_device", "offload_device"), "motion_module.loader, training"),
    T(f"{PATCHER}.clone", (), "nodes (every node that returns a MODEL / MOTION_MODULE)"),
    T(f"{PATCHER}.add_wrapper_with_key", ("wrapper_type", "key", "wrapper"),
      "animate.model, animate.pia, animate.animatelcm_i2v, sampling.windows.evaluation, sampling.noise.start, sampling.prompts.cond_frames"),
    T(f"{PATCHER}.get_wrappers", ("wrapper_type", "key"),
      "animate.model, animate.pia, animate.animatelcm_i2v, sampling.windows.evaluation, sampling.noise.start, sampling.prompts.cond_frames, "
      "training.stages"),
    T(f"{PATCHER}.set_additional_models", ("key", "models"), "animate.model"),
    T(f"{PATCHER}.add_object_patch", ("name", "obj"), "animate.model, training.stages (model_sampling)"),
    T(f"{PATCHER}.get_model_object", ("name",), "animate.model, animate.pia (latent_format), animate.animatelcm_i2v, sampling.noise.start, training.stages"),
    T(f"{PATCHER}.add_patches", ("patches", "strength_patch"), "motion_module.lora, image_model.domain_adapter"),
    T(f"{PATCHER}.add_weight_wrapper", ("name", "function"), "training (LoRA weight adapters)"),
    T(f"{PATCHER}.set_model_compute_dtype", ("dtype",), "training"),
    T("comfy.model_patcher.wipe_lowvram_weight", ("m",), "training"),
    T("comfy.model_patcher.CoreModelPatcher", (), "motion_module.loader (the host's own patcher class)", since="0.4"),
    T(f"{PATCHER}.deepclone_multigpu", ("new_load_device",), "motion_module.loader (cached_patcher_init: the motion "
      "patcher's reload factory, called with disable_dynamic)", since="0.4"),
    T(f"{PATCHER}.add_callback_with_key", ("call_type", "key", "callback"), "animate.model (ON_PRE_RUN)"),
    T("comfy.patcher_extension.CallbacksMP.ON_PRE_RUN", (), "animate.model (which motion network each UNet runs)"),
    T(f"{PATCHER}.get_additional_models_with_key", ("key",), "animate.model"),
    T("comfy_extras.nodes_context_windows.ContextWindowsManualNode", (), "sampling.windows.evaluation (model_options['context_handler'] "
      "is refused beside AnimDiff's windows)"),
    # Wrapper types and the functions they wrap (the wrapper receives the wrapped function's arguments).
    T("comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL", (), "animate.model, animate.pia, animate.animatelcm_i2v, training.stages"),
    T("comfy.patcher_extension.WrappersMP.CALC_COND_BATCH", (), "sampling.windows.evaluation"),
    T("comfy.patcher_extension.WrappersMP.PREPARE_SAMPLING", (), "sampling.windows.evaluation"),
    T("comfy.patcher_extension.WrappersMP.OUTER_SAMPLE", (), "sampling.noise.start (reads the noise tensor), sampling.prompts.cond_frames (the "
      "guider's conds against the noise's frames)"),
    T("comfy.ldm.modules.diffusionmodules.openaimodel.UNetModel._forward",
      ("x", "timesteps", "context", "y", "control", "transformer_options"), "animate.model (DIFFUSION_MODEL executor)"),
    T("comfy.samplers._calc_cond_batch", ("model", "conds", "x_in", "timestep", "model_options"), "sampling.windows.evaluation"),
    T("comfy.sampler_helpers._prepare_sampling", ("model", "noise_shape", "conds", "model_options"), "sampling.windows.evaluation"),
    # The UNet the motion modules go into.
    T("comfy.ldm.modules.diffusionmodules.openaimodel.forward_timestep_embed", ("ts", "x", "emb", "context", "transformer_options"),
      "motion_module.injection (plain layers are called as layer(x)), sparsectrl.model"),
    T("comfy.ldm.modules.diffusionmodules.openaimodel.ResBlock", (), "motion_module.injection (in_layers/out_layers norms)"),
    T("comfy.ldm.modules.diffusionmodules.openaimodel.Upsample", (), "motion_module.injection"),
    T("comfy.ldm.modules.attention.SpatialTransformer", (), "motion_module.injection"),
    T("comfy.ldm.modules.attention.optimized_attention", ("q", "k", "v", "heads"), "motion_module.attention, sampling.windows.anchors"),
    T("comfy.model_patcher.set_model_options_patch_replace", ("model_options", "patch", "name", "block_name", "number"),
      "sampling.windows.anchors (attn1 replace patches on one window call's model options)"),
    T("comfy.ops.manual_cast.Linear", (), "motion_module (casting layers)"),
    T("comfy.ops.manual_cast.LayerNorm", (), "motion_module"),
    T("comfy.ops.manual_cast.GroupNorm", (), "motion_module"),
    T("comfy.ops.manual_cast.Conv2d", (), "motion_module.network (PIA's input conv)"),
    T("comfy.ops.cast_bias_weight", ("s", "input"), "motion_module.image_input (PIA's input conv weight, cast as ComfyUI's layers do)"),
    T("comfy.sd.VAE.encode", (), "animate.pia (the still's latent)"),
    # Model management and sampling objects.
    T("comfy.model_management.get_torch_device", (), "motion_module.loader, sparsectrl.loader, training.stages"),
    T("comfy.model_management.unet_offload_device", (), "motion_module.loader, sparsectrl.loader"),
    T("comfy.model_management.unet_dtype", ("model_params", "weight_dtype"), "motion_module.loader, sparsectrl.loader, training.stages"),
    T("comfy.model_management.throw_exception_if_processing_interrupted", (), "training, nodes.train, sampling.noise.start (interrupt)"),
    T("comfy.model_management.load_models_gpu", ("models",), "training, sparsectrl.control"),
    T("comfy.model_management.free_memory", ("memory_required", "device"), "training"),
    T("comfy.model_management.get_free_memory", ("dev",), "sampling.windows.evaluation (windows per model call)"),
    T("comfy.model_base.BaseModel.memory_required", ("input_shape",), "sampling.windows.evaluation (ComfyUI's rule for batching conds)"),
    T("comfy.model_base.BaseModel.process_latent_in", ("latent",), "sampling.noise.start (FreeInit), training"),
    T(f"{PATCHER}.model_dtype", (), "training"),
    T(f"{PATCHER}.get_nested_additional_models", (), "training (the motion patcher loads with the UNet)"),
    T("comfy.model_sampling.ModelSamplingDiscrete.sigma_max", (), "sampling.noise.freeinit (full denoise?)"),
    T("comfy.model_sampling.ModelSamplingDiscrete.timestep", ("sigma",), "sparsectrl.control"),
    T("comfy.model_sampling.EPS.noise_scaling", ("sigma", "noise", "latent_image", "max_denoise"), "sampling.noise.freeinit, training"),
    T("comfy.model_sampling.ModelSamplingDiscrete.__init__", ("model_config",), "sampling.noise.betas"),
    T("comfy.model_sampling.ModelSamplingDiscrete.percent_to_sigma", ("percent",), "animate.model, animate.animatelcm_i2v, sampling.windows.anchors"),
    T("comfy.model_sampling.EPS", (), "sampling.noise.betas, training.trainer (prediction type)"),
    T("comfy.model_sampling.V_PREDICTION", (), "training (loss target)"),
    T("comfy_extras.nodes_model_advanced.LCM", (), "sampling.noise.betas (AnimateLCM)"),
    T("comfy_extras.nodes_model_advanced.ModelSamplingDiscreteDistilled", (), "sampling.noise.betas (AnimateLCM)"),
    T("comfy.model_base.BaseModel", (), "training"),
    T("comfy.model_base.SDXL", (), "training"),
    T("comfy.conds.CONDRegular._copy_with", ("cond",), "sampling.windows.evaluation (per-frame cond slices)"),
    T("comfy.context_windows.IndexListContextWindow.__init__", ("index_list",), "sampling.windows.params (core's window info for patches)"),
    T("comfy.sd.CLIP.tokenize", ("text",), "sampling.prompts.schedule, training.clips (as CLIPTextEncode)"),
    T("comfy.sd.CLIP.encode_from_tokens_scheduled", ("tokens",), "sampling.prompts.schedule, training.clips (as CLIPTextEncode)"),
    # LoRA machinery (domain adapter) and utilities.
    T("comfy.lora.model_lora_keys_unet", ("model", "key_map"), "image_model.domain_adapter"),
    T("comfy.lora.load_lora", ("lora", "to_load", "log_missing"), "image_model.domain_adapter"),
    T("comfy.utils.ProgressBar.__init__", ("total",), "nodes.train"),
    T("comfy.utils.ProgressBar.update_absolute", ("value", "total"), "nodes.train"),
    T("comfy.utils.unet_to_diffusers", ("unet_config",), "training, sparsectrl.layout (adapter keys)"),
    # The noise and FreeInit (one OUTER_SAMPLE wrapper around the guider's whole sampling).
    T("comfy.samplers.CFGGuider.outer_sample", ("noise", "latent_image", "sampler", "sigmas", "denoise_mask", "callback",
                                                 "disable_pbar", "seed"), "sampling.noise.start (OUTER_SAMPLE executor; class_obj is the guider)"),
    T(f"{PATCHER}.remove_wrappers_with_key", ("wrapper_type", "key"), "sampling.noise.start, animate.animatelcm_i2v"),
    # SparseCtrl: a ComfyUI ControlNet whose network is ComfyUI's ControlNet encoder with motion modules.
    T("comfy.controlnet.ControlNet.__init__", ("control_model", "load_device", "manual_cast_dtype"), "sparsectrl.control"),
    T("comfy.controlnet.ControlNet.get_control", ("x_noisy", "t", "cond", "batched_number", "transformer_options"), "sparsectrl.control"),
    T("comfy.controlnet.ControlNet.copy", (), "sparsectrl.control"),
    T("comfy.controlnet.ControlNet.pre_run", ("model", "percent_to_timestep_function"), "sparsectrl.control"),
    T("comfy.controlnet.ControlNet.cleanup", (), "sparsectrl.control"),
    T("comfy.controlnet.ControlBase.set_cond_hint", ("cond_hint", "strength", "timestep_percent_range", "vae", "extra_concat"),
      "sparsectrl.control (overridden: keyframes are encoded later, with the VAE of the run)"),
    T("comfy.controlnet.ControlBase.copy_to", ("c",), "sparsectrl.control"),
    T("comfy.controlnet.ControlBase.control_merge", ("control", "control_prev", "output_dtype"), "sparsectrl.control"),
    T("comfy.latent_formats.SD15", (), "sparsectrl.control (RGB keyframes in SD1.5's latent scale)"),
    T("comfy.latent_formats.LatentFormat.process_in", ("latent",), "sparsectrl.control, animate.pia, animate.animatelcm_i2v"),
    T("comfy.sd.VAE.spacial_compression_encode", (), "sparsectrl.control (keyframe size in latents)"),
    T("comfy.cldm.cldm.ControlNet.forward", (), "sparsectrl.model (overridden: the encoder with motion modules)"),
    T("comfy.ldm.modules.diffusionmodules.openaimodel.TimestepEmbedSequential", (), "sparsectrl.model"),
    T("comfy.ldm.modules.diffusionmodules.util.timestep_embedding", ("timesteps", "dim"), "sparsectrl.model"),
    T("comfy.ops.manual_cast.conv_nd", ("dims",), "sparsectrl.model (through the operations passed in)"),
    T("comfy.cldm.cldm.ControlNet.__init__", ("hint_channels", "operations", "device", "dtype"), "sparsectrl.model"),
    T("comfy.model_management.loaded_models", ("only_currently_used",), "sparsectrl.control (VAE-encoding keyframes mid-sampling)"),
    T("comfy.model_management.cast_to_device", ("tensor", "device", "dtype"), "sparsectrl.control"),
    T("comfy.model_management.unet_manual_cast", ("weight_dtype", "inference_device"), "sparsectrl.loader"),
    T("comfy.ops.pick_operations", ("weight_dtype", "compute_dtype"), "sparsectrl.loader"),
    T("comfy.utils.weight_dtype", ("sd",), "sparsectrl.loader"),
    T("comfy.utils.repeat_to_batch_size", ("tensor", "batch_size"), "sampling.prompts.cond_frames (conds tiled to the video as ComfyUI "
      "tiles them)"),
    T("comfy.utils.common_upscale", ("samples", "width", "height", "upscale_method", "crop"), "sparsectrl.control (keyframe resize)"),
    # Model folders.
    T("folder_paths.models_dir", (), "nodes (folders)"),
    T("folder_paths.folder_names_and_paths", (), "nodes (folders)"),
    T("folder_paths.add_model_folder_path", ("folder_name", "full_folder_path"), "nodes (folders)"),
    T("folder_paths.get_filename_list", ("folder_name",), "nodes"),
    T("folder_paths.get_full_path", ("folder_name", "filename"), "nodes (folders)"),
    T("folder_paths.get_folder_paths", ("folder_name",), "nodes (folders)"),
    # Training's private helpers: imported only when training runs.
    T("comfy_extras.nodes_train.patch", ("m",), "training (gradient checkpointing)"),
    T("comfy_extras.nodes_train.unpatch", ("m",), "training"),
    T("comfy_extras.nodes_train.find_all_highest_child_module_with_forward", ("model",), "training"),
    T("comfy.weight_adapter.lora.LoraDiff.__init__", ("weights",), "training (LoRA weights)"),
    T("comfy.samplers.CFGGuider", (), "training (the guider the trainer samples through)"),
    T("comfy.samplers.Sampler", (), "training"),
    T("comfy.samplers.Sampler.sample", (), "training.trainer (overridden: the training loop runs as the guider's sampler, "
      "called with KSAMPLER.sample's arguments)"),
    T("comfy.samplers.KSAMPLER.sample", ("model_wrap", "sigmas", "extra_args", "callback", "noise", "latent_image", "denoise_mask",
                                        "disable_pbar"), "training.trainer (the arguments its sampler takes)"),
    T("comfy.samplers.CFGGuider.inner_set_conds", ("conds",), "training (the clips' captions)"),
    T("server.PromptServer.send_progress_text", ("text", "node_id"), "nodes.train (step and loss on the node)"),
    T("server.PromptServer.instance", (), "nodes.train (the running server), routes"),
    T("server.PromptServer", (), "routes (the ADE converter's /animdiff/ade/* on the running server's routes), nodes.train"),
    T("aiohttp.web.json_response", ("data", "status"), "routes (the ADE converter's answers)"),
)

# transformer_options keys the pack reads inside a UNet call (DIFFUSION_MODEL wrapper) or its model_options
# (CALC_COND_BATCH wrapper); the contract test samples a real model and checks each is set.
TRANSFORMER_OPTIONS = (OptionKeys.SIGMAS, OptionKeys.COND_OR_UNCOND, OptionKeys.SAMPLE_SIGMAS, OptionKeys.UUIDS)
# transformer_options keys the pack sets for other packs' patches (sampling.windows.params), and reads back.
SET_TRANSFORMER_OPTIONS = (OptionKeys.AD_PARAMS, OptionKeys.CONTEXT_WINDOW)

# Attributes of ComfyUI ControlNet objects (comfy.controlnet.ControlBase) that window slicing reads and sets.
CONTROL_ATTRIBUTES = ("cond_hint_original", "cond_hint", "extra_concat_orig", "extra_concat", "previous_controlnet")

# Private torch attributes the pack reads or sets: injection swaps each UNet block's layer list (``nn.Module._modules``)
# for one call, and fingerprints the blocks by it.
TORCH_ATTRIBUTES = ("_modules",)

# UNetModel attributes motion-module placement reads.
UNET_ATTRIBUTES = ("input_blocks", "middle_block", "output_blocks", "model_channels", "channel_mult", "num_res_blocks", "out")
