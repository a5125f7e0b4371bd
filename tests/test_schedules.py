"""sampling/noise/betas.py: the betas AnimateDiff was trained with, kept prediction types, refusals."""

from __future__ import annotations

import comfy.model_sampling
import pytest
import torch
from animdiff.errors import FileError
from animdiff.motion_module.layout import detect_config
from animdiff.sampling.noise.betas import LCM_SCHEDULE, LINEAR, MODEL_OWN, SQRT_LINEAR, model_sampling_for, schedule_for
from animdiff.sampling.windows.evaluation import current_step
from comfy_extras.nodes_model_advanced import LCM
from manifests import meta_state_dict


class EpsSampling(comfy.model_sampling.ModelSamplingDiscrete, comfy.model_sampling.EPS):
    pass


class VSampling(comfy.model_sampling.ModelSamplingDiscrete, comfy.model_sampling.V_PREDICTION):
    pass


def sigmas_from_betas(betas: torch.Tensor) -> torch.Tensor:
    alphas_cumprod = torch.cumprod(1 - betas.double(), 0)
    return ((1 - alphas_cumprod) / alphas_cumprod).sqrt().float()


def test_sqrt_linear_is_animatediffs_linear_betas():
    ms = model_sampling_for(SQRT_LINEAR, EpsSampling())
    torch.testing.assert_close(ms.sigmas, sigmas_from_betas(torch.linspace(0.00085, 0.012, 1000, dtype=torch.float64)))


def test_linear_is_animatediff_sdxl_scaled_linear_to_0_020():
    ms = model_sampling_for(LINEAR, EpsSampling())
    betas = torch.linspace(0.00085**0.5, 0.020**0.5, 1000, dtype=torch.float64) ** 2
    torch.testing.assert_close(ms.sigmas, sigmas_from_betas(betas))


def test_prediction_type_is_kept_and_lcm_is_distilled():
    assert isinstance(model_sampling_for(SQRT_LINEAR, VSampling()), comfy.model_sampling.V_PREDICTION)
    assert isinstance(model_sampling_for(LCM_SCHEDULE, EpsSampling()), LCM)
    assert model_sampling_for(MODEL_OWN, VSampling()) is None


def test_autoselect_follows_the_version():
    assert [schedule_for("autoselect", v) for v in ("v1", "v3", "sdxl", "hotshotxl", "animatelcm")] == [
        SQRT_LINEAR, SQRT_LINEAR, LINEAR, MODEL_OWN, LCM_SCHEDULE]


def test_non_discrete_models_only_keep_their_own():
    with pytest.raises(ValueError, match="needs a discrete-timestep SD model, but this model samples with ModelSamplingFlux"):
        model_sampling_for(SQRT_LINEAR, comfy.model_sampling.ModelSamplingFlux())


def test_step_is_the_sigma_interval_so_midpoint_evaluations_stay_in_their_step():
    sample_sigmas = torch.tensor([14.6, 7.0, 3.0, 1.0, 0.0])
    assert [current_step(torch.tensor([t]), sample_sigmas) for t in (14.6, 9.0, 7.0, 5.0, 3.0, 0.5)] == [0, 0, 1, 1, 2, 3]


def test_incomplete_module_is_a_clear_error():
    state = {k: v for k, v in meta_state_dict("v3_sd15_mm").items() if ".ff.net.2." not in k}
    with pytest.raises(FileError, match=r"cut.ckpt: unknown layout: down_blocks.0.motion_modules.0 is incomplete"):
        detect_config(state, "cut.ckpt")
