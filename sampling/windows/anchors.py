"""Anchored windows: reference frames that every context window shares, so windows agree on one look.

Each window gets reference frames (``ANCHOR_MODES``):

- ``first``: the video's first ``frames`` frames;
- ``sliding``: the ``frames`` frames just before the window's first frame (the previous window's end), so the
  reference moves along with the windows (none for a window at the video's start);
- ``indexes``: chosen frames of the video.

and shares them in one of two ways (``ANCHOR_SHARES``):

- ``latents`` (ComfyUI 0.33's ``latent_retain_index_list`` and ``cond_retain_index_list``): the reference frames'
  latents, with their conds, hints and masks, are placed before the window's own frames in its model call, so the
  motion modules attend to them; their predictions from that call are dropped (weight 0 in the fusion: a reference
  frame is fused from its own windows only). The call holds ``len(reference) + L`` frames, which the motion
  module's positional encoding must hold.
- ``attention`` (AnimateDiff-Evolved's ContextRef, reference-only attention): in the image layers' self-attention
  (``attn1`` of every transformer block), each frame of a window attends to its own tokens and to the reference
  frames' tokens. The keys and values of a reference frame are those computed for it in an earlier model call of
  the same step (the windows holding reference frames run first), per cond and block::

      out = (1 - s) softmax(q k^T / sqrt(d)) v + s softmax(q [k; k_ref]^T / sqrt(d)) [v; v_ref]

  with ``s`` the strength. Injected as ComfyUI ``attn1`` replace patches (``transformer_options["patches_replace"]``)
  set on the model options of those calls only; calls with nothing to read or write run unpatched.

``start_percent``/``end_percent``: the sampling progress range where anchors apply (outside it, and for videos of at
most ``context_length`` frames, sampling is exactly as without them).
"""

from __future__ import annotations

from dataclasses import dataclass

import comfy.model_patcher
import torch
from comfy.ldm.modules.attention import optimized_attention

from ...errors import FramesError, OptionsError, require_finite
from ...touchpoints import OptionKeys


def first_reference(anchors: Anchors, window: list[int], frames: int) -> list[int]:
    """``first``: frames ``0 .. frames-1`` of the video."""
    return list(range(min(anchors.frames, frames)))


def sliding_reference(anchors: Anchors, window: list[int], frames: int) -> list[int]:
    """``sliding``: the ``anchors.frames`` frames before the window's first frame (wrapping only if the window wraps)."""
    start = window[0]
    wraps = window != sorted(window)
    return [(start - i) % frames for i in range(anchors.frames, 0, -1) if wraps or start - i >= 0]


def index_reference(anchors: Anchors, window: list[int], frames: int) -> list[int]:
    """``indexes``: the chosen frames."""
    return list(anchors.indexes)


# mode name -> the reference frames of one window (anchors, window, video frames); the node lists them in this order
ANCHOR_MODES = {"first": first_reference, "sliding": sliding_reference, "indexes": index_reference}
# share name -> what a window shares of its reference frames (see the module docstring); the node's order
ANCHOR_SHARES = {"attention": "the reference frames' self-attention keys and values in the image layers",
                 "latents": "the reference frames' latents (and conds) in the window's model call"}


def parse_indexes(text: str, name: str = "indexes") -> tuple[int, ...]:
    """``"0, 16, 32"`` -> ``(0, 16, 32)``; raises :class:`OptionsError` naming ``name`` on anything but
    non-negative whole numbers."""
    values = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        if not part.isdigit():
            raise OptionsError(f"{name}: {part!r} is not a frame index (whole numbers from 0, separated by commas), in {text!r}")
        values.append(int(part))
    return tuple(sorted(set(values)))


