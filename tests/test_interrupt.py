"""Cancel stays prompt: ComfyUI's /interrupt stops a 48-frame windowed sampling within the step it lands in,
and leaves nothing behind, so the next prompt is bit-exact with a clean run (through the real server)."""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest
import websocket
from comfy_server import output_files
from graphs import node_of, small_txt2vid
from PIL import Image, ImageSequence

FRAMES = 48
LONG = 50  # steps of the run that is interrupted: it cannot finish before the test has interrupted it


def windowed(steps: int) -> dict:
    """48 frames in 16-frame windows (overlap 4), cfg 1 (the windows of a step batched in one model call), lossless frames."""
    prompt = small_txt2vid("mm_v3_random.safetensors", frames=FRAMES, steps=steps, seed=7)
    prompt["ctx"] = {"class_type": "AnimDiffContextOptions", "inputs": {
        "context_length": 16, "context_overlap": 4, "context_stride": 1, "closed_loop": False,
        "schedule": "uniform", "fuse_method": "pyramid"}}
    node_of(prompt, "AnimDiffApplyMotionModule")["inputs"]["context_options"] = ["ctx", 0]
    node_of(prompt, "KSampler")["inputs"]["cfg"] = 1.0
    node_of(prompt, "SaveAnimatedWEBP")["inputs"].update(lossless=True, filename_prefix="interrupt")
    return prompt


def frames_of(server, entry) -> np.ndarray:
    (webp,) = output_files(entry, server.output_dir)
    with Image.open(webp) as image:
        return np.stack([np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)])


def events(ws, prompt_id: str):
    """The server's JSON events about ``prompt_id`` (binary preview frames and other prompts skipped)."""
    while True:
        message = ws.recv()
        if isinstance(message, str):
            event = json.loads(message)
            if event.get("data", {}).get("prompt_id") == prompt_id:
                yield event


@pytest.mark.slow  # about 30 s on two shared CPU cores
def test_interrupt_stops_windowed_sampling_within_a_step_and_the_next_run_is_exact(server):
    clean = frames_of(server, server.run(windowed(steps=2)))
    assert clean.shape[0] == FRAMES

    client = uuid.uuid4().hex
    ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws?clientId={client}", timeout=600)
    try:
        prompt_id = server.post("/prompt", {"prompt": windowed(steps=LONG), "client_id": client})["prompt_id"]
        sampler = next(k for k, n in windowed(LONG).items() if n["class_type"] == "KSampler")
        steps, interrupted_at, seconds = [], None, None
        for event in events(ws, prompt_id):
            if event["type"] == "progress" and event["data"]["node"] == sampler:
                steps.append(event["data"]["value"])
                if interrupted_at is None:  # the first step is done: sampling is under way
                    interrupted_at, sent = steps[-1], time.perf_counter()
                    server.post("/interrupt", {})
            elif event["type"] in ("execution_interrupted", "execution_success", "execution_error"):
                seconds = time.perf_counter() - sent if interrupted_at is not None else None
                break
    finally:
        ws.close()
    assert event["type"] == "execution_interrupted", event
    assert interrupted_at is not None and max(steps) < LONG
    # at most the step already running when /interrupt arrived completes
    assert max(steps) <= interrupted_at + 1, f"steps {steps}, interrupted after step {interrupted_at}"
    print(f"interrupt: stopped {seconds:.3f} s after /interrupt, {max(steps)} of {LONG} steps done")

    again = frames_of(server, server.run(windowed(steps=2)))
    assert np.array_equal(again, clean)
