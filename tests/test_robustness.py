"""Careless and hostile inputs through the real server, where a user meets them (issue 18): no file is lost, no
black video is reported as success, and every refusal names the file or input and the fix."""

from __future__ import annotations

import shutil

import pytest
import safetensors
import safetensors.torch
import torch
from comfy_server import PromptError
from graphs import node_of, on_test_models, shipped, small_txt2vid
from manifests import manifest
from weights import MODELS_DIR, motion_lora_path

TRAINED_DIR = "trained_by_tests/robustness"


def training_graph(lora_name: str, steps: int = 1, **inputs) -> dict:
    """The shipped training workflow on the test models: ``steps`` steps on the test clip, a state every step."""
    prompt = on_test_models(shipped("train_motion_lora.api.json"), "input.mp4")
    node_of(prompt, "AnimDiffTrainMotionLoRA")["inputs"].update(lora_name=lora_name, steps=steps, checkpoint_every=1, resume=True,
                                                               **inputs)
    node_of(prompt, "EmptyLatentImage")["inputs"]["batch_size"] = 8
    node_of(prompt, "AnimDiffLoadMotionModule")["inputs"]["model_name"] = "mm_v3_random.safetensors"
    return prompt


def failure(err: PromptError) -> dict:
    """The ``execution_error`` message of a failed prompt's history entry."""
    return next(data for event, data in err.value.details["status"]["messages"] if event == "execution_error")


@pytest.fixture
def lora_folder():
    folder = MODELS_DIR / "animatediff_motion_lora" / TRAINED_DIR
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow  # about 30 s on two shared CPU cores
def test_training_never_replaces_a_file_it_did_not_write(server, lora_folder):
    downloaded = lora_folder / "downloaded.safetensors"
    shutil.copy(motion_lora_path(), downloaded)  # someone's LoRA, 38 MB in real life
    original = downloaded.read_bytes()

    with pytest.raises(PromptError, match=rf"lora_name {TRAINED_DIR}/downloaded.safetensors: .*downloaded.safetensors exists "
                                          "already and was not written by this run .*choose another name, or turn overwrite on"):
        server.run(training_graph(f"{TRAINED_DIR}/downloaded"))
    assert downloaded.read_bytes() == original and not (lora_folder / "downloaded.training-state").exists()

    # Explicitly replaced; a trailing .safetensors is the file's own suffix, not doubled.
    server.run(training_graph(f"{TRAINED_DIR}/downloaded.safetensors", overwrite=True))
    with safetensors.safe_open(str(downloaded), "pt") as file:
        assert (file.metadata()["stage"], file.metadata()["steps"]) == ("motion_lora", "1")
    assert sorted(p.name for p in lora_folder.iterdir()) == ["downloaded.safetensors", "downloaded.training-state"]
    trained = downloaded.read_bytes()

    # Resuming it with another motion module of the same shapes (v1 for v3): refused, nothing written.
    other_module = training_graph(f"{TRAINED_DIR}/downloaded", steps=2)
    node_of(other_module, "AnimDiffLoadMotionModule")["inputs"]["model_name"] = "mm_v1_random.safetensors"
    with pytest.raises(PromptError, match=r"downloaded.training-state: was trained on another motion module \(mm_v3_random.safetensors"
                                          r".*now mm_v1_random.safetensors.*other weights\): start a new run") as err:
        server.run(other_module)
    assert failure(err)["exception_type"] == "AnimDiff.TrainingStateError"  # not the install path
    assert downloaded.read_bytes() == trained

    # A damaged state names itself and what to do; nothing is written.
    (lora_folder / "downloaded.training-state").write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(PromptError, match=r"downloaded.training-state: not a training state: not a weights file at all .*start a new "
                                          "run: delete the state file or turn resume off"):
        server.run(training_graph(f"{TRAINED_DIR}/downloaded", steps=2))
    assert downloaded.read_bytes() == trained


