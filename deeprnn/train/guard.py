"""Guards of a training run: numerical trouble, malformed batches, bad config values.

Numerical trouble. An update whose loss or gradient norm is not finite is skipped (see
`deeprnn.train.bptt.update`: the optimizer does not step) and counted in the history
column `skipped_steps`. With `TrainConfig.bad_step_lr_factor` < 1 every skipped update
multiplies the learning rate by it. After `max_bad_steps` skipped updates in a row,
training stops with a `TrainingError` naming the epoch and batch; the checkpoints written
so far stay as they are, so the latest holds the last good weights. A gradient norm
(before clipping) above `grad_norm_warning` gives one `ExplodingGradientWarning` per epoch,
and the history column `max_grad_norm` shows the largest norm of every epoch.
"""

from __future__ import annotations

import math
import numbers
import os
import typing
import warnings

import torch
from torch import Tensor

from deeprnn import distributed
from deeprnn.config import TrainConfig
from deeprnn.errors import (
    DeepRNNError,
    InputError,
    InputTypeError,
    TrainingError,
    check_lengths,
)
from deeprnn.train.checkpoint import latest_checkpoint


class ExplodingGradientWarning(UserWarning):
    """A gradient norm exceeded `TrainConfig.grad_norm_warning`."""


class SkippedStepWarning(UserWarning):
    """An update was skipped because its loss or gradient was not finite."""


class StepGuard:
    """Watches every update of a run: skips, counts, lowers the lr, stops when hopeless.

    `after_update(loss, norm, batch, optimizer)` returns False for a skipped update (the
    loss or the norm is not finite). `epoch_row()` gives the epoch's history columns.
    """

    def __init__(self, config: TrainConfig, run_dir: str | os.PathLike | None = None):
        self.config = config
        self.run_dir = run_dir
        self.bad_in_row = 0  # skipped updates in a row, across epochs
        self.start_epoch(0)

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.skipped = 0
        self.max_norm = float("nan")
        self.warned: set[str] = set()

    def after_update(
        self, loss: float, norm: float, batch: int, optimizer: torch.optim.Optimizer
    ) -> bool:
        """Record one update; False when it was skipped. Raises TrainingError when too many
        updates in a row were skipped."""
        c = self.config
        if math.isfinite(loss) and math.isfinite(norm):
            self.bad_in_row = 0
            if math.isnan(self.max_norm) or norm > self.max_norm:
                self.max_norm = norm
            if c.grad_norm_warning is not None and norm > c.grad_norm_warning:
                self._warn_once(
                    "norm",
                    ExplodingGradientWarning(
                        f"epoch {self.epoch}, batch {batch}: gradient norm {norm:.4g} exceeds "
                        f"grad_norm_warning = {c.grad_norm_warning:g} (before clipping); "
                        + (
                            f"the update was clipped to norm {c.clip_norm:g}; if it recurs, try a "
                            "lower learning rate or bad_step_lr_factor < 1, and check the data "
                            "for outliers or NaN / inf targets"
                            if c.clip_norm is not None
                            else f"try {_ADVICE}"
                        )
                    ),
                )
            return True
        self.skipped += 1
        self.bad_in_row += 1
        if c.bad_step_lr_factor < 1:
            for group in optimizer.param_groups:
                group["lr"] *= c.bad_step_lr_factor
        lr = float(optimizer.param_groups[0]["lr"])
        what = f"loss {loss:g}, gradient norm {norm:g}"
        if c.max_bad_steps is not None and self.bad_in_row >= c.max_bad_steps:
            raise TrainingError(
                f"epoch {self.epoch}, batch {batch}: {self.bad_in_row} updates in a row had a "
                f"non-finite loss or gradient (last: {what}); training stopped. "
                f"{self._checkpoint_note()}Try {_ADVICE} (lr is now {lr:g})."
            )
        self._warn_once(
            "skip",
            SkippedStepWarning(
                f"epoch {self.epoch}, batch {batch}: skipped an update with a non-finite "
                f"{what}; lr is now {lr:g}"
            ),
        )
        return False

    def epoch_row(self) -> dict[str, float]:
        """This epoch's history columns: skipped_steps and max_grad_norm."""
        return {"skipped_steps": float(self.skipped), "max_grad_norm": self.max_norm}

    def state_dict(self) -> dict:
        return {"bad_in_row": self.bad_in_row}

    def load_state_dict(self, state: dict) -> None:
        self.bad_in_row = int(state.get("bad_in_row", 0))

    def _warn_once(self, kind: str, warning: Warning) -> None:
        if kind not in self.warned:
            self.warned.add(kind)
            warnings.warn(warning, stacklevel=3)

    def _checkpoint_note(self) -> str:
        if self.run_dir is None:
            return "No checkpoint was kept (fit had no run_dir). "
        try:
            latest = latest_checkpoint(self.run_dir)
        except (DeepRNNError, OSError):
            latest = None
        if latest is None:
            return f"{self.run_dir} holds no checkpoint yet. "
        return f"The last good checkpoint, {latest}, is kept. "


