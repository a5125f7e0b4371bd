"""Evaluate the model on context windows and fuse the results (a ComfyUI ``CALC_COND_BATCH`` wrapper).

Wrapping the model evaluation, not the sampler loop, makes every stock sampler work. For each
window the latents, the timesteps and everything per-frame in the conds are sliced to the
window's frames: per-frame conditioning tensors (``model_conds`` with one entry per frame, or rows that
tile the video: :mod:`..prompts.cond_frames`), masks, and ControlNet/T2I-adapter hint images (ComfyUI itself would take the first frames).
Each model call names its frames in ``transformer_options`` (:mod:`.params`).

Several windows of equal length share one model call: their frames are concatenated (``k L``
frames, ``k`` windows of ``L``) and everything per-frame is sliced once with the concatenated
index; the motion modules see ``k`` videos of ``L`` frames. ``k`` is the largest that ComfyUI's own
rule for batching conds (``_calc_cond_batch``) allows: ``memory_required(shape) * 1.5 <`` free
memory, for the batch of every cond of the ``k`` windows; ComfyUI then batches the conds as usual.
``ContextOptions.windows_per_call`` caps ``k`` (1: one window per call, so peak memory is set by the
window alone, as in AnimateDiff-Evolved; the batched call's activations grow with ``k``).
Windows of another length (the ``batched`` schedule's short last one) get their own calls, and a
ControlNet chain with a control that places its own inputs by video frame (``for_window``:
SparseCtrl keyframes) runs one window per call. Advanced-ControlNet controls cut their own inputs by
``ad_params`` and run with the window's copy of their chain (:mod:`.self_slicing`); with latent keyframes, the
windows of a call share no frame.
"""

from __future__ import annotations

import copy

import comfy.model_management
import comfy.patcher_extension
import torch
from tqdm import tqdm

from ...errors import OptionsError
from ...touchpoints import OptionKeys, WrapperKeys
from ..prompts.cond_frames import rows, use_cond_frame_check, video_rows
from .anchors import AnchorStep, in_range
from .draft import draft_window, outside_window
from .params import with_window
from .plan import ContextOptions, context_windows, fuse_weights
from .self_slicing import WithChain, places_by_frame, slices_itself


def per_frame(value, frames: int) -> bool:
    """Whether ``value`` is a tensor with one entry per frame of the video."""
    return rows(value) == frames


