"""The training loop: noise-prediction MSE on the base model's discrete schedule, run through ComfyUI's sampling.

Each micro-step takes one clip (the motion stages: ``frames`` consecutive latents, one timestep for
the whole video; the domain adapter: ``image_batch`` single frames of one clip, a timestep each),
draws ``t`` uniformly from the schedule's 1000 steps and noise ``ε``, and feeds
``x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) ε`` to the model; the loss is the MSE to ``ε`` (to ``v`` for
v-prediction models). The schedule is the ``model_sampling`` the sampler would use: for the motion
stages the AnimateDiff one ``AnimDiffApplyMotionModule`` autoselects.

The model runs as in sampling: a ComfyUI ``CFGGuider`` (cfg 1, the clip's conditioning) loads the
patchers and calls the UNet with all wrappers (the motion module's included); a custom
``comfy.samplers.Sampler`` holds the loop, like ComfyUI's own ``TrainLoraNode``. The guider returns the
denoised ``x0``; since ``x0_pred - x0 = -c_out(σ) (pred - target)`` for eps and v models, the loss is
``mean(((x0_pred - x0) / c_out)²)``, exactly the MSE on the model's raw output.

Determinism: one ``torch.Generator`` (CPU, seeded) draws the LoRA / new-module init, then per
micro-step the data order (a permutation per epoch), the clip window or frames, the timesteps and the
noise. A training state (trainable weights, AdamW and grad-scaler state, generator state, data order,
step, loss history) is written every ``checkpoint_every`` steps; resuming from it continues the
identical sequence, so the final weights equal an uninterrupted run's (bit for bit on the CPU).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import comfy.model_management
import comfy.model_patcher
import comfy.model_sampling
import comfy.samplers
import safetensors.torch
import torch

from ..errors import TrainingError, TrainingStateError, require_finite
from ..motion_module.config import MotionModuleConfig
from ..motion_module.loader import LoadedMotionModule
from ..sampling.noise import betas
from ..weight_files import content_hash, write_atomically
from . import stages
from .clips import TrainingClips
from .state import START_OVER, TrainingState, check_replaceable

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Config fields that may differ between a run and its resumption (they do not change what is computed).
RESUMABLE_CHANGES = ("steps", "checkpoint_every", "save_dtype", "gradient_checkpointing")


@dataclass
class TrainConfig:
    """Hyperparameters of one training run. ``steps`` counts optimizer steps of ``grad_accumulation`` clips each."""

    stage: str = "motion_lora"  # a name in stages.STAGES: motion_lora | domain_adapter | motion_module
    steps: int = 2000
    learning_rate: float = 1e-4
    rank: int | None = None  # LoRA stages; default 64 (motion_lora) / 128 (domain_adapter), as the official files
    seed: int = 0
    frames: int = 16  # frames per training clip (motion stages)
    image_batch: int = 4  # frames per micro-step (domain_adapter), each an independent image
    grad_accumulation: int = 1
    weight_decay: float = 1e-2  # AdamW, as the original training
    max_grad_norm: float | None = 1.0
    beta_schedule: str = betas.AUTOSELECT
    precision: str = "auto"  # auto (bf16 on CUDA if supported, else fp16; fp32 on the CPU) | fp32 | bf16 | fp16
    gradient_checkpointing: bool = False
    checkpoint_every: int = 0  # optimizer steps between training-state files (0: only at the end, if a path is given)
    save_dtype: str = "fp16"  # dtype of the saved file's tensors

    def __post_init__(self):
        require_finite(**vars(self))
        if self.stage not in stages.STAGES:
            raise TrainingError(f"training: unknown stage {self.stage!r}; choose one of {', '.join(stages.STAGES)}")
        if self.rank is None:
            self.rank = stages.STAGES[self.stage].rank
        problems = [f"{name} must be at least {low}" for name, low in (("steps", 0), ("frames", 1), ("image_batch", 1),
                                                                       ("grad_accumulation", 1), ("checkpoint_every", 0))
                    if getattr(self, name) < low]
        if self.rank is not None and self.rank < 1:
            problems.append("rank must be at least 1")
        if not self.learning_rate > 0:
            problems.append("learning_rate must be positive")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {', '.join(PRECISIONS)}")
        if self.save_dtype not in DTYPES:
            problems.append(f"save_dtype must be one of {', '.join(DTYPES)}")
        if self.beta_schedule not in betas.BETA_SCHEDULES:
            problems.append(f"beta_schedule must be one of {betas.BETA_SCHEDULES}")
        if problems:
            raise TrainingError("training: " + "; ".join(problems))

    def trajectory(self) -> dict:
        """The fields that determine the computation (all but :data:`RESUMABLE_CHANGES`)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in RESUMABLE_CHANGES}


