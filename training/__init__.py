"""Training AnimateDiff's three stages inside ComfyUI: MotionLoRA, domain adapter, motion module.

A layer above ``motion_module/`` and ``image_model/`` (whose files it writes) and below ``nodes/``. ComfyUI's
training-only internals (``comfy_extras.nodes_train``, ``LoraDiff``) are imported only when training runs.

A training node (given MODEL, MOTION_MODULE, VAE, CONDITIONING, IMAGE) needs only::

    clips = encode_clips(clips_from_images(images, 16), vae, conditioning=positive)
    result = train(TrainConfig(stage="motion_lora", steps=steps, rank=64, learning_rate=lr, seed=seed),
                   model, clips, motion, progress=lambda p: bar.update_absolute(p.step, p.steps))
    result.save(path)                      # loads with AnimDiffMotionLoRA
    trained = result.apply(motion=motion)  # MOTION_MODULE with the LoRA, for a preview
"""

from .augment import CAMERA_MOTIONS, camera_motion, camera_path
from .clips import NO_CAMERA, TrainingClips, clips_from_images, encode_clips, training_clips
from .data import Clip, ClipDataset
from .stages import DEFAULT_RANK, STAGES
from .trainer import Progress, TrainConfig, TrainResult, load_state, noise_prediction_loss, train

__all__ = ["CAMERA_MOTIONS", "DEFAULT_RANK", "NO_CAMERA", "STAGES", "Clip", "ClipDataset", "Progress", "TrainConfig", "TrainResult",
           "TrainingClips", "camera_motion", "camera_path", "clips_from_images", "encode_clips",
           "load_state", "noise_prediction_loss", "train", "training_clips"]
