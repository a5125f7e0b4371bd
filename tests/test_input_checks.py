"""Wrong numbers and wrong files refused where they enter, naming the input (issue 23), through the real server:
NaN and infinity in every numeric node input and schedule, tensors of the wrong kind, a per-frame conditioning that
does not fit the latent batch."""

from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch
from animdiff.errors import OptionsError
from animdiff.nodes import NODE_CLASS_MAPPINGS
from animdiff.sampling.prompts.cond_frames import check_cond_frames, fits, video_rows
from animdiff.sampling.prompts.frames import frame_values, parse_numbers
from animdiff.sampling.windows.evaluation import slice_cond
from comfy.conds import CONDCrossAttn
from comfy_server import PromptError
from graphs import WORKFLOWS, on_test_models, shipped, small_txt2vid
from test_prompt_graph import travel_graph

VALUES = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
UNSENT_LORA = "trained_by_tests/finite_inputs"  # never written: every case is refused before training


def numeric_inputs() -> list[tuple[str, str]]:
    """Every ``(node, input)`` of the pack whose input is an INT or a FLOAT, from the nodes' own declarations."""
    found = []
    for name, node in sorted(NODE_CLASS_MAPPINGS.items()):
        spec = node.INPUT_TYPES()
        for section in ("required", "optional"):
            found += [(name, key) for key, (kind, *_) in spec.get(section, {}).items() if kind in ("INT", "FLOAT")]
    return found


def graph_with(node: str, inputs: dict) -> dict:
    """The first shipped workflow holding ``node``, on the test models, with ``inputs`` set on every such node."""
    name = next(p.name for p in sorted(WORKFLOWS.glob("*.api.json"))
                if node in {entry["class_type"] for entry in json.loads(p.read_text()).values()})
    prompt = on_test_models(shipped(name), "input.mp4")
    for entry in prompt.values():
        if entry["class_type"] == node:
            entry["inputs"].update(inputs)
        if entry["class_type"] == "AnimDiffTrainMotionLoRA":
            entry["inputs"]["lora_name"] = UNSENT_LORA
    return prompt


SCHEDULES = ["0:nan", "0:inf, 4:1", "0:1e309", "0:1, 4:-inf", '"0": "NaN"']
PROMPT_WEIGHTS = ["0: a (cat:nan)", "0: a dog\n4: a (cat:inf)"]


def cases() -> dict[str, tuple[dict, str, str]]:
    """case id -> (prompt, the node type that must refuse it, what its refusal must name)."""
    table = {f"{node}.{key}={label}": (graph_with(node, {key: value}), node, key)
             for node, key in numeric_inputs() for label, value in VALUES.items()}
    for schedule in SCHEDULES:  # one line each: the message names the whole line
        table[f"motion_scale_schedule={schedule}"] = (travel_graph(8, "0: a cat", schedule), "AnimDiffApplyMotionModule",
                                                      f"schedule line {schedule!r}")
    for text in PROMPT_WEIGHTS:
        table[f"prompt_weight={text}"] = (travel_graph(8, text), "AnimDiffPromptSchedule", f"schedule line {text.splitlines()[-1]!r}")
    return table


CASES = cases()


@pytest.fixture(scope="module")
def outcomes(cached_server) -> dict[str, tuple[str, dict]]:
    """Every case queued on one server (its cache on: the loaders run once) first, then each awaited: ``("refused", /prompt's 400 body)``,
    ``("failed", the execution_error)`` or ``("ran", history entry)``."""
    queued, results = {}, {}
    for case, (prompt, _, _) in CASES.items():
        try:
            queued[case] = cached_server.queue(prompt)
        except PromptError as err:
            results[case] = ("refused", err.details)
    for case, prompt_id in queued.items():
        try:
            results[case] = ("ran", cached_server.wait(prompt_id, timeout=600))
        except PromptError as err:
            results[case] = ("failed", next(d for e, d in err.details["status"]["messages"] if e == "execution_error"))
    return results


def test_every_numeric_input_is_in_the_table():
    """The table is built from the nodes' declarations; this pins that it finds the inputs the issue names."""
    pairs = set(numeric_inputs())
    assert {("AnimDiffApplyMotionModule", "motion_scale"), ("AnimDiffMotionLoRA", "strength"), ("AnimDiffDomainAdapter", "alpha"),
            ("AnimDiffTrainMotionLoRA", "learning_rate"), ("AnimDiffContextOptions", "windows_per_call"),
            ("AnimDiffNoise", "mix_weight"), ("AnimDiffFreeInit", "spatial_stop"), ("AnimDiffMotionKeyframe", "scale_multiplier")} <= pairs


@pytest.mark.parametrize("case", list(CASES))
def test_non_finite_number_is_refused_naming_the_input(outcomes, case):
    _, node, named = CASES[case]
    kind, details = outcomes[case]
    assert kind != "ran", f"{case}: sampled or trained without a word"
    if kind == "refused":  # ComfyUI's own validation (ints, and floats beyond a declared min/max)
        errors = [e for n in details["node_errors"].values() if n["class_type"] == node for e in n["errors"]]
        assert any(e.get("extra_info", {}).get("input_name") == named for e in errors), details
        return
    message = details["exception_message"]
    assert details["node_type"] == node, f"{case}: refused by {details['node_type']}, not where it enters: {message}"
    assert named in message and "finite" in message, message
    assert details["exception_type"] == "AnimDiff.OptionsError" and "weights too large" not in message, message  # not blamed on weights


