"""Training AnimateDiff's three stages inside ComfyUI: MotionLoRA, domain adapter, motion module.

A layer above ``motion_module/`` and ``image_model/`` (whose files it writes) and below ``nodes/``. ComfyUI's
training-only internals (``comfy_extras.nodes_train``, ``LoraDiff``) are imported only when training runs.

A training node (given MODEL, MOTION_MODULE, VAE, CONDITIONING, IMAGE) needs only::

    clips = encode_clips(clips_from_images(images, 16), vae, conditioning=positive)
    result = train(TrainConfig(stage="motion_lora", steps=steps, rank=64, learning_rate=lr, seed=seed),
                   model, clips, motion, progress=lambda p: bar.update_absolute(p.step, p.steps))
    result.save(path)                      # loads with AnimDiffMotionLoRA
    trained = result.motion_module(motion)  # MOTION_MODULE with the LoRA, for a preview
"""

from .augment import CAMERA_MOTIONS, camera_motion, camera_path
from .clips import NO_CAMERA, TrainingClips, clips_from_images, encode_clips, training_clips
from .data import Clip, ClipDataset
from .stages import STAGES, Stage
from .state import TrainingState, check_replaceable
from .trainer import DTYPES, PRECISIONS, Progress, TrainConfig, TrainResult, noise_prediction_loss, train, train_to_file

__all__ = ["CAMERA_MOTIONS", "DTYPES", "NO_CAMERA", "PRECISIONS", "STAGES", "Clip", "ClipDataset", "Progress", "Stage", "TrainConfig",
           "TrainResult", "TrainingState", "check_replaceable",
           "TrainingClips", "camera_motion", "camera_path", "clips_from_images", "encode_clips",
           "noise_prediction_loss", "train", "train_to_file", "training_clips"]
