"""Noise schedules the motion modules were trained with, as ComfyUI ``model_sampling`` objects.

ComfyUI names beta schedules after the original LDM code: its ``sqrt_linear`` is linear in
beta (diffusers' ``linear``, AnimateDiff's SD1.5 training schedule) and its ``linear`` is
linear in sqrt(beta) (diffusers' ``scaled_linear``, SD's and AnimateDiff-SDXL's).
"""

from __future__ import annotations

from types import SimpleNamespace

import comfy.model_sampling
from comfy_extras.nodes_model_advanced import LCM, ModelSamplingDiscreteDistilled

from ...errors import OptionsError

SQRT_LINEAR = "sqrt_linear (AnimateDiff)"
LINEAR = "linear (AnimateDiff-SDXL / HotshotXL)"  # the name shared workflows use; betas per AnimateDiff-SDXL
LCM_SCHEDULE = "lcm"
AUTOSELECT = "autoselect"
MODEL_OWN = "use model's own"
BETA_SCHEDULES = [AUTOSELECT, SQRT_LINEAR, LINEAR, LCM_SCHEDULE, MODEL_OWN]

# schedule -> (ComfyUI beta_schedule, linear_start, linear_end)
BETAS = {
    SQRT_LINEAR: ("sqrt_linear", 0.00085, 0.012),
    LINEAR: ("linear", 0.00085, 0.020),
    LCM_SCHEDULE: ("sqrt_linear", 0.00085, 0.012),
}
# HotshotXL was trained on SDXL's own schedule (scaled-linear 0.00085-0.012), AnimateDiff-SDXL on 0.020.
AUTOSELECTED = {"v1": SQRT_LINEAR, "v2": SQRT_LINEAR, "v3": SQRT_LINEAR, "pia": SQRT_LINEAR, "animatelcm": LCM_SCHEDULE,
                "sdxl": LINEAR, "hotshotxl": MODEL_OWN}


def schedule_for(schedule: str, version: str) -> str:
    """The concrete schedule for a node's choice and a motion module's version."""
    if schedule not in BETA_SCHEDULES:
        raise OptionsError(f"unknown beta_schedule {schedule!r}; choose one of {BETA_SCHEDULES}")
    return AUTOSELECTED[version] if schedule == AUTOSELECT else schedule


def prediction_type(model_sampling) -> type:
    """The prediction-type class a ``model_sampling`` mixes in (``EPS``, ``V_PREDICTION``, ``LCM``, …)."""
    return next(c for c in type(model_sampling).__mro__
                if issubclass(c, comfy.model_sampling.EPS) and not issubclass(c, comfy.model_sampling.ModelSamplingDiscrete))


def model_sampling_for(schedule: str, current):
    """A ``model_sampling`` with ``schedule``'s betas and ``current``'s prediction type, or None to keep it.

    Only discrete-timestep (SD-style) samplings can take other betas; anything else is refused.
    """
    if schedule == MODEL_OWN:
        return None
    if not isinstance(current, comfy.model_sampling.ModelSamplingDiscrete):
        raise OptionsError(f"beta_schedule {schedule!r} needs a discrete-timestep SD model, but this model samples "
                         f"with {type(current).__name__}; choose {MODEL_OWN!r}")
    beta_schedule, start, end = BETAS[schedule]
    if schedule == LCM_SCHEDULE:
        base, prediction = ModelSamplingDiscreteDistilled, LCM
    else:
        base = comfy.model_sampling.ModelSamplingDiscrete
        prediction = prediction_type(current)
    settings = SimpleNamespace(sampling_settings={"beta_schedule": beta_schedule, "linear_start": start, "linear_end": end})

    class AnimDiffModelSampling(base, prediction):
        pass

    return AnimDiffModelSampling(settings)
