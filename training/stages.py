"""What each training stage trains, how it is attached to ComfyUI's patchers, and the file layout it saves.

- ``motion_lora``: LoRA matrices on the motion module's temporal attention projections (``to_q``,
  ``to_k``, ``to_v``, ``to_out.0``), as weight wrappers on a clone of the motion module's patcher;
  saved as ``<attention>.processor.<proj>_lora.{down,up}.weight`` (the original ``v2_lora_*`` files).
- ``domain_adapter``: LoRA matrices on the image model's self- and cross-attention projections
  (``attn1``/``attn2``), as weight wrappers on a clone of the MODEL's patcher, trained on single
  frames without a motion module; saved in the ``v3_sd15_adapter`` layout (diffusers module names).
- ``motion_module``: every parameter of a motion module, new (zero-initialised output, the paper's
  identity start) or a float32 copy of a loaded one; saved in the official layout (the keys of
  :class:`~motion_module.network.MotionNetwork`'s state dict, ``pos_encoder.pe`` included).

LoRA updates are ``W + up @ down`` with no rank scaling, the original loader's math (ComfyUI's
``LoraDiff`` train adapter with ``alpha == rank``). ``up`` starts at zero, so training starts from
exactly the frozen model; ``down`` starts as N(0, 1/rank²) like diffusers' ``LoRALinearLayer``.
Everything random is drawn from the one generator the caller passes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.patcher_extension
import comfy.utils
import torch
from torch import nn

from ..animate.model import apply_motion_module
from ..errors import TrainingError
from ..motion_module.attention import TemporalAttention
from ..motion_module.config import MotionModuleConfig
from ..motion_module.injection import sd_unet
from ..motion_module.loader import LoadedMotionModule
from ..motion_module.loader import motion_patcher as core_motion_patcher
from ..motion_module.network import MotionNetwork
from ..sampling.noise import betas
from ..touchpoints import WrapperKeys

PROJECTIONS = ("to_q", "to_k", "to_v", "to_out")
# diffusers UNet weight names of the image model's attention projections
ADAPTER_TARGET = re.compile(r"^(?P<layer>.+\.attentions\.\d+\.transformer_blocks\.\d+\.attn[12])\.(?P<proj>to_q|to_k|to_v|to_out\.0)\.weight$")


@dataclass
class Setup:
    """One stage, ready to train: the patcher the sampler runs and the parameters the optimizer updates."""

    stage: str
    patcher: comfy.model_patcher.ModelPatcher  # the MODEL to run (animated for the motion stages)
    parameters: dict[str, nn.Parameter]  # by their name in the saved file, sorted
    video: bool  # clips of frames through a motion module, or single frames
    export: Callable[[], dict[str, torch.Tensor]]  # the saved file's tensors, float32 on the CPU
    info: dict[str, str] = field(default_factory=dict)  # safetensors metadata
    frozen_modules: list[nn.Module] = field(default_factory=list)  # whose parameters must get no gradients
    checkpointable: Callable[[], list[nn.Module]] = list  # what gradient checkpointing wraps
    motion_module: LoadedMotionModule | None = None  # the motion module the patcher runs, if any


# ---------------------------------------------------------------- LoRA targets and adapters

def motion_lora_targets(network: MotionNetwork) -> dict[str, str]:
    """``{file layer ("<attention>.processor.to_q"): motion-module weight key ("<attention>.to_q.weight")}``."""
    targets = {}
    for name, module in network.named_modules():
        if isinstance(module, TemporalAttention):
            for proj in PROJECTIONS:
                targets[f"{name}.processor.{proj}"] = f"{name}.{proj}{'.0' if proj == 'to_out' else ''}.weight"
    return dict(sorted(targets.items()))


def domain_adapter_targets(model: comfy.model_base.BaseModel) -> dict[str, str]:
    """``{file layer ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q"): model weight key}``.

    The names are the diffusers ones ComfyUI's LoRA key map (and so ``apply_domain_adapter``) reads.
    """
    targets = {}
    for key, unet_key in comfy.utils.unet_to_diffusers(model.model_config.unet_config).items():
        match = ADAPTER_TARGET.match(key)
        if match:
            targets[f"{match['layer']}.processor.{match['proj'].removesuffix('.0')}"] = f"diffusion_model.{unet_key}"
    return dict(sorted(targets.items()))


def lora_adapter(weight: torch.Tensor, rank: int, generator: torch.Generator) -> nn.Module:
    """A trainable ``W + up @ down`` for ``weight`` (out, in): ``up`` zero, ``down`` N(0, 1/rank²), float32 (ComfyUI's
    training ``LoraDiff``, imported only when training runs)."""
    from comfy.weight_adapter.lora import LoraDiff

    out_features, in_features = weight.shape
    down = torch.randn(rank, in_features, generator=generator) / rank
    up = torch.zeros(out_features, rank)
    return LoraDiff((up, down, float(rank), None, None, None))  # alpha == rank: scale 1, as the original loader


def attach_loras(patcher: comfy.model_patcher.ModelPatcher, targets: dict[str, str], rank: int, generator: torch.Generator,
                 device: torch.device) -> dict[str, nn.Parameter]:
    """Add a LoRA weight wrapper per target to ``patcher``; returns its parameters by their name in the file."""
    weights = patcher.model.state_dict()
    missing = [key for key in targets.values() if key not in weights]
    if missing:
        raise TrainingError(f"the model has no weight {missing[0]} (and {len(missing) - 1} more LoRA targets)")
    parameters = {}
    for layer, key in targets.items():
        adapter = lora_adapter(weights[key], rank, generator).to(device)
        patcher.add_weight_wrapper(key, adapter)
        parameters[f"{layer}_lora.down.weight"] = adapter.lora_down.weight
        parameters[f"{layer}_lora.up.weight"] = adapter.lora_up.weight
    return parameters


class InferenceTensorCopy:
    """Weight wrapper for frozen layers: a weight made under ``torch.inference_mode`` (a checkpoint loaded by a
    node) cannot be saved for backward, so it is used through a normal copy, made per call and freed after."""

    def __call__(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.clone() if weight.is_inference() else weight


def guard_inference_weights(patcher: comfy.model_patcher.ModelPatcher, skip: set[str] = frozenset()) -> int:
    """Give every ComfyUI-op weight/bias of ``patcher``'s model (but ``skip``) an :class:`InferenceTensorCopy`
    wrapper if any of its tensors was made in inference mode; returns how many were added."""
    if not any(t.is_inference() for t in patcher.model.state_dict().values()):
        return 0
    guard, count = InferenceTensorCopy(), 0
    for name, module in patcher.model.named_modules():
        if hasattr(module, "weight_function"):
            for kind in ("weight", "bias"):
                key = f"{name}.{kind}" if name else kind
                if getattr(module, kind, None) is not None and key not in skip:
                    patcher.add_weight_wrapper(key, guard)
                    count += 1
    return count


# ---------------------------------------------------------------- motion modules

def init_motion_network(config: MotionModuleConfig, generator: torch.Generator, device=None) -> MotionNetwork:
    """A new float32 motion module as the original initialises one: PyTorch's default Linear init (uniform in
    ±1/sqrt(fan_in)), norms 1/0, and every ``proj_out`` zero, so that it starts as the identity."""
    model = MotionNetwork(config, dtype=torch.float32)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                bound = 1 / math.sqrt(module.in_features)
                module.weight.uniform_(-bound, bound, generator=generator)
                if module.bias is not None:
                    module.bias.uniform_(-bound, bound, generator=generator)
            elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
                module.weight.fill_(1.0)
                module.bias.zero_()
        for key in model.module_keys():
            proj_out = model.module_at(key).temporal_transformer.proj_out
            proj_out.weight.zero_()
            proj_out.bias.zero_()
    return model.to(device)


def motion_network_copy(motion_module: LoadedMotionModule, device=None) -> MotionNetwork:
    """A float32 copy of a loaded motion module's weights, to fine-tune without touching the loaded one."""
    if motion_module.patcher.patches:
        raise TrainingError(f"training: {motion_module.describe()} carries MotionLoRAs; fine-tune the motion module without them")
    model = MotionNetwork(motion_module.config, dtype=torch.float32)
    model.load_state_dict({k: v.detach().float() for k, v in motion_module.network.state_dict().items()})
    return model.to(device)