@dataclass(frozen=True)
class Anchors:
    mode: str = "first"
    frames: int = 1  # reference frames of first / sliding
    indexes: tuple[int, ...] = (0,)  # reference frames of indexes
    share: str = "attention"
    strength: float = 1.0  # attention only: 0 none, 1 full reference attention
    start_percent: float = 0.0
    end_percent: float = 1.0

    def __post_init__(self):
        require_finite(frames=self.frames, strength=self.strength, start_percent=self.start_percent, end_percent=self.end_percent)
        if self.mode not in ANCHOR_MODES:
            raise OptionsError(f"anchor mode {self.mode!r}: choose one of {list(ANCHOR_MODES)}")
        if self.share not in ANCHOR_SHARES:
            raise OptionsError(f"anchor share {self.share!r}: choose one of {list(ANCHOR_SHARES)}")
        if self.frames < 1:
            raise OptionsError(f"frames (reference frames of first/sliding) must be at least 1, got {self.frames}")
        if self.mode == "indexes" and not self.indexes:
            raise OptionsError("indexes: mode 'indexes' needs at least one frame index, e.g. '0, 64'")
        if any(i < 0 for i in self.indexes):
            raise OptionsError(f"indexes: frame indexes start at 0, got {list(self.indexes)}")
        if not 0.0 <= self.strength <= 1.0:
            raise OptionsError(f"strength must be in [0, 1], got {self.strength}")
        if not 0.0 <= self.start_percent <= self.end_percent <= 1.0:
            raise OptionsError(f"need 0 <= start_percent ({self.start_percent}) <= end_percent ({self.end_percent}) <= 1")

    def check_video(self, frames: int) -> None:
        """Raise when a chosen index lies outside a video of ``frames`` frames."""
        if self.mode == "indexes" and max(self.indexes) >= frames:
            outside = [i for i in self.indexes if i >= frames]
            raise FramesError(f"anchor indexes {outside} are outside the video of {frames} frames (0 to {frames - 1}); "
                              "change indexes on AnimDiffContextAnchors")

    def retained(self) -> int:
        """The most reference frames a window's call holds besides its own frames (0 unless ``share`` is ``latents``)."""
        if self.share != "latents":
            return 0
        return len(self.indexes) if self.mode == "indexes" else self.frames

    def reference(self, window: list[int], frames: int) -> list[int]:
        """The reference frames of ``window`` that it does not hold itself, in video order."""
        inside = set(window)
        return [f for f in dict.fromkeys(ANCHOR_MODES[self.mode](self, window, frames)) if f not in inside]


def in_range(start_percent: float, end_percent: float, model, sigma: float) -> bool:
    """Whether the sampling progress of ``sigma`` lies in ``[start_percent, end_percent]`` (``model``: a BaseModel)."""
    ms = model.model_sampling
    return ms.percent_to_sigma(end_percent) <= sigma <= ms.percent_to_sigma(start_percent)


def unet_blocks(model) -> list[tuple[str, int]]:
    """ComfyUI's ``transformer_options["block"]`` names of the UNet's blocks: ``("input", i)``, ``("middle", 0)``,
    ``("output", i)`` (``model``: a BaseModel with an SD UNet)."""
    unet = model.diffusion_model
    return ([("input", i) for i in range(len(unet.input_blocks))] + [("middle", 0)]
            + [("output", i) for i in range(len(unet.output_blocks))])


class AnchorStep:
    """The anchors of one model evaluation (one sampling step, all its windows): the order windows run in, the frames
    each call holds, and, for ``attention``, the reference keys and values stored per (cond, block, frame)."""

    def __init__(self, anchors: Anchors, windows: list[list[int]], frames: int):
        self.anchors = anchors
        self.frames = frames
        self.references = [anchors.reference(w, frames) for w in windows]
        self.needed = {f for refs in self.references for f in refs}  # frames some window reads
        self.readers = {f: sum(f in refs for refs in self.references) for f in self.needed}  # windows still to read each
        self.store: dict[int, dict[tuple, tuple[torch.Tensor, torch.Tensor]]] = {}  # frame -> (uuid, block, index) -> (k, v)

    def order(self, windows: list[list[int]]) -> list[int]:
        """Window numbers in running order: windows holding reference frames first (their features are written
        before anyone reads them); plan order otherwise, which ``sliding`` needs."""
        if self.anchors.mode == "sliding":
            return list(range(len(windows)))
        holds = [n for n, w in enumerate(windows) if self.needed & set(w)]
        return holds + [n for n in range(len(windows)) if n not in holds]

    def done(self, number: int) -> None:
        """Window ``number`` has run: drop the stored features no window reads any more."""
        for frame in self.references[number]:
            self.readers[frame] -= 1
            if not self.readers[frame]:
                self.store.pop(frame, None)

    def retained(self, number: int) -> list[int]:
        """Frames placed before window ``number``'s own in its call (``latents`` only)."""
        return self.references[number] if self.anchors.share == "latents" else []

    def model_options(self, model_options: dict, model, number: int, window: list[int]) -> dict:
        """``model_options`` for window ``number``'s call: with the attention patches when it reads or writes."""
        if self.anchors.share != "attention":
            return model_options
        writes = {p: f for p, f in enumerate(window) if f in self.needed}
        reads = self.references[number]
        if not writes and not reads:
            return model_options
        patch = ReferenceAttention(self, window, writes, reads, self.anchors.strength)
        options = {**model_options, "transformer_options": dict(model_options.get("transformer_options", {}))}
        replaced = options["transformer_options"].get(OptionKeys.PATCHES_REPLACE, {}).get("attn1", {})
        for block in unet_blocks(model):
            if any(key[:2] == block for key in replaced):
                raise OptionsError(f"anchors with share 'attention' replace the self-attention of UNet block {block}, which another "
                                   "node already replaces (an attn1 replace patch): use share 'latents', or remove that node")
            options = comfy.model_patcher.set_model_options_patch_replace(options, patch, "attn1", block[0], block[1])
        return options