@dataclass(frozen=True)
class Progress:
    """Passed to the progress callback after every optimizer step."""

    step: int  # optimizer steps done
    steps: int
    loss: float  # this step's loss (mean over its accumulated clips)
    seconds: float  # since this run (or resumption) started


@dataclass
class TrainResult:
    """What a run produced: the file's tensors (float32, in the loadable layout) and its record."""

    stage: str
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]
    losses: list[float]
    config: TrainConfig
    motion_config: MotionModuleConfig | None = None  # the motion_module stage's architecture

    def save(self, path: str | Path, dtype: str | None = None) -> Path:
        """Write the ``.safetensors`` file (tensors in ``dtype``, default the config's ``save_dtype``) with the metadata."""
        path = Path(path)
        if path.suffix.lower() != ".safetensors":
            raise TrainingError(f"training: save to a .safetensors file, not {path.name}")
        dtype = DTYPES[dtype or self.config.save_dtype]
        tensors = {k: v.to(dtype).contiguous() for k, v in self.tensors.items()}
        metadata = {**self.metadata, "dtype": str(dtype).removeprefix("torch.")}
        return write_atomically(path, lambda tmp: safetensors.torch.save_file(tensors, str(tmp), metadata=metadata))

    def motion_module(self, motion_module: LoadedMotionModule | None = None, *, strength: float = 1.0,
                      name: str | None = None) -> LoadedMotionModule:
        """The trained weights as a MOTION_MODULE, through the pack's loaders: ``motion_module`` with the MotionLoRA at
        ``strength`` (``motion_lora``), or the trained module itself (``motion_module``)."""
        return stages.STAGES[self.stage].motion_module(self, motion_module, strength, name or f"trained_{self.stage}")

    def model(self, model: comfy.model_patcher.ModelPatcher, *, strength: float = 1.0,
              name: str | None = None) -> comfy.model_patcher.ModelPatcher:
        """``model`` with the trained domain adapter at alpha ``strength`` (``domain_adapter``), as a MODEL."""
        return stages.STAGES[self.stage].model(self, model, strength, name or f"trained_{self.stage}")


# ---------------------------------------------------------------- the objective

def prediction_kind(model_sampling) -> str:
    """``"eps"`` or ``"v"``: the model's prediction type; other kinds (LCM, x0, flow) cannot be trained here."""
    if not isinstance(model_sampling, comfy.model_sampling.ModelSamplingDiscrete):
        raise TrainingError(f"training needs a discrete-timestep (SD-style) model, not {type(model_sampling).__name__}")
    kind = betas.prediction_type(model_sampling)
    if kind is comfy.model_sampling.EPS:
        return "eps"
    if kind is comfy.model_sampling.V_PREDICTION:
        return "v"
    raise TrainingError(f"training: the model predicts {kind.__name__}; only eps and v-prediction models can be trained")