_ADVICE = (
    "gradient clipping (clip_norm, e.g. 1.0), a lower learning rate, or "
    "bad_step_lr_factor < 1, and check the data for NaN / inf targets"
)


def check_batch(x, lengths, index: int) -> None:
    """Raise InputError for a training batch whose lengths do not fit x or are all 0."""
    if not isinstance(x, Tensor) or x.dim() < 2:
        return  # the model names the problem with x itself
    try:
        checked = check_lengths(lengths, x.shape[0], x.shape[1])
    except (InputError, InputTypeError) as err:
        raise type(err)(f"training batch {index}: {err}") from err
    # Under DDP a rank sees only its rows, which may all be padding while others' are not.
    if checked is not None and x.shape[0] and int(checked.max()) == 0 and not distributed.active():
        raise InputError(
            f"training batch {index} holds only padding (every length is 0): nothing to learn "
            "from; drop empty sequences from the data"
        )


# Ranges of TrainConfig fields beyond `deeprnn.train.loop.check_config`'s own.
_RANGES = {
    "seed": (lambda v: 0 <= v < 2**63, "an int in [0, 2**63)"),
    "momentum": (lambda v: v >= 0, ">= 0"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "min_lr": (lambda v: v >= 0, ">= 0"),
    "plateau_patience": (lambda v: v >= 0, ">= 0"),
    "min_delta": (lambda v: v >= 0, ">= 0"),
    "verbose": (lambda v: v >= 0, ">= 0"),
    "class_weights": (lambda v: all(w >= 0 for w in v) and sum(v) > 0, "weights >= 0, not all 0"),
    "max_bad_steps": (lambda v: v >= 1, "None or an int >= 1"),
    "bad_step_lr_factor": (lambda v: 0 < v <= 1, "a float in (0, 1]"),
    "grad_norm_warning": (lambda v: v > 0, "None or a float > 0"),
    "keep_checkpoints": (lambda v: v >= 1, "an int >= 1"),
}


def _matches(hint, value) -> bool:
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return isinstance(value, (tuple, list)) and all(_matches(item, v) for v in value)
    return any(_matches(option, value) for option in typing.get_args(hint))


def _name(hint) -> str:
    if typing.get_args(hint) and typing.get_origin(hint) is not tuple:
        return " or ".join(_name(h) for h in typing.get_args(hint))
    return "None" if hint is type(None) else getattr(hint, "__name__", str(hint))


def check_train_config(config: TrainConfig) -> None:
    """Raise for a TrainConfig field of the wrong type, a non-finite number, or a value out
    of range (the ranges `check_config` in deeprnn.train.loop does not cover)."""
    for name, hint in typing.get_type_hints(TrainConfig).items():
        value = getattr(config, name)
        if not _matches(hint, value):
            raise InputTypeError(
                f"TrainConfig.{name} must be {_name(hint)}, got {type(value).__name__} {value!r}"
            )
        numbers_in = value if isinstance(value, (tuple, list)) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in numbers_in):
            raise InputError(f"TrainConfig.{name} must be finite, got {value!r}")
        if name in _RANGES and value is not None and not _RANGES[name][0](value):
            raise InputError(f"TrainConfig.{name} must be {_RANGES[name][1]}, got {value!r}")
