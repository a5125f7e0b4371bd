"""How the pack meets newer ComfyUI cores: the host's core patcher, multi-GPU deep clones, core context windows.

Small real models (reduced-width SD1.5 UNet and motion module), so every test runs in seconds on a CPU.
Where an older ComfyUI lacks the mechanism, the test is skipped and says so.
"""

from __future__ import annotations

import comfy.model_patcher
import comfy.patcher_extension
import comfy.sample
import comfy_extras.nodes_context_windows
import pytest
import safetensors.torch
import torch
from animdiff.animate.model import apply_motion_module
from animdiff.errors import OptionsError
from animdiff.motion_module import MotionNetwork, load_motion_module
from animdiff.motion_module.config import BASE_CHANNELS
from animdiff.motion_module.loader import LoadedMotionModule, motion_patcher
from animdiff.motion_module.lora import LoRALayer, apply_motion_lora
from animdiff.sampling.windows.evaluation import use_context_windows
from animdiff.sampling.windows.plan import ContextOptions
from comfy_sampling import OWN
from training_models import conditioning, small_motion, small_motion_config, small_sd15

MULT = (1, 2, 2)  # the smallest SD1.5-shaped UNet a motion module fits
CONDS = (conditioning(1), conditioning(2))
WINDOWS = ContextOptions(8, 2, 1, False, "static", "pyramid")
BOTH_NODES = r"AnimDiffContextOptions.*AnimDiffApplyMotionModule.*AnimDiffApplyContextOptions.*ContextWindowsManual"
needs_multigpu = pytest.mark.skipif(not hasattr(comfy.model_patcher.ModelPatcher, "deepclone_multigpu"),
                                    reason="this ComfyUI has no multi-GPU deep clone (ModelPatcher.deepclone_multigpu)")


def sample(model, frames: int = 12, seed: int = 0) -> torch.Tensor:
    x = torch.randn(frames, 4, 8, 8, generator=torch.Generator().manual_seed(seed))
    return comfy.sample.sample(model, x, 2, 7.5, "euler", "normal", *CONDS, torch.zeros_like(x), seed=seed, disable_pbar=True)


@pytest.fixture(scope="module")
def unet():
    """A reduced SD1.5 model whose patcher can be rebuilt, as core loaders make theirs (``cached_patcher_init``)."""
    model = small_sd15(mult=MULT)
    model.cached_patcher_init = (lambda disable_dynamic=False: small_sd15(mult=MULT), ())
    return model


@pytest.fixture(scope="module")
def motion_file(tmp_path_factory):
    """A reduced v3 motion module saved as a file; the loader is told its width is SD1.5's."""
    path = tmp_path_factory.mktemp("mm") / "mm_small.safetensors"
    safetensors.torch.save_file(small_motion(mult=MULT).network.state_dict(), str(path))
    return path


@pytest.fixture
def motion_module(motion_file, monkeypatch) -> LoadedMotionModule:
    monkeypatch.setitem(BASE_CHANNELS, "SD1.5", small_motion_config(mult=MULT).channels)
    return load_motion_module(motion_file)


def a_lora(motion_module: LoadedMotionModule) -> dict[str, LoRALayer]:
    gen = torch.Generator().manual_seed(3)
    keys = [k for k in motion_module.network.state_dict() if k.endswith("attention_blocks.0.to_q.weight")]
    return {k: LoRALayer(torch.randn(motion_module.network.get_parameter(k).shape[0], 4, generator=gen),
                         torch.randn(4, motion_module.network.get_parameter(k).shape[1], generator=gen), 1.0) for k in keys}


# ------------------------------------------------------------------------------------------------ patcher

