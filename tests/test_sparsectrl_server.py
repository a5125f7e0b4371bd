"""SparseCtrl through a real ComfyUI server with full-size random weights in the official layout (32x32, 2 steps)."""

from __future__ import annotations

import pytest
import safetensors.torch
import torch
from comfy_server import PromptError, output_files
from graphs import sparsectrl_video


def latents(server, prompt) -> torch.Tensor:
    (path,) = output_files(server.run(prompt), server.output_dir)
    return safetensors.torch.load_file(path)["latent_tensor"]


def test_one_rgb_keyframe_steers_16_frames(server):
    plain = latents(server, sparsectrl_video(None))
    first = latents(server, sparsectrl_video("0"))
    last = latents(server, sparsectrl_video("15"))
    assert first.shape == plain.shape == (16, 4, 4, 4)
    assert torch.isfinite(first).all() and torch.isfinite(last).all()
    assert not torch.equal(first, plain)
    assert not torch.equal(first, last)


@pytest.mark.slow  # about 30 s on two shared CPU cores
def test_48_frames_in_windows_with_keyframes_at_0_20_47(server):
    out = latents(server, sparsectrl_video("0,20,47", frames=48, keyframes=3, kind="scribble", windows=True))
    assert out.shape == (48, 4, 4, 4) and torch.isfinite(out).all()


def test_rgb_without_vae_and_late_index_fail_with_clear_errors(server):
    prompt = sparsectrl_video("0")
    del prompt["apply"]["inputs"]["vae"]
    with pytest.raises(PromptError, match="is an RGB SparseCtrl: its keyframes are encoded with the VAE"):
        server.run(prompt)
    with pytest.raises(PromptError, match="frame_indices 16: the video has 16 frames"):
        server.run(sparsectrl_video("16"))
