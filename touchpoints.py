"""Every place the pack touches ComfyUI, by name: the contract a ComfyUI version must keep for the pack to work.

``tests/test_touchpoints.py`` resolves each :class:`Touchpoint` in the running ComfyUI and checks that it
exists and still takes the parameters the pack passes, that the wrapper types and ``transformer_options``
keys are what a real sampling run shows, and that ControlNet objects carry the attributes window slicing
reads. A ComfyUI update that moves or changes any of them fails there with the symbol's name, not deep in
a sampling run. Add a line here with every new use of ComfyUI.

Nothing here imports ComfyUI: this module is the list, the test is the check.
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


T = Touchpoint
PATCHER = "comfy.model_patcher.ModelPatcher"

TOUCHPOINTS: tuple[Touchpoint, ...] = (
    # The ModelPatcher: clones, wrappers, object patches, weight patches, additional models.
    T(f"{PATCHER}.__init__", ("model", "load_device", "offload_device"), "motion_module.loader, training"),
    T(f"{PATCHER}.clone", (), "every node that returns a MODEL / MOTION_MODULE"),
    T(f"{PATCHER}.add_wrapper_with_key", ("wrapper_type", "key", "wrapper"), "motion_module.patcher, sampling.windowed"),
    T(f"{PATCHER}.get_wrappers", ("wrapper_type", "key"), "motion_module.patcher, sampling.windowed"),
    T(f"{PATCHER}.set_additional_models", ("key", "models"), "motion_module.patcher"),
    T(f"{PATCHER}.add_object_patch", ("name", "obj"), "motion_module.patcher (model_sampling)"),
    T(f"{PATCHER}.get_model_object", ("name",), "motion_module.patcher"),
    T(f"{PATCHER}.add_patches", ("patches", "strength_patch"), "motion_module.lora, domain adapter"),
    T(f"{PATCHER}.add_weight_wrapper", ("name", "function"), "training (LoRA weight adapters)"),
    T(f"{PATCHER}.set_model_compute_dtype", ("dtype",), "training"),
    T("comfy.model_patcher.wipe_lowvram_weight", ("m",), "training"),
    T("comfy.model_patcher.CoreModelPatcher", (), "motion_module.loader (the host's own patcher class)", since="0.4"),
    T(f"{PATCHER}.deepclone_multigpu", ("new_load_device",), "motion_module.loader (cached_patcher_init: the motion "
      "patcher's reload factory, called with disable_dynamic)", since="0.4"),
    T(f"{PATCHER}.add_callback_with_key", ("call_type", "key", "callback"), "motion_module.patcher (ON_PRE_RUN)"),
    T("comfy.patcher_extension.CallbacksMP.ON_PRE_RUN", (), "motion_module.patcher (which motion network each UNet runs)"),
    T(f"{PATCHER}.get_additional_models_with_key", ("key",), "motion_module.patcher"),
    T("comfy_extras.nodes_context_windows.ContextWindowsManualNode", (), "sampling.windowed (model_options['context_handler'] "
      "is refused beside AnimDiff's windows)"),
    # Wrapper types and the functions they wrap (the wrapper receives the wrapped function's arguments).
    T("comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL", (), "motion_module.patcher"),
    T("comfy.patcher_extension.WrappersMP.CALC_COND_BATCH", (), "sampling.windowed"),
    T("comfy.patcher_extension.WrappersMP.PREPARE_SAMPLING", (), "sampling.windowed"),
    T("comfy.patcher_extension.WrappersMP.OUTER_SAMPLE", (), "noise (reads the noise tensor), sampling.cond_frames (the "
      "guider's conds against the noise's frames)"),
    T("comfy.ldm.modules.diffusionmodules.openaimodel.UNetModel._forward",
      ("x", "timesteps", "context", "y", "control", "transformer_options"), "motion_module.patcher (DIFFUSION_MODEL executor)"),
    T("comfy.samplers._calc_cond_batch", ("model", "conds", "x_in", "timestep", "model_options"), "sampling.windowed"),
    T("comfy.sampler_helpers._prepare_sampling", ("model", "noise_shape", "conds", "model_options"), "sampling.windowed"),
    # The UNet the motion modules go into.
    T("comfy.ldm.modules.diffusionmodules.openaimodel.forward_timestep_embed", ("ts", "x", "emb", "context", "transformer_options"),
      "motion_module.injection (plain layers are called as layer(x))"),
    T("comfy.ldm.modules.diffusionmodules.openaimodel.ResBlock", (), "motion_module.injection (in_layers/out_layers norms)"),
    T("comfy.ldm.modules.diffusionmodules.openaimodel.Upsample", (), "motion_module.injection"),
    T("comfy.ldm.modules.attention.SpatialTransformer", (), "motion_module.injection"),
    T("comfy.ldm.modules.attention.optimized_attention", ("q", "k", "v", "heads"), "motion_module.attention"),
    T("comfy.ops.manual_cast.Linear", (), "motion_module (casting layers)"),
    T("comfy.ops.manual_cast.LayerNorm", (), "motion_module"),
    T("comfy.ops.manual_cast.GroupNorm", (), "motion_module"),
    # Model management and sampling objects.
    T("comfy.model_management.get_torch_device", (), "motion_module.loader"),
    T("comfy.model_management.unet_offload_device", (), "motion_module.loader"),
    T("comfy.model_management.unet_dtype", ("model_params", "weight_dtype"), "motion_module.loader, sparsectrl.loader"),
    T("comfy.model_management.throw_exception_if_processing_interrupted", (), "training (interrupt)"),
    T("comfy.model_management.load_models_gpu", ("models",), "training"),
    T("comfy.model_management.free_memory", ("memory_required", "device"), "training"),
    T("comfy.model_sampling.ModelSamplingDiscrete.__init__", ("model_config",), "sampling.schedules"),
    T("comfy.model_sampling.ModelSamplingDiscrete.percent_to_sigma", ("percent",), "motion_module.patcher"),
    T("comfy.model_sampling.EPS", (), "sampling.schedules (prediction type)"),
    T("comfy.model_sampling.V_PREDICTION", (), "training (loss target)"),
    T("comfy_extras.nodes_model_advanced.LCM", (), "sampling.schedules (AnimateLCM)"),
    T("comfy_extras.nodes_model_advanced.ModelSamplingDiscreteDistilled", (), "sampling.schedules (AnimateLCM)"),
    T("comfy.model_base.BaseModel", (), "training"),
    T("comfy.model_base.SDXL", (), "training"),
    T("comfy.conds.CONDRegular._copy_with", ("cond",), "sampling.windowed (per-frame cond slices)"),
    T("comfy.context_windows.IndexListContextWindow.__init__", ("index_list",), "sampling.window_params (core's window info for patches)"),
    T("comfy.sd.CLIP.tokenize", ("text",), "sampling.prompt_schedule (as CLIPTextEncode)"),
    T("comfy.sd.CLIP.encode_from_tokens_scheduled", ("tokens",), "sampling.prompt_schedule (as CLIPTextEncode)"),
    # LoRA machinery (domain adapter) and utilities.
    T("comfy.lora.model_lora_keys_unet", ("model", "key_map"), "domain adapter"),
    T("comfy.lora.load_lora", ("lora", "to_load", "log_missing"), "domain adapter"),
    T("comfy.utils.ProgressBar.__init__", ("total",), "training node"),
    T("comfy.utils.ProgressBar.update_absolute", ("value", "total"), "training node"),
    T("comfy.utils.unet_to_diffusers", ("unet_config",), "training (adapter keys)"),
    # The noise and FreeInit (one OUTER_SAMPLE wrapper around the guider's whole sampling).
    T("comfy.samplers.CFGGuider.outer_sample", ("noise", "latent_image", "sampler", "sigmas", "denoise_mask", "callback",
                                                 "disable_pbar", "seed"), "sampling.start (OUTER_SAMPLE executor; class_obj is the guider)"),
    T(f"{PATCHER}.remove_wrappers_with_key", ("wrapper_type", "key"), "sampling.start"),
    # SparseCtrl: a ComfyUI ControlNet whose network is ComfyUI's ControlNet encoder with motion modules.
    T("comfy.controlnet.ControlNet.__init__", ("control_model", "load_device", "manual_cast_dtype"), "sparsectrl.control"),
    T("comfy.controlnet.ControlNet.get_control", ("x_noisy", "t", "cond", "batched_number", "transformer_options"), "sparsectrl.control"),
    T("comfy.controlnet.ControlNet.copy", (), "sparsectrl.control"),
    T("comfy.controlnet.ControlNet.pre_run", ("model", "percent_to_timestep_function"), "sparsectrl.control"),
    T("comfy.controlnet.ControlNet.cleanup", (), "sparsectrl.control"),
    T("comfy.cldm.cldm.ControlNet.__init__", ("hint_channels", "operations", "device", "dtype"), "sparsectrl.model"),
    T("comfy.model_management.loaded_models", ("only_currently_used",), "sparsectrl.control (VAE-encoding keyframes mid-sampling)"),
    T("comfy.model_management.cast_to_device", ("tensor", "device", "dtype"), "sparsectrl.control"),
    T("comfy.model_management.unet_manual_cast", ("weight_dtype", "inference_device"), "sparsectrl.loader"),
    T("comfy.ops.pick_operations", ("weight_dtype", "compute_dtype"), "sparsectrl.loader"),
    T("comfy.utils.weight_dtype", ("sd",), "sparsectrl.loader"),
    T("comfy.utils.repeat_to_batch_size", ("tensor", "batch_size"), "sampling.cond_frames (conds tiled to the video as ComfyUI "
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
    T("server.PromptServer.send_progress_text", ("text", "node_id"), "training node (step and loss on the node)"),
    T("server.PromptServer", (), "routes (PromptServer.instance.routes: the ADE converter's /animdiff/ade/*)"),
    T("aiohttp.web.json_response", ("data", "status"), "routes (the ADE converter's answers)"),
)

# transformer_options keys the pack reads inside a UNet call (DIFFUSION_MODEL wrapper) or its model_options
# (CALC_COND_BATCH wrapper); the contract test samples a real model and checks each is set.
TRANSFORMER_OPTIONS = ("sigmas", "cond_or_uncond", "sample_sigmas")
# transformer_options keys the pack sets for other packs' patches (sampling.window_params), and reads back.
SET_TRANSFORMER_OPTIONS = ("ad_params", "context_window")

# Attributes of ComfyUI ControlNet objects (comfy.controlnet.ControlBase) that window slicing reads and sets.
CONTROL_ATTRIBUTES = ("cond_hint_original", "cond_hint", "extra_concat_orig", "extra_concat", "previous_controlnet")

# UNetModel attributes motion-module placement reads.
UNET_ATTRIBUTES = ("input_blocks", "middle_block", "output_blocks", "model_channels", "channel_mult", "num_res_blocks", "out")