def output_scale(kind: str, sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """``c_out(σ)``: how much the denoised ``x0`` moves per unit of the model's raw output."""
    if kind == "eps":
        return sigma
    return sigma * sigma_data / (sigma ** 2 + sigma_data ** 2) ** 0.5


def noise_prediction_loss(denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], model_sampling, x0: torch.Tensor,
                          noise: torch.Tensor, sigma: torch.Tensor, autocast=None) -> torch.Tensor:
    """MSE between the model's output and its target (``noise`` for eps models, v for v-prediction) at noise
    levels ``sigma`` (one per latent, ``model_sampling.sigmas[t]``).

    ``x0``: scaled latents (``process_latent_in``); ``denoise(x, sigma)``: the denoised prediction in ComfyUI's
    convention (``x = x0 + σ ε``; the model sees ``x / sqrt(σ² + 1)``, DDPM's ``x_t``).
    """
    kind = prediction_kind(model_sampling)
    x = model_sampling.noise_scaling(sigma, noise, x0)
    with autocast or contextlib.nullcontext():
        denoised = denoise(x, sigma)
    scale = output_scale(kind, sigma, float(model_sampling.sigma_data)).view(-1, *[1] * (x0.ndim - 1))
    return (((denoised.float() - x0) / scale) ** 2).mean()


# ---------------------------------------------------------------- the run

class EpochOrder:
    """Clip indices, a fresh permutation from the generator at the start of every epoch."""

    def __init__(self, count: int):
        self.count, self.order, self.position = count, [], 0

    def next(self, generator: torch.Generator) -> int:
        if self.position >= len(self.order):
            self.order, self.position = torch.randperm(self.count, generator=generator).tolist(), 0
        self.position += 1
        return self.order[self.position - 1]

    def state(self) -> dict:
        return {"order": list(self.order), "position": self.position}

    def restore(self, state: dict) -> None:
        self.order, self.position = list(state["order"]), int(state["position"])


class TrainingSampler(comfy.samplers.Sampler):
    """The "sampler" a guider runs: the whole training loop, with the guider as the model."""

    def __init__(self, run: Run):
        self.run = run

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None, disable_pbar=False):
        self.run.loop(model_wrap, extra_args)
        return torch.zeros_like(noise)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if precision == "fp16" and device.type != "cuda":
        raise TrainingError("training: fp16 autocast needs a CUDA device; use bf16 or fp32")
    return DTYPES[precision]


@contextlib.contextmanager
def frozen(modules: list[torch.nn.Module]):
    """No gradients for the parameters of ``modules`` within the block; their flags are restored after."""
    changed = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in changed:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in changed:
            with torch.inference_mode(p.is_inference()):  # a node's weights are inference tensors
                p.requires_grad_(True)


@contextlib.contextmanager
def checkpointed(modules: list[torch.nn.Module]):
    """Gradient checkpointing on ``modules`` for the block, with ComfyUI's own trainer's per-module patch."""
    if not modules:
        yield
        return
    from comfy_extras.nodes_train import patch, unpatch

    try:
        for module in modules:
            patch(module)
        yield
    finally:
        for module in modules:
            unpatch(module)


