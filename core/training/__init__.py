"""Training: a robust regressor on a project's current labels, with outlier scores
written into the project file as it goes.

Modules: ``config`` (the run's settings), ``data`` (the samples as arrays),
``augmentation`` (flip and jitter on the device, and their inverse),
``loader`` (batches from the image cache), ``predict`` (the evaluation pass),
``checkpoints``, ``events`` (what callbacks receive), ``recorder`` (the one
writer of a run's progress), ``throughput`` (images/s, data wait, GPU use),
``loop`` (the trainer), ``distributed`` (torchrun), ``folds`` (cross-fitting)
and ``run`` (:func:`train`: a run from start to end).
"""

from __future__ import annotations

from core.training.augmentation import Augmentation, augment, flip_outputs, unaugment_residuals
from core.training.checkpoints import CheckpointError, checkpoint_path, load_checkpoint
from core.training.config import TrainConfig
from core.training.data import (
    StopFn,
    TrainData,
    TrainingStopped,
    denormalise_points,
    load_data,
    normalise_points,
)
from core.training.errors import val_error
from core.training.events import (
    BatchProgress,
    Callbacks,
    EpochEvent,
    EStepEvent,
    ScoresEvent,
    StatusEvent,
)
from core.training.loop import Trainer
from core.training.predict import Predictions, pick_device, predict, to_input
from core.training.recorder import ProjectRecorder, Recorder
from core.training.run import PeerError, train
from core.training.step import lr_at

__all__ = [
    "Augmentation", "BatchProgress", "Callbacks", "CheckpointError", "EStepEvent", "EpochEvent",
    "PeerError", "Predictions", "ProjectRecorder", "Recorder", "ScoresEvent", "StatusEvent", "StopFn",
    "TrainConfig", "TrainData", "Trainer", "TrainingStopped", "augment", "checkpoint_path",
    "denormalise_points", "flip_outputs", "load_checkpoint", "load_data", "lr_at",
    "normalise_points", "pick_device", "predict", "to_input", "train", "unaugment_residuals",
    "val_error",
]
