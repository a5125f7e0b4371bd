"""AnimDiffTrainMotionLoRA in a real ComfyUI graph: trains on video frames, saves, resumes, and its file loads."""

from __future__ import annotations

import shutil

import pytest
import safetensors
import torch
from comfy_server import PromptError, output_files
from graphs import node_of, on_test_models, shipped
from PIL import Image
from weights import MODELS_DIR

TRAINED_DIR = "trained_by_tests/node"


def training_graph(lora_name: str, steps: int) -> dict:
    """The shipped training workflow on the test models, training ``steps`` steps on the test clip's 24 frames."""
    prompt = on_test_models(shipped("train_motion_lora.api.json"), "input.mp4")
    node_of(prompt, "AnimDiffTrainMotionLoRA")["inputs"].update(lora_name=lora_name, steps=steps, checkpoint_every=1, resume=True)
    node_of(prompt, "EmptyLatentImage")["inputs"]["batch_size"] = 8
    return prompt


@pytest.fixture
def lora_folder():
    folder = MODELS_DIR / "animatediff_motion_lora" / TRAINED_DIR
    shutil.rmtree(folder, ignore_errors=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow  # about 30 s on two shared CPU cores
def test_trains_saves_a_loadable_motion_lora_and_resumes(server, lora_folder):
    from animdiff.motion_module.lora import parse_motion_lora

    name = f"{TRAINED_DIR}/zoom"
    entry = server.run(training_graph(name, steps=1))
    (preview,) = output_files(entry, server.output_dir)
    with Image.open(preview) as image:
        assert image.n_frames == 8
    with safetensors.safe_open(lora_folder / "zoom.safetensors", "pt") as file:
        assert file.metadata()["steps"] == "1"
        tensors = {k: file.get_tensor(k) for k in file.keys()}
    layers = parse_motion_lora(tensors, "zoom.safetensors")
    assert {layer.down.shape[0] for layer in layers.values()} == {64}
    assert (lora_folder / "zoom.training-state").is_file()
    assert f"{name}.safetensors" in server.get("/object_info/AnimDiffMotionLoRA")["AnimDiffMotionLoRA"]["input"]["required"]["lora_name"][0]

    # Two steps with resume on: continues from step 1 (the state holds it), and the result loads by name.
    resumed = training_graph(name, steps=2)
    resumed["20"] = {"class_type": "AnimDiffMotionLoRA", "inputs": {"motion_module": ["2", 0], "lora_name": f"{name}.safetensors", "strength": 1.0}}
    node_of(resumed, "AnimDiffApplyMotionModule")["inputs"]["motion_module"] = ["20", 0]
    server.run(resumed)
    with safetensors.safe_open(lora_folder / "zoom.safetensors", "pt") as file:
        assert file.metadata()["steps"] == "2"
        assert any(not torch.equal(file.get_tensor(k), tensors[k]) for k in tensors)
    assert f"resuming MotionLoRA training from {lora_folder / 'zoom.training-state'}" in server.log()


def test_a_lora_name_outside_the_folder_is_refused(server):
    with pytest.raises(PromptError, match=r"\.\./evil: not a file name inside the animatediff_motion_lora folders"):
        server.run(training_graph("../evil", steps=1))


def test_stills_become_one_camera_move_each():
    from animdiff.training import camera_motion, training_clips

    stills = torch.rand(2, 64, 64, 3)
    clips = training_clips(stills, 8, "pan_left", 0.05)
    assert len(clips) == 2 and clips[0].shape == (8, 3, 64, 64)
    assert torch.equal(clips[1], camera_motion(stills[1].movedim(-1, 0), "pan_left", 0.05, length=8))
    assert [c.shape[0] for c in training_clips(torch.rand(20, 64, 64, 3), 8, "none (images are video frames)", 0.0)] == [8, 8]


@pytest.mark.parametrize("name", ["../evil", "/abs/evil", "sub/", " ", "a/../../b"])
def test_output_names_must_stay_in_the_folder(name):
    from animdiff.errors import FileError
    from animdiff.nodes.folders import MOTION_LORAS, output_path

    with pytest.raises(FileError, match="not a file name inside the animatediff_motion_lora folders"):
        output_path(MOTION_LORAS, name, ".safetensors")


def test_output_name_is_listed_relative_to_the_folder():
    from animdiff.nodes.folders import MOTION_LORAS, output_path

    path, name = output_path(MOTION_LORAS, "sub/zoom", ".safetensors")
    assert name == "sub/zoom.safetensors" and path.as_posix().endswith("/sub/zoom.safetensors")


def test_output_names_are_checked_against_the_file_system_and_a_suffix_is_taken_once():
    import os

    from animdiff.errors import FileError
    from animdiff.nodes.folders import MOTION_LORAS, name_max, output_path

    assert output_path(MOTION_LORAS, "zoom.safetensors", ".safetensors")[1] == "zoom.safetensors"
    assert output_path(MOTION_LORAS, "zoom.safetensors.safetensors", ".safetensors")[1] == "zoom.safetensors.safetensors"
    limit = name_max(output_path(MOTION_LORAS, "x", ".safetensors")[0].parent)
    room = limit - len(".training-state.tmp")
    fits = "a" * room
    assert output_path(MOTION_LORAS, fits, ".safetensors", beside=(".training-state",))[1] == f"{fits}.safetensors"
    with pytest.raises(FileError, match=rf"lora_name a{{60}}… \({room + 1} characters\): too long: .*'.training-state.tmp'.* "
                                        rf"limit of {limit} bytes; use at most {room} bytes"):
        output_path(MOTION_LORAS, fits + "a", ".safetensors", input_name="lora_name", beside=(".training-state",))
    with pytest.raises(FileError, match="too long"):
        output_path(MOTION_LORAS, "b" * (limit + 1) + "/zoom", ".safetensors")  # a subfolder part too
    assert len(os.fsencode("é" * (room // 2))) <= room  # bytes, not characters, count
    with pytest.raises(FileError, match="too long"):
        output_path(MOTION_LORAS, "é" * (room // 2 + 1), ".safetensors", beside=(".training-state",))
    with pytest.raises(FileError, match=r"lora_name a\\0b: a file name cannot contain a NUL character"):
        output_path(MOTION_LORAS, "a\0b", ".safetensors", input_name="lora_name")
    with pytest.raises(FileError, match=r"lora_name sub\\zoom: backslashes are not allowed in a file name; use / for a subfolder"):
        output_path(MOTION_LORAS, "sub\\zoom", ".safetensors", input_name="lora_name")
