"""SparseCtrl as a ComfyUI ``CONTROL_NET``: keyframes placed at frame indices, for the stock apply nodes.

The hint images given to ``ControlNetApplyAdvanced`` are the keyframes, in order. Every model call
builds the condition of the frames it sees: the keyframe (rgb: VAE-encoded, x0.18215; scribble: the
image) and mask 1 at a keyframe's frame, zeros and mask 0 everywhere else — as the original
pipeline does. A context window that holds no keyframe runs the network on that all-zero condition,
exactly what the original does for any frame without a keyframe (its output is not zero: biases,
timestep and the motion modules' view of the window remain). ComfyUI's strength, start/end percent,
positive/negative handling, ControlNet chaining and model loading apply unchanged.
"""

from __future__ import annotations

import copy

import comfy.controlnet
import comfy.latent_formats
import comfy.model_management
import comfy.utils
import torch

from ..errors import BaseModelError, FramesError, OptionsError
from .model import SparseControlNet

LATENT_FORMAT = comfy.latent_formats.SD15()  # SparseCtrl exists for SD1.5 only (checked in pre_run)


def parse_frame_indices(text: str) -> tuple[int, ...] | None:
    """``"0, 8,15"`` -> ``(0, 8, 15)``; empty -> ``None`` (spread the keyframes evenly over the video)."""
    parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    if not parts:
        return None
    try:
        indices = tuple(int(p) for p in parts)
    except ValueError:
        raise OptionsError(f"frame_indices {text!r}: give frame numbers separated by commas, such as 0,8,15") from None
    if any(i < 0 for i in indices):
        raise OptionsError(f"frame_indices {text!r}: frame numbers start at 0")
    if len(set(indices)) != len(indices):
        raise OptionsError(f"frame_indices {text!r}: each frame may hold one keyframe only")
    return indices


def keyframe_positions(indices: tuple[int, ...] | None, keyframes: int, frames: int) -> list[int]:
    """The video frame of each keyframe: ``indices``, or ``keyframes`` spread evenly from the first
    to the last frame. Refuses a frame past the video's end."""
    if indices is None:
        if keyframes > frames:
            raise FramesError(f"SparseCtrl got {keyframes} keyframe images for a {frames}-frame video; give at most one per frame")
        return [round(i * (frames - 1) / (keyframes - 1)) for i in range(keyframes)] if keyframes > 1 else [0]
    late = [i for i in indices if i >= frames]
    if late:
        raise FramesError(f"SparseCtrl frame_indices {', '.join(map(str, late))}: the video has {frames} frames (0-{frames - 1}); "
                          "lower the index or make the latent batch longer")
    return list(indices)