@pytest.mark.parametrize("text", ["0:nan", "0: inf", "0:-Infinity", "0:1e309", '"0": "nan"', "0:1, 8:1e39"])
def test_schedule_numbers_are_finite_in_float32(text):
    """Values are used as float32: 1e39 is finite as read but infinite there."""
    with pytest.raises(OptionsError, match=rf"schedule line {text!r}: the value .* is (nan|inf|-inf|1e\+39): give a finite number"):
        parse_numbers(text)
    assert frame_values(parse_numbers("0:3e38, 2:-3e38"), 3).isfinite().all()


# -- a per-frame conditioning against the latent batch ------------------------------------------------------------------

def test_frame_rule_is_comfyuis_whole_repeats():
    assert [fits(rows, 12) for rows in (1, 2, 3, 4, 6, 12)] == [True] * 6
    assert [fits(rows, 12) for rows in (5, 7, 8, 16, 24)] == [False] * 5
    check_cond_frames({"positive": [{"cross_attn": torch.zeros(4, 77, 8)}], "negative": [{"cross_attn": torch.zeros(1, 77, 8)}]}, 8)
    with pytest.raises(ValueError, match=r"the negative conditioning has 3 frames .* the latent batch has 8: set the frames input "
                                         r"of AnimDiffPromptSchedule .* to 8, or the latent's batch_size to 3"):
        check_cond_frames({"negative": [{"cross_attn": torch.zeros(2, 7, 8)}, {"pooled_output": torch.zeros(3, 8)}]}, 8)


def test_windows_see_the_rows_the_whole_video_sees():
    """A 4-frame cond on an 8-frame video: ComfyUI tiles it (frame i takes row i mod 4); a window of frames 4-7 must take
    rows 0-3, not the first four rows of the cond repeated to the window's length from its own start."""
    rows = torch.arange(4.0).view(4, 1, 1).expand(4, 3, 2)
    cond = {"model_conds": {"c_crossattn": CONDCrossAttn(rows)}}
    window = slice_cond(cond, torch.tensor([2, 3, 4, 5, 6]), 8)
    assert window["model_conds"]["c_crossattn"].cond[:, 0, 0].tolist() == [2, 3, 0, 1, 2]
    assert torch.equal(video_rows(rows, 8)[:, 0, 0], torch.tensor([0.0, 1, 2, 3, 0, 1, 2, 3]))
    assert video_rows(rows[:1], 8) is None  # one row: shared by every frame, left as it is
    shared = {"model_conds": {"c_crossattn": CONDCrossAttn(rows[:1])}}
    assert slice_cond(shared, torch.tensor([5, 6]), 8)["model_conds"]["c_crossattn"] is shared["model_conds"]["c_crossattn"]


def mismatched(schedule_frames: int, batch: int, windows: bool) -> dict:
    prompt = travel_graph(schedule_frames, f"0: a red ball\n{schedule_frames - 1}: a blue cube", "0:1")
    prompt["latent"]["inputs"]["batch_size"] = batch
    prompt["ctx"]["inputs"].update(context_length=8, context_overlap=2)
    if not windows:
        del prompt["anim"]["inputs"]["context_options"]
    return prompt


@pytest.mark.parametrize("windows", [False, True])
@pytest.mark.parametrize("schedule_frames,batch", [(8, 12), (16, 12)])
def test_conditioning_that_does_not_fit_the_batch_is_refused_at_sampling(cached_server, schedule_frames, batch, windows):
    with pytest.raises(PromptError, match=rf"KSampler.*\) raised FramesError: AnimDiff: the positive conditioning has {schedule_frames} "
                                          rf"frames .* the latent batch has {batch}: set the frames input of AnimDiffPromptSchedule"):
        cached_server.run(mismatched(schedule_frames, batch, windows))


@pytest.mark.slow  # about 35 s on two shared cores: the module's one sampling run
def test_conditioning_that_repeats_evenly_samples(cached_server):
    entry = cached_server.run(mismatched(4, 12, windows=True))
    assert entry["status"]["status_str"] == "success"


# -- weight files of the wrong kind, through the loader node ------------------------------------------------------------

def test_integer_tensor_in_a_motion_module_is_refused_naming_file_and_tensor(cached_server):
    from weights import motion_module_path

    state = safetensors.torch.load_file(motion_module_path("mm_v3_random.safetensors"))
    bad = sorted(k for k in state if k.endswith("proj_out.weight"))[0]
    state[bad] = state[bad].round().to(torch.int16)
    safetensors.torch.save_file(state, cached_server.scratch / "animatediff_models" / "int_tensor.safetensors")
    prompt = small_txt2vid("int_tensor.safetensors", frames=8, steps=1)  # refused by the loader: nothing samples
    with pytest.raises(PromptError, match=rf"AnimDiffLoadMotionModule.*\) raised FileError: AnimDiff: int_tensor.safetensors: does not "
                                          rf"match the v3 motion-module layout: {bad} is int16 \(integer\), the v3 motion-module "
                                          "layout needs floating point values"):
        cached_server.run(prompt)