def take(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return tensor[index.to(tensor.device)]


def slice_control(control, index: torch.Tensor, frames: int, sliced: dict | None = None):
    """A shallow copy of a ControlNet chain whose per-frame hint images (and per-frame extra concat
    inputs) are cut to ``index``; controls without per-frame inputs are shared as they are, and
    controls with a ``for_window(index, frames)`` method make their own copy. ``sliced`` (control ->
    its copy) makes conds that share a control share its copy, so ComfyUI still batches them."""
    if control is None:
        return None
    sliced = {} if sliced is None else sliced
    if id(control) not in sliced:
        sliced[id(control)] = cut_control(control, index, frames, sliced)
    return sliced[id(control)]


def cut_control(control, index: torch.Tensor, frames: int, sliced: dict):
    previous = slice_control(control.previous_controlnet, index, frames, sliced)
    if hasattr(control, "for_window"):  # a control that places its own inputs by video frame (SparseCtrl keyframes)
        cut = control.for_window(index, frames)
        cut.previous_controlnet = previous
        return cut
    if slices_itself(control):  # an Advanced-ControlNet control: cuts its own inputs by ad_params
        return control if previous is control.previous_controlnet else WithChain(control, previous)
    hint = getattr(control, "cond_hint_original", None)
    extra = getattr(control, "extra_concat_orig", None) or []
    if not (per_frame(hint, frames) or any(per_frame(t, frames) for t in extra)) and previous is control.previous_controlnet:
        return control
    cut = copy.copy(control)  # keeps what pre_run set up (timestep range, model, ControlLora's built model)
    cut.cond_hint, cut.extra_concat = None, None  # derived from the originals on first use
    if per_frame(hint, frames):
        cut.cond_hint_original = take(hint, index)
    cut.extra_concat_orig = [take(t, index) if per_frame(t, frames) else t for t in extra]
    cut.previous_controlnet = previous
    return cut


def has_window_control(conds: list) -> bool:
    """Whether a ControlNet chain in ``conds`` holds a control that places its inputs by video frame (``for_window``)."""
    return any_control(conds, lambda control: hasattr(control, "for_window"))


def any_control(conds: list, test) -> bool:
    """Whether ``test`` holds for a control of a ControlNet chain in ``conds``."""
    for cond in conds:
        for item in cond or ():
            control = item.get("control")
            while control is not None:
                if test(control):
                    return True
                control = control.previous_controlnet
    return False


def windows_that_fit(model, window_shape: list[int], batch: int, most: int, free_memory: float) -> int:
    """The most windows, from 1 to ``most``, whose latents ``window_shape`` (``L C H W``) times ``batch``
    conds fit one model call by ComfyUI's rule for batching conds: ``memory_required * 1.5 < free_memory``."""
    for k in range(most, 1, -1):
        if model.memory_required([k * batch * window_shape[0], *window_shape[1:]]) * 1.5 < free_memory:
            return k
    return 1


def calls(windows: list[list[int]], per_call: int, distinct: bool = False) -> list[list[int]]:
    """Window numbers grouped into model calls: up to ``per_call`` windows of one length each, each window in the
    first call it fits; ``distinct``: windows of one call share no frame."""
    groups: list[list[int]] = []
    for number, window in enumerate(windows):
        group = next((g for g in groups if len(g) < per_call and len(windows[g[0]]) == len(window)
                      and not (distinct and any(set(window) & set(windows[n]) for n in g))), None)
        if group is None:
            groups.append([number])
        else:
            group.append(number)
    return groups


def slice_cond(cond: dict, index: torch.Tensor, frames: int, sliced: dict | None = None) -> dict:
    """A processed cond with its per-frame conditioning (tiled to the video first, as ComfyUI tiles it:
    :func:`..prompts.cond_frames.video_rows`), mask and ControlNet inputs cut to ``index`` (``sliced``: see :func:`slice_control`)."""
    out = dict(cond)
    tiled = {name: video_rows(getattr(c, "cond", None), frames) for name, c in cond.get("model_conds", {}).items()}
    out["model_conds"] = {name: c if tiled[name] is None else c._copy_with(take(tiled[name], index))
                          for name, c in cond.get("model_conds", {}).items()}
    if per_frame(cond.get("mask"), frames):
        out["mask"] = take(cond["mask"], index)
    if cond.get("control") is not None:
        out["control"] = slice_control(cond["control"], index, frames, sliced)
    return out


def current_step(timestep: torch.Tensor, sample_sigmas: torch.Tensor | None) -> int:
    """The sampling step whose sigma interval holds ``timestep`` (samplers that evaluate between two
    sigmas, such as heun or dpmpp_2s, stay in the same step); ``sample_sigmas``: the schedule
    (``transformer_options["sample_sigmas"]``), 0 without one."""
    if sample_sigmas is None:
        return 0
    return max(int((sample_sigmas.to(timestep.device) >= timestep.max()).sum()) - 1, 0)


# ComfyUI's own context windows (node ContextWindowsManual and its Wan/LTXV variants) live here.
CORE_HANDLER = "context_handler"
STACKED = ("this MODEL has context windows twice: AnimDiff's ({ours}) and ComfyUI's core ones (ContextWindowsManual "
           "or another core Context Windows node, model_options['context_handler']). Each window would be windowed again. "
           "Keep one: remove the core Context Windows node, or the AnimDiff context options.")
OURS = "AnimDiffContextOptions through AnimDiffApplyMotionModule or AnimDiffApplyContextOptions"


def refuse_core_windows(model_options: dict | None) -> None:
    """Raise when ComfyUI's core context handler is set beside ours (checked at apply and sampling time,
    so the order the two were applied in does not matter)."""
    if (model_options or {}).get(CORE_HANDLER) is not None:
        raise OptionsError(STACKED.format(ours=OURS))


class WindowedEvaluation:
    """``CALC_COND_BATCH`` wrapper; immutable, so copies of ``model_options`` may share it."""

    def __init__(self, options: ContextOptions):
        self.options = options

    def __deepcopy__(self, memo):
        return self

    def __call__(self, executor, model, conds, x_in, timestep, model_options, **kwargs):
        refuse_core_windows(model_options)
        frames, length = x_in.shape[0], self.options.context_length
        drafting = self.options.draft_start >= 0
        if drafting:
            draft_window(frames, self.options.draft_start, length)  # refuses a window past the end
        if self.options.anchors is not None:
            self.options.anchors.check_video(frames)  # refuses indexes outside the video
        if frames <= length:
            return executor(model, conds, x_in, timestep, with_window(model_options, range(frames), frames, length), **kwargs)
        windows = self.windows(frames, current_step(timestep, model_options.get("transformer_options", {}).get(OptionKeys.SAMPLE_SIGMAS)))
        weights = fuse_weights(windows, frames, self.options.fuse_method)
        sigma = float(timestep.max())
        anchors = self.options.anchors
        step = AnchorStep(anchors, windows, frames) if anchors and in_range(anchors.start_percent, anchors.end_percent, model, sigma) else None
        reuse = self.options.naive_reuse
        reuse = reuse if reuse and not drafting and in_range(reuse.start_percent, reuse.end_percent, model, sigma) else None
        out = [outside_window(x_in, windows[0]) if drafting else torch.zeros_like(x_in) for _ in conds]  # a None cond: zeros, as ComfyUI
        if step is not None:  # anchors: one window per call, reference windows first
            groups = [[n] for n in step.order(windows)]
        else:
            groups = calls(windows, self.per_call(model, conds, x_in, len(windows)), distinct=any_control(conds, places_by_frame))
        first = None  # the first window's prediction per cond (NaiveReuse)
        for numbers in tqdm(groups, desc="context window calls", leave=False, disable=len(groups) < 2):
            retained = step.retained(numbers[0]) if step is not None else []  # reference latents before the window's frames
            window = retained + [frame for n in numbers for frame in windows[n]]  # k L frames: the windows one after the other
            index = torch.tensor(window, device=x_in.device)
            sliced = {}  # control -> its copy for these frames, shared by the conds
            sub_conds = [None if c is None else [slice_cond(item, index, frames, sliced) for item in c] for c in conds]
            sub_t = take(timestep, index) if per_frame(timestep, frames) else timestep
            options = with_window(model_options, window, frames, length, len(numbers))
            if step is not None:
                options = step.model_options(options, model, numbers[0], window)
            results = executor(model, sub_conds, x_in[index], sub_t, options, **kwargs)
            w = torch.cat([torch.zeros(len(retained)), *(weights[n] for n in numbers)]).to(x_in).view(-1, *([1] * (x_in.ndim - 1)))
            for acc, result in zip(out, results, strict=True):
                acc.index_add_(0, index, result * w)
            if step is not None:
                step.done(numbers[0])
            if reuse is not None and 0 in numbers:
                at = len(retained) + sum(len(windows[n]) for n in numbers[:numbers.index(0)])
                first = [result[at:at + len(windows[0])] for result in results]
        if reuse is not None:
            out = [reuse.apply(acc, head, windows[0]) for acc, head in zip(out, first, strict=True)]
        return out

    def windows(self, frames: int, step: int) -> list[list[int]]:
        """The windows of a video of ``frames`` frames at sampling step ``step``: the plan's (:mod:`.plan`), or the
        draft's one window (:mod:`.draft`)."""
        if self.options.draft_start >= 0:
            return [draft_window(frames, self.options.draft_start, self.options.context_length)]
        return context_windows(frames, self.options, step)

    def per_call(self, model, conds: list, x_in: torch.Tensor, most: int) -> int:
        """Windows per model call: as many as fit in free memory by ComfyUI's rule, at most ``options.windows_per_call``
        (0: no limit) and at most ``most``; 1 with a control placed by video frame."""
        most = min(most, self.options.windows_per_call or most)
        if most == 1 or has_window_control(conds):
            return 1
        batch = max(sum(len(c) for c in conds if c is not None), 1)
        window_shape = [self.options.context_length, *x_in.shape[1:]]
        return windows_that_fit(model, window_shape, batch, most, comfy.model_management.get_free_memory(x_in.device))


class WindowedMemoryEstimate:
    """``PREPARE_SAMPLING`` wrapper: ComfyUI sizes its memory plan for one window, not the whole video.
    Immutable, so copies of ``model_options`` may share it."""

    def __init__(self, options: ContextOptions):
        self.options = options

    def __deepcopy__(self, memo):
        return self

    def __call__(self, executor, model, noise_shape, conds, *args, **kwargs):
        refuse_core_windows(kwargs.get("model_options", args[0] if args else None))
        retained = self.options.anchors.retained() if self.options.anchors else 0  # reference latents in each call
        noise_shape = [min(noise_shape[0], self.options.context_length + retained), *noise_shape[1:]]
        return executor(model, noise_shape, conds, *args, **kwargs)


def use_context_windows(patcher, options: ContextOptions) -> None:
    """Make ``patcher`` (a clone the caller owns) evaluate in ``options``' windows."""
    if patcher.get_wrappers(comfy.patcher_extension.WrappersMP.CALC_COND_BATCH, WrapperKeys.CONTEXT_WINDOWS):
        raise OptionsError("this MODEL already samples in context windows; apply context options once")
    refuse_core_windows(patcher.model_options)
    patcher.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.CALC_COND_BATCH, WrapperKeys.CONTEXT_WINDOWS, WindowedEvaluation(options))
    patcher.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.PREPARE_SAMPLING, WrapperKeys.CONTEXT_WINDOWS, WindowedMemoryEstimate(options))
    use_cond_frame_check(patcher)