class SparseCtrl(comfy.controlnet.ControlNet):
    """A :class:`comfy.controlnet.ControlNet` that runs a :class:`SparseControlNet` on keyframes.

    ``window``/``video_frames`` are set on the copies the context-window evaluation makes
    (:meth:`for_window`): the video frame of each frame the copy sees, and the video's length.
    """

    def __init__(self, control_model: SparseControlNet | None = None, frame_indices: tuple[int, ...] | None = None,
                 name: str = "SparseCtrl", load_device=None, manual_cast_dtype=None):
        super().__init__(control_model, load_device=load_device, manual_cast_dtype=manual_cast_dtype)
        self.frame_indices = frame_indices
        self.name = name
        self.keyframes = None  # (keyframes, 3, H, W) images in [0, 1]
        self.encoded = {}  # latent (h, w) -> conditions; shared with window copies, cleared after sampling
        self.window = None
        self.video_frames = None

    @property
    def kind(self) -> str:
        return self.control_model.config.kind

    def set_cond_hint(self, cond_hint, strength=1.0, timestep_percent_range=(0.0, 1.0), vae=None, extra_concat=()):
        """Called by the apply nodes with the keyframes ``(keyframes, 3, H, W)``; rgb needs the VAE."""
        super().set_cond_hint(cond_hint, strength, timestep_percent_range, vae=None, extra_concat=list(extra_concat))
        self.keyframes, self.cond_hint_original, self.encoded = cond_hint, None, {}
        if self.kind == "rgb":
            if vae is None:
                raise OptionsError(f"{self.name} is an RGB SparseCtrl: its keyframes are encoded with the VAE. "
                                   "Connect your checkpoint's VAE to the vae input of Apply ControlNet")
            if vae.latent_channels != LATENT_FORMAT.latent_channels:
                raise OptionsError(f"{self.name} needs an SD1.5 VAE (4 latent channels); the VAE connected to Apply ControlNet "
                                   f"makes {vae.latent_channels}-channel latents")
        self.vae = vae if self.kind == "rgb" else None  # scribbles are images: never VAE-encoded
        count = cond_hint.shape[0]
        if self.frame_indices is not None and len(self.frame_indices) != count:
            raise OptionsError(f"{self.name}: frame_indices lists {len(self.frame_indices)} frames "
                               f"({', '.join(map(str, self.frame_indices))}) but Apply ControlNet got {count} keyframe images; "
                               "give one index per image, in order (or leave frame_indices empty to spread them)")
        return self

    def copy(self):
        c = SparseCtrl(None, self.frame_indices, self.name, self.load_device, self.manual_cast_dtype)
        c.control_model, c.control_model_wrapped = self.control_model, self.control_model_wrapped
        self.copy_to(c)
        c.keyframes, c.vae = self.keyframes, self.vae
        return c

    def for_window(self, index: torch.Tensor, frames: int) -> SparseCtrl:
        """The copy that the context-window evaluation uses for the video frames ``index`` of ``frames``."""
        sliced = copy.copy(self)  # shares what pre_run set up and the encoded keyframes
        sliced.window, sliced.video_frames, sliced.cond_hint = index.tolist(), frames, None
        return sliced

    def pre_run(self, model, percent_to_timestep_function):
        context_dim = model.model_config.unet_config.get("context_dim")
        if type(model.latent_format) is not comfy.latent_formats.SD15 or context_dim != self.control_model.config.context_dim:
            raise BaseModelError(f"{self.name} is an SD1.5 SparseCtrl; it cannot steer this {type(model.model_config).__name__} model. "
                                 "Use it with an SD1.5 checkpoint and an SD1.5 motion module")
        super().pre_run(model, percent_to_timestep_function)

    def cleanup(self):
        self.encoded.clear()
        super().cleanup()

    def conditions(self, height: int, width: int) -> torch.Tensor:
        """The keyframes as the network's condition for ``height x width`` latents (cached):
        rgb ``(k, 4, height, width)`` scaled latents; scribble ``(k, 3, 8 height, 8 width)`` images."""
        if (height, width) not in self.encoded:
            scale = self.vae.spacial_compression_encode() if self.kind == "rgb" else 8
            images = comfy.utils.common_upscale(self.keyframes[:, :3], width * scale, height * scale, self.upscale_algorithm, "center")
            if self.kind == "rgb":
                loaded = comfy.model_management.loaded_models(only_currently_used=True)
                images = LATENT_FORMAT.process_in(self.vae.encode(images.movedim(1, -1)))
                comfy.model_management.load_models_gpu(loaded)
            self.encoded[(height, width)] = images
        return self.encoded[(height, width)]

    def hint(self, frames: int, height: int, width: int) -> torch.Tensor:
        """The condition with its mask channel for the ``frames`` this control sees: ``f (c+1) H W``."""
        window = self.window if self.window is not None else list(range(frames))
        positions = keyframe_positions(self.frame_indices, self.keyframes.shape[0], self.video_frames or frames)
        conditions = self.conditions(height, width)
        hint = torch.zeros(frames, conditions.shape[1] + 1, *conditions.shape[2:], device=conditions.device, dtype=conditions.dtype)
        for keyframe, frame in enumerate(positions):
            if frame in window:
                local = window.index(frame)
                hint[local, :-1] = conditions[keyframe]
                hint[local, -1] = 1.0
        return hint

    def get_control(self, x_noisy, t, cond, batched_number, transformer_options):
        control_prev = None
        if self.previous_controlnet is not None:
            control_prev = self.previous_controlnet.get_control(x_noisy, t, cond, batched_number, transformer_options)
        if self.timestep_range is not None and (t[0] > self.timestep_range[0] or t[0] < self.timestep_range[1]):
            return control_prev
        frames = x_noisy.shape[0] // batched_number
        limit = self.control_model.config.max_frames
        if frames > limit:
            raise FramesError(f"{self.name} sees at most {limit} frames at once and got {frames}: "
                              "connect AnimDiffContextOptions (context_length 16) to Apply Motion Module")
        dtype = self.manual_cast_dtype or self.control_model.dtype
        hint = self.hint(frames, *x_noisy.shape[-2:]).repeat(batched_number, 1, 1, 1)  # (b f) c H W, b = conds in the batch
        context = cond.get("crossattn_controlnet", cond["c_crossattn"])
        timestep = self.model_sampling_current.timestep(t)
        control = self.control_model(hint.to(x_noisy.device, dtype), timestep.to(dtype),
                                     comfy.model_management.cast_to_device(context, x_noisy.device, dtype), frames)
        return self.control_merge(control, control_prev, output_dtype=None)