class Run:
    """One training run (use :func:`train`)."""

    def __init__(self, config: TrainConfig, model: comfy.model_patcher.ModelPatcher, data: TrainingClips,
                 motion_module: LoadedMotionModule | MotionModuleConfig | None, progress: Callable[[Progress], None] | None,
                 state_path: Path | None):
        self.config, self.progress, self.state_path = config, progress, state_path
        self.data = data.detached()
        self.fingerprint = self.data.fingerprint()  # written with every state, checked on resume
        self.generator = torch.Generator().manual_seed(config.seed)
        self.stage = stages.STAGES[config.stage]
        self.setup = self.stage.setup(model, motion_module, config.rank, self.generator, config.beta_schedule)
        if self.setup.video:
            limit = self.setup.motion_module.config.max_frames
            if config.frames > limit:
                raise TrainingError(f"training: {config.frames} frames per clip, but {self.setup.motion_module.describe()} "
                                 f"has positional encodings for {limit}")
            if self.data.shortest < config.frames:
                raise TrainingError(f"training: a clip has {self.data.shortest} frames, fewer than the {config.frames} "
                                 "frames each training clip needs")
        patcher = self.setup.patcher
        self.device = patcher.load_device
        self.dtype = resolve_precision(config.precision, self.device)
        if (patcher.model.manual_cast_dtype or patcher.model_dtype()) != self.dtype:
            patcher.set_model_compute_dtype(self.dtype)  # as ComfyUI's trainer: the UNet computes in the training dtype
        self.parameters = list(self.setup.parameters.values())
        self.optimizer = torch.optim.AdamW(self.parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.order = EpochOrder(len(self.data))
        self.step, self.losses = 0, []
        self.state = TrainingState.new(state_path or "", self.identity(motion_module))

    # ------------------------------------------------ state

    def identity(self, motion_module) -> dict:
        """What a resumed run must share with this one (see :class:`~training.state.TrainingState`)."""
        return {"config": self.config.trajectory(), "clips": [list(x.shape) for x in self.data.latents], "data": self.fingerprint,
                "motion": motion_identity(motion_module), "motion_name": motion_name(motion_module),
                "shapes": {k: list(p.shape) for k, p in self.setup.parameters.items()}}

    def save_state(self) -> None:
        self.state.write(
            step=self.step, losses=list(self.losses), generator=self.generator.get_state(), order=self.order.state(),
            parameters={k: p.detach().to("cpu", copy=True) for k, p in self.setup.parameters.items()},
            optimizer=self.optimizer.state_dict(), scaler=self.scaler.state_dict())

    def restore(self, state: TrainingState) -> None:
        """Continue the run ``state`` holds: refused (naming the state file) unless it is this run."""
        now = self.state.contents
        other_data = lambda saved, _: f"was trained on other clips or captions ({len(state.contents['clips'])} clips; now {len(self.data)})"  # noqa: E731
        state.check_identity(now, {
            "config": lambda saved, current: "was trained with other settings: " + ", ".join(
                f"{k} {saved.get(k)!r} (now {current[k]!r})" for k in sorted(current) if saved.get(k) != current[k]),
            "clips": other_data, "data": other_data,
            "motion": lambda saved, current: f"was trained on another motion module ({state.contents.get('motion_name')}; now "
                                             f"{now['motion_name']}: other weights)",
            "shapes": lambda saved, current: "its trained weights do not fit this model / motion module",
        })
        contents = state.contents
        with torch.no_grad():
            for key, parameter in self.setup.parameters.items():
                parameter.copy_(contents["parameters"][key])
        try:
            self.optimizer.load_state_dict(contents["optimizer"])
            if self.scaler.is_enabled():
                self.scaler.load_state_dict(contents["scaler"])
            self.generator.set_state(contents["generator"])
            self.order.restore(contents["order"])
            self.step, self.losses = int(contents["step"]), [float(x) for x in contents["losses"]]
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise TrainingStateError(state.path, f"damaged: its optimizer or generator state cannot be restored ({err}); "
                                                 f"{START_OVER}") from None
        self.state = TrainingState(self.state.path, {**now, "run": state.run})  # the same run, written to this run's file

    # ------------------------------------------------ training

    def execute(self) -> None:
        """Train up to ``config.steps`` inside ComfyUI's sampling machinery."""
        if self.step >= self.config.steps:
            return
        patcher = self.setup.patcher
        checkpoint_modules = self.setup.checkpointable() if self.config.gradient_checkpointing else []
        with frozen(self.setup.frozen_modules), checkpointed(checkpoint_modules):
            # all of the GPU for training, fully loaded (as ComfyUI's TrainLoraNode)
            comfy.model_management.load_models_gpu([patcher, *patcher.get_nested_additional_models()], memory_required=1e20,
                                                   force_full_load=True)
            guider = comfy.samplers.CFGGuider(patcher)  # cfg 1: the conditioned prediction alone
            flat, self.entries = [], []
            for cond in self.data.conditionings:
                self.entries.append(list(range(len(flat), len(flat) + len(cond))))
                flat += cond
            guider.inner_set_conds({"positive": flat})
            first = self.data.latents[0]
            shape = (self.config.frames if self.setup.video else min(self.config.image_batch, first.shape[0]), *first.shape[1:])
            latent = torch.zeros(shape)
            try:
                guider.sample(latent, latent, TrainingSampler(self), torch.ones(1), disable_pbar=True, seed=self.config.seed)
            finally:
                self.unload()

    def unload(self) -> None:
        """Leave nothing of the training on the shared modules: unload what is loaded on the training device (the
        preload had evicted everything else) and drop the trainer's weight wrappers from the now unloaded layers."""
        comfy.model_management.free_memory(1e30, self.device)
        for patcher in [self.setup.patcher, *self.setup.patcher.get_nested_additional_models()]:
            for module in patcher.model.modules():
                if hasattr(module, "weight_function"):
                    comfy.model_patcher.wipe_lowvram_weight(module)

    def draw(self, index: int, timesteps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Latents ``x0`` of clip ``index`` and a timestep per latent."""
        latents, generator = self.data.latents[index], self.generator
        if self.setup.video:
            frames = self.config.frames
            start = int(torch.randint(latents.shape[0] - frames + 1, (), generator=generator))
            t = torch.randint(timesteps, (1,), generator=generator).expand(frames)  # one noise level per video
            return latents[start:start + frames], t
        chosen = torch.randperm(latents.shape[0], generator=generator)[:self.config.image_batch]
        return latents[chosen], torch.randint(timesteps, (len(chosen),), generator=generator)

    def loop(self, guider: comfy.samplers.CFGGuider, extra_args: dict) -> None:
        config = self.config
        model_sampling = guider.inner_model.model_sampling
        prediction_kind(model_sampling)  # refuse other prediction types before the first step
        sigmas = model_sampling.sigmas.detach().to("cpu", torch.float32)
        conds = guider.conds["positive"]
        autocast = torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)
        denoise = lambda x, sigma: guider(x, sigma, **extra_args)  # noqa: E731
        started = time.perf_counter()
        try:
            while self.step < config.steps:
                total = 0.0
                for _ in range(config.grad_accumulation):
                    index = self.order.next(self.generator)
                    x0, t = self.draw(index, len(sigmas))
                    noise = torch.randn(x0.shape, generator=self.generator)
                    guider.conds["positive"] = [conds[i] for i in self.entries[self.data.cond_index[index]]]
                    x0 = guider.inner_model.process_latent_in(x0)
                    loss = noise_prediction_loss(denoise, model_sampling, x0.to(self.device), noise.to(self.device),
                                                 sigmas[t].to(self.device), autocast)
                    self.scaler.scale(loss / config.grad_accumulation).backward()
                    total += loss.item()
                self.optimizer_step()
                self.step += 1
                self.losses.append(total / config.grad_accumulation)
                if self.state_path is not None and (self.step == config.steps or
                                                    (config.checkpoint_every and self.step % config.checkpoint_every == 0)):
                    self.save_state()
                if self.progress is not None:
                    self.progress(Progress(self.step, config.steps, self.losses[-1], time.perf_counter() - started))
        finally:
            guider.conds["positive"] = conds

    def optimizer_step(self) -> None:
        if self.config.max_grad_norm:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.parameters, self.config.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def result(self, model: comfy.model_patcher.ModelPatcher) -> TrainResult:
        config = self.config
        metadata = {"stage": config.stage, "steps": str(self.step), "seed": str(config.seed), "learning_rate": repr(config.learning_rate),
                    "frames": str(config.frames if self.setup.video else 1), "beta_schedule": config.beta_schedule,
                    "base_model": stages.describe_model(model), "trained_with": "ComfyUI-AnimDiff", "training_run": self.state.run,
                    **self.setup.info}
        if self.losses:
            metadata["final_loss"] = f"{self.losses[-1]:.6g}"
        motion_config = self.setup.motion_module.config if self.stage.creates_motion_module else None
        return TrainResult(config.stage, self.setup.export(), metadata, list(self.losses), config, motion_config)


def motion_identity(motion_module: LoadedMotionModule | MotionModuleConfig | None) -> dict | None:
    """A motion module's identity for a training state: the content hash of its frozen weights (of its file as read,
    computed here on first use) and the MotionLoRAs on it; a new module's config."""
    if isinstance(motion_module, LoadedMotionModule):
        file_hash = motion_module.network.content_hash
        content = file_hash() if file_hash is not None else content_hash(motion_module.network.state_dict())
        return {"content": content, "loras": [[name, float(strength)] for name, strength in motion_module.loras]}
    if isinstance(motion_module, MotionModuleConfig):
        return {"content": f"new {dataclasses.asdict(motion_module)}", "loras": []}
    return None


def motion_name(motion_module: LoadedMotionModule | MotionModuleConfig | None) -> str:
    """For messages only (a renamed file is still the same motion module)."""
    if isinstance(motion_module, LoadedMotionModule):
        return motion_module.describe()
    return f"a new {motion_module.version} motion module" if isinstance(motion_module, MotionModuleConfig) else "none"


def train(config: TrainConfig, model: comfy.model_patcher.ModelPatcher, data: TrainingClips,
          motion_module: LoadedMotionModule | MotionModuleConfig | None = None, *, progress: Callable[[Progress], None] | None = None,
          state_path: str | Path | None = None, resume: TrainingState | str | Path | None = None) -> TrainResult:
    """Train one stage; returns the weights in the file layout the pack's loaders read.

    ``model``: the MODEL (frozen); ``motion``: the MOTION_MODULE to train a MotionLoRA on (``motion_lora``), a
    MotionModuleConfig for a new module or a MOTION_MODULE to fine-tune (``motion_module``), nothing for the
    ``domain_adapter``; ``data``: :class:`TrainingClips`; ``progress``: called after every optimizer step with a
    :class:`Progress` (raise from it to stop); ``state_path``: where the training state is written every
    ``config.checkpoint_every`` steps and at the end; ``resume``: a state (file) to continue from, refused unless it is
    the same run (settings, clips and captions, motion module content).
    Works inside a node's ``torch.inference_mode``; the inputs are never changed.
    """
    stages.STAGES[config.stage].check(motion_module)
    with torch.inference_mode(False), torch.enable_grad():
        run = Run(config, model, data, motion_module, progress, Path(state_path) if state_path is not None else None)
        if resume is not None:
            run.restore(resume if isinstance(resume, TrainingState) else TrainingState.read(resume))
        run.execute()
        return run.result(model)



def train_to_file(config: TrainConfig, model: comfy.model_patcher.ModelPatcher, clips: Callable[[], TrainingClips],
                  motion_module: LoadedMotionModule | MotionModuleConfig | None, out: Path, *, state_path: Path,
                  resume: Path | None, overwrite: bool, source: str, switch: str = "turn overwrite on",
                  progress: Callable[[Progress], None] | None = None) -> TrainResult:
    """One training run to a file, as the training node and ``scripts/animdiff_train.py`` both run it.

    Before any work, ``out`` is refused if it exists and neither ``overwrite`` nor the run being resumed wrote it
    (``source`` names the input that chose it, ``switch`` how to allow it); then ``clips()`` makes the data, the stage is
    trained (continuing the training state ``resume`` if given, writing ``state_path``) and the file saved.
    """
    resume_from = TrainingState.read(resume) if resume is not None else None
    check_replaceable(out, resume_from, overwrite, source, switch)
    data = clips()
    if resume_from is not None:
        logging.info("AnimDiff: resuming %s training from %s", stages.STAGES[config.stage].title, resume)
    result = train(config, model, data, motion_module, progress=progress, state_path=state_path, resume=resume_from)
    result.save(out)
    return result