def motion_patcher(network: MotionNetwork) -> comfy.model_patcher.ModelPatcher:
    """A plain (never dynamic-VRAM) patcher: trained weights must be the module's own parameters."""
    return core_motion_patcher(network, disable_dynamic=True)


def describe_model(model: comfy.model_patcher.ModelPatcher) -> str:
    return type(model.model.model_config).__name__


def check_image_model(model: comfy.model_patcher.ModelPatcher) -> None:
    if sd_unet(model) is None:
        raise TrainingError(f"training needs an SD1.5/SDXL UNet model, not a {describe_model(model)} model")
    if model.get_wrappers(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WrapperKeys.MOTION_MODULE):
        raise TrainingError("training: this MODEL already has a motion module applied; pass the plain model "
                         "(the trainer inserts the motion module itself)")


def cpu_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", torch.float32, copy=True) for k, v in sorted(tensors.items())}


def unet_checkpointable(model: comfy.model_patcher.ModelPatcher) -> list[nn.Module]:
    """The UNet's blocks as ComfyUI's own LoRA trainer checkpoints them."""
    from comfy_extras.nodes_train import find_all_highest_child_module_with_forward  # imported only when used

    return find_all_highest_child_module_with_forward(model.model.diffusion_model)


def motion_checkpointable(model: comfy.model_patcher.ModelPatcher, network: MotionNetwork) -> list[nn.Module]:
    return unet_checkpointable(model) + [network.module_at(key) for key in network.module_keys()]