@pytest.mark.parametrize("name,problem", [
    ("x" * 300, r"x{60}… \(300 characters\): too long: with the suffix '.training-state.tmp' the pack adds, each part of the name "
                r"must fit the file system's limit of \d+ bytes; use at most \d+ bytes"),
    ("evil\0name", r"evil\\0name: a file name cannot contain a NUL character"),
    ("..\\..\\evil", r"\.\.\\\.\.\\evil: backslashes are not allowed in a file name; use / for a subfolder"),
])
def test_output_names_are_checked_before_any_work(server, name, problem):
    with pytest.raises(PromptError, match=rf"AnimDiffTrainMotionLoRA.*\) raised FileError: AnimDiff: lora_name {problem}") as err:
        server.run(training_graph(name))
    assert failure(err)["exception_type"] == "AnimDiff.FileError"
    assert "encode" not in failure(err)["traceback"][-1]  # refused in the node's first lines, before the clips are encoded


def test_non_finite_lora_is_refused_at_load_naming_the_tensor(server):
    keys = manifest("v2_lora_ZoomIn")["keys"]
    tensors = {k: torch.full(shape, 0.01, dtype=torch.float16) for k, shape in keys.items()}
    bad = sorted(keys)[3]
    tensors[bad][0, 0] = float("nan")
    safetensors.torch.save_file(tensors, server.scratch / "animatediff_motion_lora" / "nan_lora.safetensors")
    prompt = small_txt2vid("mm_v2_random.safetensors", frames=8)
    prompt["lora"] = {"class_type": "AnimDiffMotionLoRA", "inputs": {"motion_module": ["2", 0], "lora_name": "nan_lora.safetensors",
                                                                      "strength": 1.0}}
    node_of(prompt, "AnimDiffApplyMotionModule")["inputs"]["motion_module"] = ["lora", 0]
    with pytest.raises(PromptError, match=rf"raised NonFiniteError: AnimDiff: nan_lora.safetensors: tensor {bad} holds NaN values") as err:
        server.run(prompt)
    assert failure(err)["exception_type"] == "AnimDiff.NonFiniteError"


def test_sampling_that_overflows_raises_instead_of_saving_black_frames(server):
    """Finite but huge LoRA weights (1e15: their product ~1e32 still fits float32) make the motion module's output
    overflow to infinity and NaN in the first UNet call."""
    keys = manifest("v2_lora_ZoomIn")["keys"]
    tensors = {k: torch.full(shape, 1e15) for k, shape in keys.items()}
    safetensors.torch.save_file(tensors, server.scratch / "animatediff_motion_lora" / "huge_lora.safetensors")
    prompt = small_txt2vid("mm_v2_random.safetensors", frames=8, steps=1)
    prompt["lora"] = {"class_type": "AnimDiffMotionLoRA", "inputs": {"motion_module": ["2", 0], "lora_name": "huge_lora.safetensors",
                                                                      "strength": 1.0}}
    node_of(prompt, "AnimDiffApplyMotionModule")["inputs"]["motion_module"] = ["lora", 0]
    with pytest.raises(PromptError, match=r"KSampler\) raised NonFiniteError: AnimDiff: the model with mm_v2_random.safetensors "
                                          r"\+ huge_lora.safetensors x1 .* produced NaN or infinite values") as err:
        server.run(prompt)
    assert failure(err)["exception_type"] == "AnimDiff.NonFiniteError"


def test_version_override_that_contradicts_the_weights_is_refused(server):
    prompt = small_txt2vid("mm_v3_random.safetensors", frames=8)
    node_of(prompt, "AnimDiffLoadMotionModule")["inputs"]["version"] = "v1"
    with pytest.raises(PromptError, match=r"mm_v3_random.safetensors: version v1 contradicts the weights: v1 has positional encodings "
                                          r"for 24 frames, these weights for 32 \(they are v3\)") as err:
        server.run(prompt)
    assert failure(err)["exception_type"] == "AnimDiff.FileError"
