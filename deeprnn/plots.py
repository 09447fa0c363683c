"""Plots as PNG files (matplotlib, Agg backend: no screen needed).

Each function draws one picture, saves it to `path` and returns the path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: runs on machines without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def training_curves(history: Mapping[str, Sequence[float]], path: str | Path) -> Path:
    """Loss (left) and every other per-epoch metric (right) against the epoch.

    `history` maps a metric name ("train_loss", "val_loss", "val_accuracy", ...) to one
    value per epoch; keys ending in "loss" go to the left panel.
    """
    series = {k: np.asarray(v, dtype=float) for k, v in history.items() if _numeric(v)}
    losses = {k: v for k, v in series.items() if k.endswith("loss")}
    others = {k: v for k, v in series.items() if not k.endswith("loss") and k != "epoch"}
    others = {k: v for k, v in others.items() if not k.endswith(("seconds", "lr", "grad_norm"))}
    fig, axes = plt.subplots(1, 2 if others else 1, figsize=(10 if others else 6, 4))
    axes = np.atleast_1d(axes)
    for name, values in losses.items():
        axes[0].plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=name)
    axes[0].set(xlabel="epoch", ylabel="loss", title="Loss")
    axes[0].legend()
    if others:
        for name, values in others.items():
            axes[1].plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=name)
        axes[1].set(xlabel="epoch", title="Metrics")
        axes[1].legend()
    return _save(fig, path)


def _numeric(values) -> bool:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return False
    return arr.ndim == 1 and arr.size > 0


def forecast(
    history: Sequence[float],
    actual: Sequence[float] | None,
    predicted: Sequence[float],
    path: str | Path,
    baseline: Sequence[float] | None = None,
    title: str = "Forecast",
) -> Path:
    """The series up to the split, then actual vs predicted after it (boundary marked)."""
    history = np.asarray(history, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    n = len(history)
    future = np.arange(n, n + len(predicted))
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(np.arange(n), history, color="0.3", label="train / history")
    if actual is not None:
        ax.plot(future[: len(actual)], np.asarray(actual, dtype=float), color="C0", label="actual")
    if baseline is not None:
        ax.plot(future, np.asarray(baseline, dtype=float), "--", color="C2", label="baseline")
    ax.plot(future, predicted, color="C3", label="deeprnn forecast")
    ax.axvline(n - 0.5, color="k", lw=0.8, ls=":")
    ax.set(xlabel="time step", title=title)
    ax.legend()
    return _save(fig, path)


def confusion_matrix(
    matrix: np.ndarray, labels: Sequence[str], path: str | Path, title: str = "Confusion matrix"
) -> Path:
    """A heat map of counts, true classes on rows, predictions on columns."""
    matrix = np.asarray(matrix)
    size = max(4.0, 0.5 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, [str(x) for x in labels], rotation=45, ha="right")
    ax.set_yticks(ticks, [str(x) for x in labels])
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center",
                color="white" if v > threshold else "black")  # fmt: skip
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return _save(fig, path)


def gradient_flow(flow, path: str | Path, title: str = "Gradient flow ||dL/dh_t||") -> Path:
    """A layer x time heat map of log10 ||dL/dh_t|| (left) and one curve per row (right).

    `flow` is a `deeprnn.diagnostics.GradientFlow`; rows are its (layer, direction) rows,
    time runs left to right. Zero norms (steps no gradient reaches) are left blank.
    """
    norms = np.asarray(flow.norms, dtype=float)
    logs = np.full(norms.shape, np.nan)
    np.log10(norms, out=logs, where=norms > 0)
    rows, time = norms.shape
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(12, max(3.5, 0.45 * rows + 2)), gridspec_kw={"width_ratios": [3, 2]}
    )
    image = left.imshow(np.ma.masked_invalid(logs), aspect="auto", cmap="viridis",
                        interpolation="nearest")  # fmt: skip
    left.set_yticks(np.arange(rows), list(flow.row_labels))
    left.set(xlabel="time step t", title=title)
    fig.colorbar(image, ax=left, label="log10 ||dL/dh_t||")
    for k, label in enumerate(flow.row_labels):
        right.plot(np.arange(time), np.where(norms[k] > 0, norms[k], np.nan), label=label)
    if np.any(norms > 0):
        right.set_yscale("log")
    right.set(xlabel="time step t", ylabel="||dL/dh_t||", title="Per row")
    right.legend(fontsize="small")
    return _save(fig, path)