# ---------------------------------------------------------------- the stages

class Stage:
    """One of the paper's training stages, all of it in one place: what it takes, its setup, its result as a graph value
    and its file.

    ``uses_motion_module``: it trains with a motion module (a MOTION_MODULE); ``creates_motion_module``: it may also start
    a new one from a :class:`MotionModuleConfig` (so it needs no file). ``rank``: the default LoRA rank (None: no LoRA).
    ``video``: clips of frames through a motion module, or single frames. ``output``: the graph type the trained file
    becomes; ``file_format``: its layout, in the file's metadata; ``title``: its name in messages.
    """

    name: str
    title: str
    uses_motion_module: bool
    creates_motion_module: bool = False
    rank: int | None
    video: bool
    output: str
    file_format: str

    def check(self, motion_module) -> None:
        """Refuse a motion-module argument this stage cannot take."""
        if not self.uses_motion_module and motion_module is not None:
            raise TrainingError(f"training: the {self.name} stage trains the image model alone; pass no motion module")
        if self.uses_motion_module and motion_module is None:
            raise TrainingError(f"training: the {self.name} stage needs a motion module")

    def setup(self, model: comfy.model_patcher.ModelPatcher, motion_module, rank: int | None, generator: torch.Generator,
              beta_schedule: str) -> Setup:
        """The stage ready to train on ``model`` (frozen): its patcher, its parameters, how its file is exported."""
        raise NotImplementedError

    def motion_module(self, result, motion_module: LoadedMotionModule | None, strength: float, name: str) -> LoadedMotionModule:
        """The trained file (``result``: a TrainResult) as a MOTION_MODULE, through the pack's loaders."""
        raise TrainingError(f"training: the {self.name} stage trains no motion module; use model()")

    def model(self, result, model: comfy.model_patcher.ModelPatcher, strength: float, name: str) -> comfy.model_patcher.ModelPatcher:
        """``model`` with the trained file (``result``: a TrainResult) applied, as a MODEL."""
        raise TrainingError(f"training: the {self.name} stage trains no image-model adapter; use motion_module()")

    def __repr__(self) -> str:
        return self.name


class MotionLoRAStage(Stage):
    """LoRA on the motion module's attention projections; UNet and motion module frozen."""

    name, uses_motion_module, rank, video, output = "motion_lora", True, 64, True, "MOTION_MODULE"  # rank of the v2_lora_* files
    title = "MotionLoRA"
    file_format = "AnimateDiff MotionLoRA (<attention>.processor.<proj>_lora.{down,up}.weight)"

    def setup(self, model, motion_module, rank, generator, beta_schedule):
        check_image_model(model)
        if not isinstance(motion_module, LoadedMotionModule):
            raise TrainingError("training: the motion_lora stage needs a loaded motion module (MOTION_MODULE)")
        patcher = motion_module.patcher.clone()
        targets = motion_lora_targets(motion_module.network)
        parameters = attach_loras(patcher, targets, rank, generator, patcher.load_device)
        guard_inference_weights(patcher, skip=set(targets.values()))
        trained = LoadedMotionModule(motion_module.name, patcher, motion_module.loras)
        animated = apply_motion_module(model, trained, beta_schedule)
        guard_inference_weights(animated)
        config = motion_module.config
        info = {"rank": str(rank), "base": config.base, "motion_module": motion_module.name, "motion_module_version": config.version,
                "beta_schedule": betas.schedule_for(beta_schedule, config.version), "format": self.file_format}
        return Setup(self.name, animated, parameters, True, lambda: cpu_tensors(parameters), info,
                     [model.model, motion_module.network], lambda: motion_checkpointable(model, motion_module.network), trained)

    def motion_module(self, result, motion_module, strength, name):
        """``motion_module`` with the trained MotionLoRA at ``strength``, through the pack's MotionLoRA loader."""
        from ..motion_module.lora import apply_motion_lora, parse_motion_lora

        if motion_module is None:
            raise TrainingError("training: a MotionLoRA is applied to a motion module; pass motion_module=")
        return apply_motion_lora(motion_module, parse_motion_lora(result.tensors, name), name, strength)


