"""ADE's option values and the nearest of ours: beta schedules, fuse methods, noise types, interpolations.

Each table maps an ADE choice to ``(ours, what differs or None)``; a choice missing here stays a node the
converter cannot carry over (its rule says so).
"""

from __future__ import annotations

SQRT_LINEAR, LINEAR, LCM, AUTO, OWN = "sqrt_linear (AnimateDiff)", "linear (AnimateDiff-SDXL / HotshotXL)", "lcm", "autoselect", "use model's own"
SCALED_LINEAR = ("ADE's linear (HotshotXL/default) is ComfyUI's scaled-linear 0.00085-0.012: ours keeps the model's own "
                 "schedule, the same for a checkpoint with the default schedule")
BETA_SCHEDULES = {
    "autoselect": (AUTO, None),
    "use existing": (OWN, None),
    "sqrt_linear (AnimateDiff)": (SQRT_LINEAR, None),
    "sqrt_linear": (SQRT_LINEAR, None),
    "linear (AnimateDiff-SDXL)": (LINEAR, None),
    "linear (HotshotXL/default)": (OWN, SCALED_LINEAR),
    "linear": (OWN, SCALED_LINEAR),
    "lcm >> sqrt_linear": (LCM, None),
    "lcm": (LCM, "ADE's lcm distils ComfyUI's scaled-linear betas; ours the sqrt_linear ones AnimateLCM was trained with"),
    "lcm[100_ots]": (LCM, "ADE's lcm[100_ots] uses 100 original timesteps of scaled-linear betas; ours 50 of sqrt_linear"),
    "lcm[25_ots]": (LCM, "ADE's lcm[25_ots] uses 25 original timesteps of scaled-linear betas; ours 50 of sqrt_linear"),
    "avg(sqrt_linear,linear)": (SQRT_LINEAR, "ADE averages the sigmas of sqrt_linear and linear; ours uses sqrt_linear"),
    "lcm avg(sqrt_linear,linear)": (LCM, "ADE averages two LCM schedules' sigmas; ours uses lcm (sqrt_linear)"),
    "sqrt": (OWN, "ADE's sqrt betas have no AnimDiff equivalent: the model's own schedule is kept"),
    "cosine": (OWN, "ADE's cosine betas have no AnimDiff equivalent: the model's own schedule is kept"),
    "squaredcos_cap_v2": (OWN, "ADE's squaredcos_cap_v2 betas have no AnimDiff equivalent: the model's own schedule is kept"),
}

FUSE_METHODS = {
    "pyramid": ("pyramid", None),
    "flat": ("flat", None),
    "relative": ("relative", None),
    "overlap-linear": ("pyramid", "ADE's overlap-linear ramps weights over the overlap only; ours uses pyramid (issue #29 adds the missing fuse methods)"),
}
for _name in ("random", "gauss-sigma", "gauss-sigma inverse", "delayed reverse sawtooth", "pyramid-sigma", "pyramid-sigma inverse"):
    _ours = "gauss" if _name == "gauss-sigma" else "pyramid"
    for _key in (_name, "🔬" + _name):
        FUSE_METHODS[_key] = (_ours, f"ADE's {_name} fuse method is not AnimDiff's: {_ours} is used (issue #29 adds the missing fuse methods)")

NOISE_TYPES = {
    "default": ("default", None),
    "constant": ("constant", None),
    "repeated_context": ("repeated_context", None),
    "FreeNoise": ("FreeNoise", None),
    "empty": ("default", "ADE's empty noise (zeros) has no AnimDiff equivalent: default noise is used"),
}
SEED_GENERATION = {
    "comfy": None,
    "comfy [gpu]": "ADE generates the noise on the GPU; ours on the CPU as ComfyUI does (different random numbers)",
    "auto1111": "ADE's auto1111 seeds (one generator per frame, A1111-style) are not AnimDiff's: ComfyUI's noise is used",
    "auto1111 [gpu]": "ADE's auto1111 [gpu] seeds are not AnimDiff's: ComfyUI's CPU noise is used",
}
INTERPOLATIONS = {
    "lerp": ("linear", None),
    "slerp": ("linear", "ADE's slerp between prompts is not AnimDiff's: linear blending is used"),
}
FREEINIT_FILTERS = {name: (name, None) for name in ("gaussian", "butterworth", "ideal", "box")}
COMBINE_FORMATS = {"image/webp": None}


def choose(table: dict, value, what: str):
    """``(ours, note)`` for an ADE choice; an unknown one is kept as the first of ours, with a note saying so."""
    if value in table:
        return table[value]
    first = next(iter(table.values()))[0]
    return first, f"unknown ADE {what} {value!r}: {first} is used"
