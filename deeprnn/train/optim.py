"""Optimizers and the learning-rate plan, built from a `TrainConfig`.

The plan (all torch.optim.lr_scheduler objects, so they chain multiplicatively):
- warmup (`warmup_steps` = w > 0): optimizer step i (0-based) uses lr * (i + 1) / (w + 1)
  for i < w, then lr (LinearLR, stepped after every optimizer step);
- then, stepped once at the end of every epoch (epoch e = 0, 1, ... below):
  "step":    lr * gamma ** (e // step_size)                          (StepLR)
  "cosine":  min_lr + (lr - min_lr) * (1 + cos(pi * e / epochs)) / 2   (CosineAnnealingLR)
  "plateau": lr * gamma once more than `plateau_patience` epochs in a row did not improve
             `monitor` (the count then restarts); never below min_lr  (ReduceLROnPlateau)
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim import lr_scheduler

from deeprnn.config import TrainConfig
from deeprnn.train.callbacks import resolve_mode


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum), RMSprop, Adam or AdamW over the model's trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    lr, wd, name = config.lr, config.weight_decay, config.optimizer
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=config.momentum, weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    return torch.optim.AdamW(params, lr=lr, weight_decay=wd)


class Schedule:
    """The learning-rate plan of one run: `after_step()` per update, `after_epoch(metric)`.

    `state_dict()` / `load_state_dict()` hold plain values only, so checkpoints can store
    them as JSON.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, config: TrainConfig):
        self.optimizer = optimizer
        self.warmup = None
        self.main = None
        w = config.warmup_steps
        if w > 0:
            self.warmup = lr_scheduler.LinearLR(optimizer, 1.0 / (w + 1), 1.0, total_iters=w)
        if config.schedule == "step":
            self.main = lr_scheduler.StepLR(optimizer, config.step_size, config.gamma)
        elif config.schedule == "cosine":
            self.main = lr_scheduler.CosineAnnealingLR(optimizer, config.epochs, config.min_lr)
        elif config.schedule == "plateau":
            self.main = lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode=resolve_mode(config.monitor, config.mode),
                factor=config.gamma,
                patience=config.plateau_patience,
                min_lr=config.min_lr,
            )

    @property
    def lr(self) -> float:
        """The learning rate the next optimizer step will use (first parameter group)."""
        return float(self.optimizer.param_groups[0]["lr"])

    def after_step(self) -> None:
        if self.warmup is not None and self.warmup.last_epoch < self.warmup.total_iters:
            self.warmup.step()

    def after_epoch(self, metric: float | None = None) -> None:
        if isinstance(self.main, lr_scheduler.ReduceLROnPlateau):
            if metric is not None and math.isfinite(metric):
                self.main.step(metric)
        elif self.main is not None:
            self.main.step()

    def state_dict(self) -> dict:
        return {
            "warmup": None if self.warmup is None else self.warmup.state_dict(),
            "main": None if self.main is None else self.main.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        for name in ("warmup", "main"):
            sched = getattr(self, name)
            if (sched is None) != (state.get(name) is None):
                raise ValueError(f"the saved schedule has a different {name} part")
            if sched is not None:
                sched.load_state_dict(state[name])