class ReferenceAttention:
    """ComfyUI ``attn1`` replace patch for one window's call: ``(q, k, v, extra_options) -> out``, all ``(b, tokens,
    heads * dim_head)`` with ``b = conds * L`` (the call's conds one after another, each the window's ``L`` frames).
    Stores the keys and values of the frames other windows read, and attends to the stored references."""

    def __init__(self, step: AnchorStep, window: list[int], writes: dict[int, int], reads: list[int], strength: float):
        self.step, self.length, self.writes, self.reads, self.strength = step, len(window), writes, reads, strength

    def __deepcopy__(self, memo):  # copies of the model options must write to and read from the one store of the step
        return self

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra_options: dict) -> torch.Tensor:
        heads, precision = extra_options[OptionKeys.N_HEADS], extra_options.get(OptionKeys.ATTN_PRECISION)
        block = (*extra_options.get(OptionKeys.BLOCK, ("?", 0)), extra_options.get(OptionKeys.BLOCK_INDEX, 0))
        uuids = extra_options.get(OptionKeys.UUIDS) or [None] * (q.shape[0] // self.length)
        outs = []
        for chunk, uuid in enumerate(uuids):
            rows = slice(chunk * self.length, (chunk + 1) * self.length)
            for position, frame in self.writes.items():
                if self.step.readers[frame]:
                    self.step.store.setdefault(frame, {}).setdefault((uuid, *block), (k[rows][position].detach(), v[rows][position].detach()))
            refs = [self.step.store[f][(uuid, *block)] for f in self.reads if (uuid, *block) in self.step.store.get(f, {})]
            plain = None if refs and self.strength == 1.0 else optimized_attention(q[rows], k[rows], v[rows], heads, attn_precision=precision)
            if not refs or self.strength == 0.0:
                outs.append(plain)
                continue
            # reference tokens appended to every frame's keys and values: (L, tokens + R tokens, heads * dim_head)
            k_ref = torch.cat([r[0] for r in refs]).to(k)[None].expand(self.length, -1, -1)
            v_ref = torch.cat([r[1] for r in refs]).to(v)[None].expand(self.length, -1, -1)
            shared = optimized_attention(q[rows], torch.cat([k[rows], k_ref], 1), torch.cat([v[rows], v_ref], 1), heads,
                                         attn_precision=precision)
            outs.append(shared if plain is None else torch.lerp(plain, shared, self.strength))
        return torch.cat(outs)


@dataclass(frozen=True)
class NaiveReuse:
    """AnimateDiff-Evolved's NaiveReuse: in ``[start_percent, end_percent]`` of sampling, the first window's prediction
    is repeated along the video (frame ``t`` gets the first window's frame ``(t - start) mod L``) and mixed into every
    frame's fused prediction: ``out = w * repeated + (1 - w) * out``, ``w = weighted_mean``."""

    weighted_mean: float = 0.95
    start_percent: float = 0.0
    end_percent: float = 0.15

    def __post_init__(self):
        require_finite(weighted_mean=self.weighted_mean, start_percent=self.start_percent, end_percent=self.end_percent)
        if not 0.0 <= self.weighted_mean <= 1.0:
            raise OptionsError(f"weighted_mean must be in [0, 1], got {self.weighted_mean}")
        if not 0.0 <= self.start_percent <= self.end_percent <= 1.0:
            raise OptionsError(f"need 0 <= start_percent ({self.start_percent}) <= end_percent ({self.end_percent}) <= 1")

    def apply(self, fused: torch.Tensor, first: torch.Tensor, window: list[int]) -> torch.Tensor:
        """``fused`` ``(F, C, H, W)`` mixed with ``first`` ``(L, C, H, W)``, the prediction of ``window``'s frames."""
        position = (torch.arange(fused.shape[0]) - window[0]) % len(window)
        repeated = first[position.to(first.device)]
        return torch.lerp(fused, repeated.to(fused), self.weighted_mean)
