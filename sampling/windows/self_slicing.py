"""Controls that cut their own inputs by ``ad_params`` (Advanced-ControlNet's) inside context windows.

Advanced-ControlNet ("ACN") controls read ``transformer_options["ad_params"]`` (:mod:`.params`) in their
``get_control`` and cut their hints, masks and latent keyframes to the call's frames themselves. Two things about
them shape how a window runs them:

- their ``get_control`` is bound to the instance when it is built, so a copy of one still runs the original with
  the original's (unsliced) chain below it; and their timestep-keyframe progress lives on the instance, so the
  original must be the one that runs. In a window such a control runs as itself, with its chain below swapped for
  the window's copy of that chain for the length of the call (:class:`WithChain`).
- a latent keyframe names a video frame, which ACN maps to one position of the call's ``sub_idxs`` (the last, where
  a frame appears twice): a call that holds such a control holds each frame once (:func:`places_by_frame`).

Nothing here imports ACN or pretends to be AnimateDiff-Evolved; it reads the attributes named below.
"""

from __future__ import annotations

GET_CONTROL = "get_control"
TIMESTEP_KEYFRAMES = "timestep_keyframes"  # an ACN TimestepKeyframeGroup: .keyframes, each .has_latent_keyframes()
LATENT_KEYFRAME_OVERRIDE = "latent_keyframe_override"


def slices_itself(control) -> bool:
    """Whether ``control.get_control`` is bound to the control itself (ACN's controls): it cuts its own inputs by
    ``ad_params`` and a copy of it would still run the original."""
    bound = vars(control).get(GET_CONTROL)
    return getattr(bound, "__self__", None) is control


def places_by_frame(control) -> bool:
    """Whether ``control`` holds latent keyframes (ACN), which need each frame at most once in a call."""
    if not slices_itself(control):
        return False
    keyframes = getattr(getattr(control, TIMESTEP_KEYFRAMES, None), "keyframes", ())
    return getattr(control, LATENT_KEYFRAME_OVERRIDE, None) is not None or any(k.has_latent_keyframes() for k in keyframes)


class WithChain:
    """A window's view of a control that slices itself: ``control`` runs with ``previous_controlnet`` (the window's
    copy of its chain) below it instead of its own chain, which it gets back after the call."""

    def __init__(self, control, previous_controlnet):
        self.control, self.previous_controlnet = control, previous_controlnet

    def get_control(self, *args, **kwargs):
        own = self.control.previous_controlnet
        self.control.previous_controlnet = self.previous_controlnet
        try:
            return self.control.get_control(*args, **kwargs)
        finally:
            self.control.previous_controlnet = own
