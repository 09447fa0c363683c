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


# Panels of the training curves: metric families that share a unit share an axis.
FAMILIES = {
    "loss": ("loss",),
    "error (units of the target)": ("mae", "rmse", "mse"),
    "percentage error (%)": ("mape", "smape"),
    "score (0-1, higher is better)": ("accuracy", "f1", "f1_macro", "f1_micro", "precision",
                                      "recall", "auc"),
    "bits per character": ("bpc",),
    "perplexity": ("perplexity",),
}  # fmt: skip
# Per-epoch bookkeeping, not metrics: never drawn among them.
NOT_METRICS = ("epoch", "seconds", "lr", "grad_norm", "max_grad_norm", "skipped_steps")


def _family(name: str) -> str:
    base = name.removeprefix("val_").removeprefix("train_")
    if base.endswith("loss"):
        return "loss"
    for family, members in FAMILIES.items():
        if base in members:
            return family
    return base  # an unknown metric gets a panel of its own


def metric_panels(history: Mapping[str, Sequence[float]]) -> dict[str, dict[str, np.ndarray]]:
    """{panel title: {metric: values}} as `training_curves` draws them, loss first."""
    panels: dict[str, dict[str, np.ndarray]] = {}
    for name, values in history.items():
        if name in NOT_METRICS or name.endswith(("_count", "_steps")) or not _numeric(values):
            continue
        panels.setdefault(_family(name), {})[name] = np.asarray(values, dtype=float)
    return {"loss": panels.pop("loss"), **panels} if "loss" in panels else panels


def training_curves(history: Mapping[str, Sequence[float]], path: str | Path) -> Path:
    """One panel per metric family (loss; errors; percentage errors; scores in 0-1; ...)
    against the epoch, so metrics of different units never share an axis.

    `history` maps a metric name ("train_loss", "val_loss", "val_accuracy", ...) to one
    value per epoch; counters and bookkeeping (NOT_METRICS: lr, grad_norm, skipped_steps,
    seconds) are left out. Metrics are drawn as recorded: the forecaster records its
    validation errors in the series' units; the loss is on the scale the network trains on.
    """
    panels = metric_panels(history)
    n = max(1, len(panels))
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n + 1, 4), squeeze=False)
    for ax, (family, series) in zip(axes[0], panels.items()):
        for name, values in series.items():
            ax.plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=name)
        ax.set(xlabel="epoch", title=family[:1].upper() + family[1:])
        ax.legend()
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


def fan_chart(
    history: Sequence[float],
    quantiles: np.ndarray,
    levels: Sequence[float],
    path: str | Path,
    actual: Sequence[float] | None = None,
    title: str = "Forecast",
) -> Path:
    """The history, then nested bands between symmetric forecast quantiles (levels q and
    1 - q, darker inward) and the median line; quantiles (horizon, Q) at `levels` (Q,)."""
    history = np.asarray(history, dtype=float)
    q = np.asarray(quantiles, dtype=float)
    levels = np.asarray(levels, dtype=float)
    n = len(history)
    future = np.arange(n, n + len(q))
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(np.arange(n), history, color="0.3", label="history")
    order = np.argsort(levels)
    levels, q = levels[order], q[:, order]
    pairs = [(i, len(levels) - 1 - i) for i in range(len(levels) // 2)]
    for k, (lo, hi) in enumerate(pairs):
        width = levels[hi] - levels[lo]
        alpha = 0.15 + 0.5 * k / max(len(pairs), 1)
        ax.fill_between(future, q[:, lo], q[:, hi], color="C3", alpha=alpha, lw=0,
                        label=f"{width:.0%} interval")  # fmt: skip
    mid = np.flatnonzero(np.isclose(levels, 0.5))
    if len(mid):
        ax.plot(future, q[:, mid[0]], color="C3", label="median")
    if actual is not None:
        ax.plot(future[: len(actual)], np.asarray(actual, dtype=float), color="C0", label="actual")
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


def attention(weights: np.ndarray, source: Sequence[str], target: Sequence[str],
              path: str | Path, title: str = "Attention") -> Path:  # fmt: skip
    """A heat map of attention weights (target steps x source steps): which source tokens
    each output token read. `target` may have one token fewer than the rows (the </s> row)."""
    weights = np.asarray(weights, dtype=float)
    rows = [*target, "</s>"][: weights.shape[0]]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(source) + 2),
                                    max(3.0, 0.3 * len(rows) + 1.5)))  # fmt: skip
    ax.imshow(weights[:, : len(source)], cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(np.arange(len(source)), [repr(t)[1:-1] or " " for t in source])
    ax.set_yticks(np.arange(len(rows)), [t if t.strip() else repr(t) for t in rows])
    ax.set(xlabel="source", ylabel="translation", title=title)
    return _save(fig, path)
