"""Sequence labelling: one label per step, scored over every step of the test sequences
against the majority label and a logistic regression on a window of raw steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deeprnn import plots
from deeprnn.config import DataConfig, RunConfig
from deeprnn.data import load_dataset, load_numpy
from deeprnn.errors import InputError
from deeprnn.estimators import SequenceTagger
from deeprnn.tasks.common import Outcome, estimator_for, majority, test_count
from deeprnn.train import metrics

WINDOW = 3  # the window baseline reads each step and this many steps either side

Split = tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray]]


def _per_step(X: list, y: list) -> bool:
    """True when y holds one label array per sequence, as long as that sequence."""
    return len(X) == len(y) and all(np.ndim(t) == 1 and len(t) == len(x) for x, t in zip(X, y))


def _from_dataset(name: str) -> tuple[Split, list[str] | None]:
    ds = load_dataset(name)
    if "X_train" not in ds or "X_test" not in ds:
        raise InputError(f"dataset {name!r} holds no labelled sequences")
    parts = (list(ds["X_train"]), list(ds["y_train"]), list(ds["X_test"]), list(ds["y_test"]))
    if not (_per_step(*parts[:2]) and _per_step(*parts[2:])):
        raise InputError(
            f"dataset {name!r} holds one label per sequence, not one per step; train it with "
            "task: sequence_classification (`deeprnn datasets` lists the sequence-labelling sets)"
        )
    return parts, ds.get("label_names")


def _from_numpy(path: Path, data: DataConfig) -> Split:
    """Equal-length sequences from a .npz: X (N, T) or (N, T, F) and y (N, T)."""
    X, y = load_numpy(path)
    if y is None:
        raise InputError(f"{path}: the archive needs a 'y' array of per-step labels (N, T)")
    if X.ndim not in (2, 3) or y.shape != X.shape[:2]:
        raise InputError(
            f"{path}: sequence labelling needs X (N, T) or (N, T, F) and y (N, T), one label "
            f"per step; got X {X.shape} and y {y.shape}"
        )
    # Labels belong to steps, so there is nothing to stratify on: a fixed shuffle instead.
    order = np.random.default_rng(0).permutation(len(X))
    n_test = test_count(data, len(X))
    train, test = np.sort(order[n_test:]), np.sort(order[:n_test])
    return [X[i] for i in train], [y[i] for i in train], [X[i] for i in test], [y[i] for i in test]


def load_tagged(cfg: RunConfig) -> tuple[Split, list[str] | None]:
    """((X_train, y_train, X_test, y_test), label names or None): per-step labelled data."""
    data = cfg.data
    if data.dataset is not None:
        return _from_dataset(data.dataset)
    return _from_numpy(Path(data.path), data), None


def window_features(X: list[np.ndarray], k: int = WINDOW) -> np.ndarray:
    """One row per step of every sequence: its features and those of the k steps on either
    side, zero-padded at the ends, so a per-step linear model sees some local shape."""
    rows = []
    for x in X:
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        padded = np.pad(x, ((k, k), (0, 0)))
        rows.append(np.concatenate([padded[j : j + len(x)] for j in range(2 * k + 1)], axis=1))
    return np.concatenate(rows)


def _flat(y: list) -> np.ndarray:
    return np.concatenate([np.asarray(t) for t in y])


def _scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": metrics.accuracy(truth, pred),
        "f1_macro": metrics.f1(truth, pred, "macro"),
    }


def _window_regression(X_tr: list, y_tr: list, X_te: list) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    linear.fit(window_features(X_tr), _flat(y_tr))
    return linear.predict(window_features(X_te))


def _display_names(labels: np.ndarray, names: list[str] | None) -> list[str]:
    """Label names for the plot: the dataset's names for integer codes, else the labels."""
    coded = labels.dtype.kind in "iu" and np.all((labels >= 0) & (labels < len(names or [])))
    if names is not None and coded:
        return [names[int(c)] for c in labels]
    return [str(c) for c in labels]


def _confusion_plot(truth, pred, names: list[str] | None, run_dir: Path) -> Path:
    labels = np.unique(np.concatenate([truth, pred]))
    matrix = metrics.confusion_matrix(
        np.searchsorted(labels, truth), np.searchsorted(labels, pred), num_classes=len(labels)
    )
    return plots.confusion_matrix(matrix, _display_names(labels, names),
                                  run_dir / "plots" / "confusion_matrix.png",
                                  title="Confusion matrix (every test step)")  # fmt: skip


def run_tagging(cfg: RunConfig, run_dir: Path, fixed: dict):
    """Sequence labelling on (T_i, F) float sequences with one label per step."""
    (X_tr, y_tr, X_te, y_te), names = load_tagged(cfg)
    est = estimator_for(SequenceTagger, cfg.model, **fixed).fit(X_tr, y_tr)
    truth, pred = _flat(y_te), _flat(est.predict(X_te))
    baselines = {
        "majority_label": majority(_flat(y_tr), len(truth)),
        "logistic_regression_window": _window_regression(X_tr, y_tr, X_te),
    }
    outcome = Outcome(
        metrics=_scores(truth, pred),
        baselines={name: _scores(truth, p) for name, p in baselines.items()},
        plots=[_confusion_plot(truth, pred, names, run_dir)],
    )
    outcome.notes += [
        f"Scored over all {len(truth)} steps of the {len(X_te)} test sequences. Baselines: "
        "majority_label predicts the most common training label at every step; "
        f"logistic_regression_window reads each step and {WINDOW} steps either side "
        "(zero-padded at the ends).",
        "",
    ]
    return est, outcome


def evaluate(cfg: RunConfig, est) -> dict[str, float]:
    """Per-step metrics of a fitted tagger on the test part of the configured data."""
    (_, _, X_te, y_te), _ = load_tagged(cfg)
    return _scores(_flat(y_te), _flat(est.predict(X_te)))


def predict_file(est, path: Path) -> list[list]:
    """Rows (index, step, prediction), one per step of every sequence in a .npz / .npy
    (X (N, T) or (N, T, F))."""
    X, _ = load_numpy(path, y_key=None)
    if X.ndim not in (2, 3):
        raise InputError(f"{path}: expected X (N, T) or (N, T, F) sequences, got {X.shape}")
    rows = [["index", "step", "prediction"]]
    for i, labels in enumerate(est.predict(list(X))):
        rows += [[i, t, label.item() if hasattr(label, "item") else label]
                 for t, label in enumerate(labels)]  # fmt: skip
    return rows
