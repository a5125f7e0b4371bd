"""The MotionLoRA training node: a camera move learned from a few clips (or stills + camera augmentation)."""

from __future__ import annotations

import comfy.model_management
import comfy.utils

from .folders import MOTION_LORAS, output_path
from .motion import CATEGORY

STATE_SUFFIX = ".training-state"  # LORA_NAME.training-state beside LORA_NAME.safetensors


def training():
    """The training package, imported when the node is listed or runs, never when the pack loads: a change in
    ComfyUI's training internals can then only affect this node, never the generation nodes."""
    from .. import training as package

    return package


class AnimDiffTrainMotionLoRA:
    DESCRIPTION = ("Trains a MotionLoRA (the paper's camera-motion LoRA on the motion module's temporal attention; image model "
                   "and motion module frozen) from video frames, or from still images moved by a rule-based camera "
                   "(zoom, pan, tilt, roll). Saves it to models/animatediff_motion_lora for AnimDiffMotionLoRA, writes a "
                   "resumable training state every checkpoint_every steps, and shows step and loss on the node.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MOTION_MODULE", "STRING")
    RETURN_NAMES = ("motion_module", "lora_name")
    OUTPUT_TOOLTIPS = ("The motion module with the trained MotionLoRA applied (strength 1), for a preview.",
                       "The saved file's name, as AnimDiffMotionLoRA lists it.")
    OUTPUT_NODE = True
    FUNCTION = "train"

    @classmethod
    def INPUT_TYPES(cls):
        t = training()
        return {"required": {
            "model": ("MODEL", {"tooltip": "The SD1.5/SDXL checkpoint the clips are denoised with (frozen; not an animated model)."}),
            "motion_module": ("MOTION_MODULE", {"tooltip": "The motion module the LoRA is trained on (frozen), e.g. mm_sd_v15_v2."}),
            "vae": ("VAE", {"tooltip": "Encodes the training frames to latents."}),
            "positive": ("CONDITIONING", {"tooltip": "Caption of the training clips (one for all)."}),
            "images": ("IMAGE", {"tooltip": "Video frames in order (cut into clips of `frames`), or still images when a camera motion is chosen."}),
            "lora_name": ("STRING", {"default": "my_motion_lora", "tooltip": "File name (without .safetensors) in models/animatediff_motion_lora; "
                                                                     "an existing file is never replaced unless overwrite is on."}),
            "camera_motion": ([t.NO_CAMERA, *t.CAMERA_MOTIONS], {
                "tooltip": "none: the images are video frames. Otherwise every image is a still turned into one clip by this camera move (kornia)."}),
            "camera_speed": ("FLOAT", {"default": 0.02, "min": 0.001, "max": 90.0, "step": 0.001, "tooltip":
                             "Per frame: pan/tilt in fractions of the frame, zoom as relative size change, roll in degrees."}),
            "frames": ("INT", {"default": 16, "min": 2, "max": 64, "tooltip": "Frames per training clip; the modules were trained on 16."}),
            "steps": ("INT", {"default": 500, "min": 1, "max": 100000, "tooltip": "Optimizer steps (the paper's MotionLoRAs: about 2000)."}),
            "learning_rate": ("FLOAT", {"default": 1e-4, "min": 1e-7, "max": 1e-1, "step": 1e-6, "round": False,
                                        "tooltip": "AdamW learning rate."}),
            "rank": ("INT", {"default": t.STAGES["motion_lora"].rank, "min": 1, "max": 512,
                             "tooltip": "LoRA rank; 64 like the official v2 MotionLoRAs (~38 MB in fp16)."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": False,
                             "tooltip": "Same seed and inputs: the same LoRA (kept fixed between runs, so resuming works)."}),
            "checkpoint_every": ("INT", {"default": 100, "min": 0, "max": 100000,
                                         "tooltip": "Steps between training-state saves (0: only at the end)."}),
            "resume": ("BOOLEAN", {"default": True, "tooltip": "Continue from this lora_name's training state if there is one "
                                                                 "(same settings), e.g. after an interrupted run."}),
        }, "optional": {
            "overwrite": ("BOOLEAN", {"default": False, "tooltip": "Replace an existing lora_name file that this run did not "
                                                                   "write (off: such a file is refused, so no download is lost)."}),
        }, "hidden": {"unique_id": "UNIQUE_ID"}}

    def train(self, model, motion_module, vae, positive, images, lora_name, camera_motion, camera_speed, frames, steps,
              learning_rate, rank, seed, checkpoint_every, resume, overwrite=False, unique_id=None):
        path, name = output_path(MOTION_LORAS, lora_name, ".safetensors", input_name="lora_name", beside=(STATE_SUFFIX,))
        state = path.with_name(path.name.removesuffix(".safetensors") + STATE_SUFFIX)
        t = training()
        config = t.TrainConfig(stage="motion_lora", steps=steps, learning_rate=learning_rate, rank=rank, seed=seed, frames=frames,
                               checkpoint_every=checkpoint_every)
        from server import PromptServer  # the running server's (importing it outside one fails)

        bar = comfy.utils.ProgressBar(steps)

        def progress(p):
            comfy.model_management.throw_exception_if_processing_interrupted()
            bar.update_absolute(p.step, p.steps)
            PromptServer.instance.send_progress_text(f"step {p.step}/{p.steps}  loss {p.loss:.5f}", unique_id)

        result = t.train_to_file(config, model, lambda: t.encode_clips(t.training_clips(images, frames, camera_motion, camera_speed), vae,
                                                                       conditioning=positive),
                                 motion_module, path, state_path=state, resume=state if resume and state.is_file() else None,
                                 overwrite=overwrite, source=f"lora_name {name}", progress=progress)
        return (result.motion_module(motion_module, name=name), name)


NODES = [AnimDiffTrainMotionLoRA]
DISPLAY_NAMES = {"AnimDiffTrainMotionLoRA": "Train MotionLoRA (AnimDiff)"}
