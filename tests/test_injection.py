"""The per-call injection (motion_module/injection.py): built once per (UNet, motion network), swapped in and out of
the UNet around each call, rebuilt when the UNet's blocks change; the wrapper's batch check; TorchCompileModel.

Small real models (reduced-width SD1.5 UNet and motion module) in-process; the torch.compile test is in the full tier.
"""

from __future__ import annotations

import copy
import gc
import weakref
from pathlib import Path

import animdiff
import comfy.sample
import pytest
import torch
from animdiff.animate.model import apply_motion_module
from animdiff.errors import FramesError
from animdiff.motion_module.injection import INJECTIONS, TemporalModuleSlot, motion_injected
from comfy_sampling import OWN
from training_models import conditioning, small_motion, small_sd15

MULT = (1, 2, 2)  # the smallest SD1.5-shaped UNet a motion module fits
CONDS = (conditioning(1), conditioning(2))


def sample(model, frames: int = 8, steps: int = 2, callback=None) -> torch.Tensor:
    x = torch.randn(frames, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    return comfy.sample.sample(model, x, steps, 7.5, "euler", "normal", *CONDS, torch.zeros_like(x), seed=0,
                               disable_pbar=True, callback=callback)


def unet_call(unet, network, frames: int = 4) -> torch.Tensor:
    """One animated UNet call on two videos of ``frames`` latents."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2 * frames, 4, 4, 4, generator=gen)
    context = torch.randn(2 * frames, 5, 32, generator=gen)
    with torch.no_grad(), motion_injected(unet, network, frames, 1.0):
        return unet(x, torch.full((2 * frames,), 500.0), context)


class Twice(torch.nn.Module):
    """A parameterless layer another pack might add to a UNet block."""

    def forward(self, x):
        return 2 * x


def test_injection_is_built_once_and_the_unet_is_untouched_between_calls():
    model, motion_module = small_sd15(mult=MULT), small_motion(mult=MULT)
    unet = model.model.diffusion_model
    layers = {name: module._modules for name, module in unet.named_modules()}
    keys = list(unet.state_dict())
    animated = apply_motion_module(model, motion_module, OWN)
    sample(animated)
    (built,) = INJECTIONS[unet].values()
    sample(animated)
    assert list(INJECTIONS[unet].values()) == [built]  # reused, not rebuilt
    assert {name: module._modules for name, module in unet.named_modules()} == layers
    assert all(module._modules is layers[name] for name, module in unet.named_modules())  # the same dicts, not copies
    assert list(unet.state_dict()) == keys
    assert not any(isinstance(m, TemporalModuleSlot) for m in unet.modules())


def test_a_changed_unet_block_rebuilds_the_injection():
    """A layer added to a block after the first call runs in later calls, exactly as in a UNet injected afresh."""
    unet, network = small_sd15(mult=MULT).model.diffusion_model, small_motion(mult=MULT).network
    before = unet_call(unet, network)
    unet.output_blocks[0].append(Twice())
    after = unet_call(unet, network)
    assert torch.equal(after, unet_call(copy.deepcopy(unet), network))
    assert not torch.equal(after, before)
    assert isinstance(unet.output_blocks[0][-1], Twice)
    assert not any(isinstance(m, TemporalModuleSlot) for m in unet.modules())


def test_the_cache_keeps_neither_unet_nor_network_alive():
    unet, network = small_sd15(mult=MULT).model.diffusion_model, small_motion(mult=MULT).network
    with motion_injected(unet, network, 4, 1.0):
        pass
    assert network in INJECTIONS[unet]
    refs = weakref.ref(unet), weakref.ref(network)
    del unet, network
    gc.collect()
    assert [ref() for ref in refs] == [None, None]


def test_a_batch_that_does_not_split_into_the_conds_is_refused_before_anything_else():
    """Checked before the frame count is derived from it: a per-frame mask of 5 frames on 5 latents must not be
    judged against 5 // 2 frames."""
    model = small_sd15(mult=MULT)
    animated = apply_motion_module(model, small_motion(mult=MULT), OWN, motion_scale_mask=torch.ones(5, 32, 32))
    x = torch.randn(5, 4, 4, 4)
    options = {"wrappers": animated.wrappers, "cond_or_uncond": [0, 1], "sigmas": torch.tensor([1.0])}
    with pytest.raises(FramesError, match="a batch of 5 latents does not split into 2 videos"):
        animated.model.apply_model(x, torch.tensor([1.0] * 5), c_crossattn=torch.randn(5, 5, 32), transformer_options=options)


@pytest.mark.full
@pytest.mark.slow  # 45-80 s on two shared CPU cores, nearly all of it Dynamo tracing
def test_torch_compile_model_compiles_the_animated_unet_once_and_matches_eager(one_thread):
    """Core's TorchCompileModel node on an animated model, 3 euler steps (one UNet call each), then 3 more: the
    result equals eager sampling, and once the calls repeat nothing is compiled again. (ComfyUI itself compiles one
    more frame in the second call, its ops' ``forward`` for the first conv's input, with or without this pack; the
    pack's own code is not compiled again after the first call.)

    On CPU the node's ``cudagraphs`` backend runs the captured graphs without CUDA graphs (``inductor`` takes
    several minutes to build its C++ kernels for this model here); with CUDA the test uses ``inductor``."""
    import torch._dynamo
    from comfy_extras.nodes_torch_compile import TorchCompileModel

    counters = torch._dynamo.utils.counters
    animated = apply_motion_module(small_sd15(mult=MULT), small_motion(mult=MULT), OWN)
    eager = sample(animated, steps=3)
    backend = "inductor" if torch.cuda.is_available() else "cudagraphs"
    compiled = TorchCompileModel.execute(model=animated, backend=backend).result[0]
    torch._dynamo.reset()
    counters.clear()
    compiled_after = []  # frames Dynamo has compiled, after each UNet call

    def after_call(*_):
        compiled_after.append(counters["frames"]["total"])
        if len(compiled_after) == 1:
            torch._dynamo.utils.clear_compilation_metrics()

    try:
        first = sample(compiled, steps=3, callback=after_call)
        later = torch._dynamo.utils.get_compilation_metrics()  # what the second and third calls compiled
        second = sample(compiled, steps=3, callback=after_call)
    finally:
        torch._dynamo.reset()
    scale = eager.abs().max()
    assert (first - eager).abs().max() <= 1e-4 * scale and torch.equal(second, first)
    assert compiled_after[0] > 0 and compiled_after[2:] == [compiled_after[2]] * 4, compiled_after
    pack = Path(animdiff.__file__).parent  # (a test set-up keeps its ComfyUI in the pack's .cache)
    ours = [m.co_name for m in later if Path(m.co_filename).is_relative_to(pack) and Path(m.co_filename).relative_to(pack).parts[0] != ".cache"]
    assert ours == [], [(m.co_filename, m.co_name, m.recompile_reason) for m in later]
