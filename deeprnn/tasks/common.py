"""Pieces every task runner shares: the outcome record, test splits, estimator building."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deeprnn.config import DataConfig
from deeprnn.config_io import ConfigError, from_dict
from deeprnn.data.loaders import decode_error
from deeprnn.errors import InputError
from deeprnn.frontend import frontend_kwargs


@dataclass
class Outcome:
    """What a run reports: the model's test metrics, the baselines', pictures and notes."""

    metrics: dict[str, float]  # the model on the held-out test part
    baselines: dict[str, dict[str, float]]  # baseline name -> its metrics on the same part
    plots: list[Path] = field(default_factory=list)  # PNG files written
    notes: list[str] = field(default_factory=list)  # extra report lines (Markdown)


def test_count(data: DataConfig, n: int) -> int:
    """How many items (or steps) the test part holds: a fraction of n, or a count."""
    k = int(data.test_size) if data.test_size >= 1 else int(round(n * data.test_size))
    if not 1 <= k < n:
        raise InputError(
            f"data.test_size={data.test_size} leaves {k} of {n} items for testing; "
            "it must leave at least one item on each side"
        )
    return k


def estimator_for(cls: type, model: dict[str, Any], **fixed: Any):
    """Build estimator `cls` from the config's `model` section, typed and checked.

    Unknown keys and wrong types raise ConfigError naming `model.<key>`.
    """
    params = {**fixed, **model}
    if params.get("frontend") != "auto":
        frontend_kwargs(params.get("frontend"), "model.frontend")  # before any data is read
    try:
        return from_dict(cls, params, "model")
    except ConfigError:
        raise
    except TypeError as err:
        raise ConfigError(f"model: {err}") from err


def majority(y_train: np.ndarray, n: int) -> np.ndarray:
    """n copies of the most common training label: the majority-class baseline."""
    values, counts = np.unique(y_train, return_counts=True)
    return np.full(n, values[counts.argmax()])


def read_lines(path: Path, what: str) -> list[str]:
    """The non-empty lines of a UTF-8 text file, one input each; `what` names the use."""
    try:
        lines = [t for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]
    except UnicodeDecodeError as err:
        raise decode_error(path, "utf-8", err) from err
    if not lines:
        raise InputError(f"{path}: no non-empty lines to {what}")
    return lines
