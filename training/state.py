"""The training state: one file per run that a later run resumes from, and the rules for what a run may write.

A state holds the trainable weights, the optimizer and grad-scaler state, the generator, the data order,
the step and the losses, and what the run is: its settings, a hash of its clips and captions, a content hash
of the frozen motion module (and the MotionLoRAs on it) and the trainable tensors' shapes. It is resumed
only by a run that is the same in all of these; every refusal names the state file and says what to do.

A run never replaces a file it did not write: the trained file may be replaced only with ``overwrite``, or
when resuming the run that wrote it (the file's ``training_run`` metadata is the state's ``run``).
"""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import safetensors
import torch

from ..errors import FileError, NonFiniteError, TrainingStateError
from ..weight_files import check_finite, check_floating, first_line, has_signature, write_atomically

FORMAT = "animdiff-training-state"
VERSION = 2  # 2: the run's identity (motion module hash, run id)
START_OVER = "start a new run: delete the state file or turn resume off"
IDENTITY = ("config", "clips", "data", "motion", "shapes")  # what must match for a resume
REQUIRED = ("run", *IDENTITY, "step", "parameters", "optimizer", "scaler", "generator", "order", "losses")


@dataclass
class TrainingState:
    """A training-state file and its contents (a dict of tensors and plain values)."""

    path: Path
    contents: dict

    @classmethod
    def new(cls, path: str | Path, identity: dict) -> TrainingState:
        """The state of a new run (a fresh run id) with ``identity`` (:data:`IDENTITY` keys)."""
        return cls(Path(path), {"format": FORMAT, "version": VERSION, "run": uuid.uuid4().hex, **identity})

    @classmethod
    def read(cls, path: str | Path) -> TrainingState:
        """Load and check a state file (only tensors and plain values are read: ``weights_only``)."""
        path = Path(path)
        if not path.is_file():
            raise TrainingStateError(path, f"not found: {START_OVER}")
        if not has_signature(path, ".pt"):
            raise TrainingStateError(path, f"not a training state: not a weights file at all (no PyTorch zip or pickle signature); "
                                           f"{START_OVER}")
        try:
            with torch.inference_mode(False):  # normal tensors even when read inside a node: the optimizer updates them
                contents = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise TrainingStateError(path, f"not a training state: it holds objects other than weights, which could run code; "
                                           f"{START_OVER}") from None
        except Exception as err:  # noqa: BLE001  damaged bytes make the readers fail in arbitrary ways
            raise TrainingStateError(path, f"cannot be read, truncated or not a training state ({first_line(err)[:120]}); "
                                           f"{START_OVER}") from None
        if not isinstance(contents, dict) or contents.get("format") != FORMAT:
            raise TrainingStateError(path, f"not an AnimDiff training state; {START_OVER}")
        if contents.get("version") != VERSION:
            raise TrainingStateError(path, f"written by another version of the pack (state version {contents.get('version')!r}, "
                                           f"this one reads {VERSION}); {START_OVER}")
        missing = [key for key in REQUIRED if key not in contents]
        if missing or not isinstance(contents["parameters"], dict):
            raise TrainingStateError(path, f"incomplete: no {', '.join(missing) or 'parameters'}; {START_OVER}")
        state = cls(path, contents)
        state.check_finite()
        return state

    def check_finite(self) -> None:
        """The trainable weights and the optimizer's moments (and step counters): floating point and finite."""
        tensors = {f"parameters.{k}": v for k, v in self.contents["parameters"].items()}
        for index, values in self.contents["optimizer"].get("state", {}).items():
            tensors.update({f"optimizer.{index}.{k}": v for k, v in values.items() if isinstance(v, torch.Tensor)})
        try:
            check_floating(tensors, str(self.path))
        except FileError as err:
            raise TrainingStateError(self.path, f"{err.problem}: {START_OVER}") from None
        try:
            check_finite(tensors, str(self.path))
        except NonFiniteError as err:
            raise TrainingStateError(self.path, f"{err.detail.removeprefix(f'{self.path}: ')}; the run diverged or the file is "
                                                f"damaged: {START_OVER}") from None

    @property
    def run(self) -> str:
        return self.contents["run"]

    def write(self, **progress) -> None:
        """Write the state with ``progress`` (weights, optimizer, step, …) to its file, atomically."""
        self.contents.update(progress)
        write_atomically(self.path, lambda tmp: torch.save(self.contents, tmp))

    def check_identity(self, identity: dict, describe: dict[str, Callable[[object, object], str]]) -> None:
        """Refuse a resume by a run that differs in any :data:`IDENTITY` part, saying how (``describe[key](saved, now)``)."""
        for key in IDENTITY:
            if self.contents[key] != identity[key]:
                raise TrainingStateError(self.path, f"{describe[key](self.contents[key], identity[key])}: {START_OVER} "
                                                    "(or train into another name)")


def check_replaceable(path: Path, state: TrainingState | None, overwrite: bool, source: str,
                      switch: str = "turn overwrite on") -> None:
    """Refuse to replace an existing ``path`` unless ``overwrite``, or ``state`` is the run that wrote it.

    ``source`` names the input that chose the file and ``switch`` how to allow it, for the message.
    """
    if overwrite or not path.exists():
        return
    if state is not None and written_by(path) == state.run:
        return
    raise FileError(source, f"{path} exists already and was not written by this run (it may be someone's download): "
                            f"choose another name, or {switch} to replace it")


def written_by(path: Path) -> str | None:
    """The ``training_run`` a file's safetensors metadata names, if any."""
    try:
        with safetensors.safe_open(str(path), "pt") as file:
            return (file.metadata() or {}).get("training_run")
    except Exception:  # noqa: BLE001  not a safetensors file: not ours
        return None