def test_motion_patcher_is_made_as_the_host_makes_its_core_patchers(motion_file, monkeypatch):
    """``main.py`` of newer cores switches ``CoreModelPatcher`` to the dynamic-VRAM patcher; the motion module
    must follow whatever class it names at load time (on CPU that class is a plain ModelPatcher, so a
    subclass stands in for it here), except where a plain patcher is asked for."""
    monkeypatch.setitem(BASE_CHANNELS, "SD1.5", small_motion_config(mult=MULT).channels)
    if not hasattr(comfy.model_patcher, "CoreModelPatcher"):
        assert type(load_motion_module(motion_file).patcher) is comfy.model_patcher.ModelPatcher
        pytest.skip("this ComfyUI has no CoreModelPatcher: the plain ModelPatcher is its core patcher")

    class HostPatcher(comfy.model_patcher.ModelPatcher):
        pass

    monkeypatch.setattr(comfy.model_patcher, "CoreModelPatcher", HostPatcher)
    motion_module = load_motion_module(motion_file)
    assert type(motion_module.patcher) is HostPatcher
    assert type(motion_patcher(motion_module.network, disable_dynamic=True)) is comfy.model_patcher.ModelPatcher
    fresh = motion_module.patcher.cached_patcher_init[0](*motion_module.patcher.cached_patcher_init[1], disable_dynamic=True)
    assert type(fresh) is comfy.model_patcher.ModelPatcher and fresh.model is not motion_module.network


@needs_multigpu
def test_animated_model_deep_clones_for_multigpu(unet, motion_module):
    """ComfyUI's MultiGPU nodes deep-clone the UNet patcher and every additional model from its loader factory:
    the clone samples exactly as the original, on weights of its own, MotionLoRA patches kept."""
    motion_module = apply_motion_lora(motion_module, a_lora(motion_module), "lora.safetensors", 0.8)
    animated = apply_motion_module(unet, motion_module, OWN, context_options=WINDOWS)
    expected = sample(animated)
    clone = animated.deepclone_multigpu()
    (motion_clone,) = clone.get_additional_models_with_key("animdiff")
    assert motion_clone.model is not motion_module.network and clone.model is not unet.model
    assert motion_clone.patches.keys() == motion_module.patcher.patches.keys() and motion_clone.patches
    for key, value in motion_module.network.state_dict().items():
        assert torch.equal(motion_clone.model.state_dict()[key], value)
    assert torch.equal(sample(clone), expected)


@needs_multigpu
def test_motion_module_without_a_file_deep_clones_from_a_copy(unet):
    """A motion module made in memory (as training results are) deep-clones from a copy of its weights."""
    source = small_motion(mult=MULT).network
    motion_module = LoadedMotionModule("trained", motion_patcher(source))
    clone = motion_module.patcher.deepclone_multigpu()
    assert isinstance(clone.model, MotionNetwork) and clone.model is not source
    assert all(torch.equal(clone.model.state_dict()[k], v) for k, v in source.state_dict().items())
    assert torch.equal(sample(apply_motion_module(unet, LoadedMotionModule("trained", clone), OWN)),
                       sample(apply_motion_module(unet, motion_module, OWN)))


# ------------------------------------------------------------------------------------------------ core context windows

def core_context_windows(model):
    """ComfyUI's own ContextWindowsManual node on ``model``, its inputs at their defaults (first option for combos)."""
    node = comfy_extras.nodes_context_windows.ContextWindowsManualNode
    inputs = {i.id: i.default if i.default is not None else i.options[0]
              for i in node.define_schema().inputs if i.id != "model"}
    return node.execute(model=model, **inputs).result[0]


def test_our_windows_on_a_model_with_core_windows_are_refused_when_applied(unet, motion_module):
    core = core_context_windows(unet)
    assert core.model_options.get("context_handler") is not None
    with pytest.raises(OptionsError, match=BOTH_NODES):
        apply_motion_module(core, motion_module, OWN, context_options=WINDOWS)
    windowed = core.clone()
    with pytest.raises(OptionsError, match=BOTH_NODES):
        use_context_windows(windowed, WINDOWS)  # AnimDiffApplyContextOptions


def test_core_windows_on_a_model_with_ours_are_refused_when_sampled(unet, motion_module):
    """Core's node cannot see ours; the first thing sampling runs refuses the pair, before any UNet call."""
    ours = apply_motion_module(unet, motion_module, OWN, context_options=WINDOWS)
    calls = []
    stacked = core_context_windows(ours)
    stacked.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "count",
                                 lambda executor, *args, **kwargs: calls.append(1) or executor(*args, **kwargs))
    with pytest.raises(OptionsError, match=BOTH_NODES):
        sample(stacked)
    assert calls == []
    sample(ours, frames=2)  # each alone still samples
    sample(core_context_windows(apply_motion_module(unet, motion_module, OWN)), frames=2)