class DomainAdapterStage(Stage):
    """LoRA on the image model's attention projections, trained on single frames; no motion module."""

    name, uses_motion_module, rank, video, output = "domain_adapter", False, 128, False, "MODEL"  # rank of v3_sd15_adapter
    title = "domain adapter"
    file_format = "AnimateDiff domain adapter (v3_sd15_adapter: <attention>.processor.<proj>_lora.{down,up}.weight)"

    def setup(self, model, motion_module, rank, generator, beta_schedule):
        check_image_model(model)
        patcher = model.clone()
        targets = domain_adapter_targets(model.model)
        if not targets:
            raise TrainingError(f"training: found no attention projections to adapt in this {describe_model(model)} model")
        parameters = attach_loras(patcher, targets, rank, generator, patcher.load_device)
        guard_inference_weights(patcher, skip=set(targets.values()))
        version = "sdxl" if isinstance(model.model, comfy.model_base.SDXL) else "v3"  # the adapter is part of v3 (SD1.5)
        schedule = betas.schedule_for(beta_schedule, version)
        sampling = betas.model_sampling_for(schedule, model.get_model_object("model_sampling"))
        if sampling is not None:
            patcher.add_object_patch("model_sampling", sampling)
        info = {"rank": str(rank), "base": "SDXL" if version == "sdxl" else "SD1.5", "beta_schedule": schedule, "format": self.file_format}
        return Setup(self.name, patcher, parameters, False, lambda: cpu_tensors(parameters), info,
                     [model.model], lambda: unet_checkpointable(model))

    def model(self, result, model, strength, name):
        """``model`` with the trained adapter at alpha ``strength``, through the pack's adapter loader."""
        from ..image_model.domain_adapter import apply_domain_adapter

        return apply_domain_adapter(model, result.tensors, name, strength)


class MotionModuleStage(Stage):
    """Every weight of a new (``MotionModuleConfig``) or copied (``LoadedMotionModule``) motion module; the image model
    (with any adapter patched into it) frozen."""

    name, uses_motion_module, creates_motion_module, rank, video, output = "motion_module", True, True, None, True, "MOTION_MODULE"
    title = "motion module"
    file_format = "AnimateDiff motion module (official layout)"

    def setup(self, model, motion_module, rank, generator, beta_schedule):
        check_image_model(model)
        device = comfy.model_management.get_torch_device()
        if isinstance(motion_module, MotionModuleConfig):
            trainable, name, origin = init_motion_network(motion_module, generator, device), f"new {motion_module.version} motion module", "new"
        elif isinstance(motion_module, LoadedMotionModule):
            trainable, name, origin = motion_network_copy(motion_module, device), motion_module.name, "fine-tuned"
        else:
            raise TrainingError("training: the motion_module stage needs a MotionModuleConfig (new module) or a MOTION_MODULE to fine-tune")
        trainable.requires_grad_(True)
        trained = LoadedMotionModule(name, motion_patcher(trainable))
        animated = apply_motion_module(model, trained, beta_schedule)
        guard_inference_weights(animated)
        parameters = dict(sorted(trainable.named_parameters()))
        config = trainable.config
        info = {"base": config.base, "motion_module_version": config.version, "motion_module": name, "origin": origin,
                "beta_schedule": betas.schedule_for(beta_schedule, config.version), "format": self.file_format}
        return Setup(self.name, animated, parameters, True, lambda: cpu_tensors(trainable.state_dict()), info,
                     [model.model], lambda: motion_checkpointable(model, trainable), trained)

    def motion_module(self, result, motion_module, strength, name):
        """The trained motion module itself (in ComfyUI's UNet dtype)."""
        trained = MotionNetwork(result.motion_config, dtype=comfy.model_management.unet_dtype())
        trained.load_state_dict(result.tensors)
        return LoadedMotionModule(name, motion_patcher(trained.eval().requires_grad_(False)))


STAGES: dict[str, Stage] = {stage.name: stage for stage in (MotionLoRAStage(), DomainAdapterStage(), MotionModuleStage())}
