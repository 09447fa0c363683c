"""Error types and the argument checks every public entry point shares.

Messages name the argument, what was received and what was expected, so a user sees the
cause before any deep torch error can surface.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor


class DeepRNNError(Exception):
    """Base class of deeprnn's own errors."""


class InputError(DeepRNNError, ValueError):
    """A value is wrong: shape, range, NaN / inf, unknown option."""


class InputTypeError(DeepRNNError, TypeError):
    """A value has the wrong type."""


def check_choice(name: str, value: Any, choices: Iterable[str]) -> None:
    """Raise if `value` is not one of `choices`."""
    choices = list(choices)
    if value not in choices:
        raise InputError(f"{name} must be one of {choices}, got {value!r}")


class NotFittedError(InputError, RuntimeError):
    """A method needs a fitted object (call `fit` first)."""


class TrainingError(DeepRNNError):
    """Training cannot go on: e.g. too many updates in a row with a non-finite loss."""


def all_finite(x: Tensor) -> bool:
    """Whether every value of x is finite (no NaN, no inf).

    A finite sum proves it at the cost of one reduction (any NaN or inf makes the sum
    non-finite); only a non-finite sum, which finite values can also give by overflowing,
    needs the element-wise check. Cheap enough for the per-sample `DeepRNN.step`.
    """
    return math.isfinite(x.sum().item()) or bool(torch.isfinite(x).all())


def check_sequence_batch(
    x: Any, name: str, features: int | None = None, dtype: torch.dtype | None = None
) -> Tensor:
    """Check a batch-first float tensor (B, T, F) with finite values; return it.

    `dtype`, when given, is the dtype of the weights x meets (the same is required).
    """
    if not isinstance(x, Tensor):
        raise InputTypeError(
            f"{name} must be a torch.Tensor (batch, time, features), got {type(x).__name__}"
        )
    if x.dim() != 3:
        raise InputError(
            f"{name} must have shape (batch, time, features), got {x.dim()} dimensions "
            f"{tuple(x.shape)}; add a batch axis with x.unsqueeze(0) or a feature axis with "
            "x.unsqueeze(-1)"
        )
    if not x.is_floating_point():
        raise InputTypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if dtype is not None and x.dtype != dtype:
        raise InputTypeError(
            f"{name} has dtype {x.dtype} but the model's weights are {dtype}; convert one of "
            f"them, e.g. {name}.to({dtype}) or model.to({x.dtype})"
        )
    if x.shape[1] == 0:
        raise InputError(
            f"{name} has 0 time steps (shape {tuple(x.shape)}); every sequence needs a step"
        )
    if features is not None and x.shape[-1] != features:
        raise InputError(
            f"{name} has {x.shape[-1]} features (last axis) but the model expects {features}"
        )
    if not all_finite(x):
        bad = (~torch.isfinite(x)).nonzero()[0].tolist()
        raise InputError(
            f"{name} contains NaN or inf, first at (batch, time, feature) = {tuple(bad)}"
        )
    return x


def check_lengths(lengths: Any, batch: int, time: int) -> Tensor | None:
    """Check per-row lengths: integers in [0, time], one per row; return an int64 CPU tensor."""
    if lengths is None:
        return None
    if not isinstance(lengths, Tensor):
        try:
            lengths = torch.as_tensor(lengths)
        except (TypeError, ValueError, RuntimeError) as err:
            raise InputTypeError(f"lengths must be a sequence of ints, got {lengths!r}") from err
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise InputTypeError(f"lengths must hold integers, got dtype {lengths.dtype}")
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise InputError(
            f"lengths must have shape ({batch},), one per row of x, got {tuple(lengths.shape)}"
        )
    lengths = lengths.to("cpu", torch.int64)
    if batch and (lengths.min() < 0 or lengths.max() > time):
        raise InputError(
            f"lengths must lie in [0, {time}] (the time axis of x), got min {int(lengths.min())} "
            f"and max {int(lengths.max())}"
        )
    return lengths
