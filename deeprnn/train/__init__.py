"""Training: fit / evaluate / predict, losses, metrics, optimizers, checkpoints, callbacks."""

from deeprnn.config import TrainConfig
from deeprnn.train.batches import TensorBatches
from deeprnn.train.callbacks import Callback, History, Monitor
from deeprnn.train.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    save_weights,
)
from deeprnn.train.loop import evaluate, fit, predict, seed_everything
from deeprnn.train.losses import (
    IGNORE_INDEX,
    binary_cross_entropy,
    cross_entropy,
    mse,
    task_loss,
    weight_penalty,
)
from deeprnn.train.optim import Schedule, make_optimizer

__all__ = [
    "IGNORE_INDEX",
    "Callback",
    "CheckpointError",
    "History",
    "Monitor",
    "Schedule",
    "TensorBatches",
    "TrainConfig",
    "binary_cross_entropy",
    "cross_entropy",
    "evaluate",
    "fit",
    "latest_checkpoint",
    "load_checkpoint",
    "load_weights",
    "make_optimizer",
    "mse",
    "predict",
    "save_checkpoint",
    "save_weights",
    "seed_everything",
    "task_loss",
    "weight_penalty",
]
