"""Classification of sequences and of texts (and regression of sequences), each scored
against the majority class (or the mean) and a logistic / linear model on simple features."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from deeprnn import plots
from deeprnn.config import RunConfig
from deeprnn.data import load_dataset, load_long_csv, load_numpy, load_text_folder
from deeprnn.data.loaders import decode_error
from deeprnn.data.splits import stratified_split
from deeprnn.errors import InputError
from deeprnn.estimators import SequenceClassifier, SequenceRegressor, TextClassifier
from deeprnn.tasks.common import (
    Outcome,
    estimator_for,
    majority,
    read_lines,
    test_count,
)
from deeprnn.train import metrics


def _split_given(ds) -> bool:
    return "X_test" in ds and "X_train" in ds


def load_sequences(cfg: RunConfig):
    """(X_train, y_train, X_test, y_test): lists of (T_i, F) arrays and label arrays."""
    data = cfg.data
    if data.dataset is not None:
        ds = load_dataset(data.dataset)
        if not _split_given(ds):
            raise InputError(f"dataset {data.dataset!r} holds no labelled sequences")
        if ds["task"] == "sequence-labelling":  # its y holds one label array per sequence
            raise InputError(
                f"dataset {data.dataset!r} labels every step, not every sequence; train it "
                "with task: sequence_labelling"
            )
        return (
            list(ds["X_train"]),
            np.asarray(ds["y_train"]),
            list(ds["X_test"]),
            np.asarray(ds["y_test"]),
        )
    if Path(data.path).suffix.lower() == ".csv":
        X, y = _long_csv(data)
    else:
        X, y = load_numpy(Path(data.path))
    if y is None:
        raise InputError(f"{data.path}: the archive needs a 'y' array of labels or targets")
    X = list(X) if not isinstance(X, list) else X
    train, test = stratified_split(np.asarray(y), test_count(data, len(y)))
    return [X[i] for i in train], np.asarray(y)[train], [X[i] for i in test], np.asarray(y)[test]


def _long_csv(data, predicting: bool = False):
    """(sequences, labels or None) of a long-format CSV: one row per step of a sequence."""
    if data.id_column is None or (data.target is None and not predicting):
        raise InputError(
            f"data.path {data.path}: a CSV of sequences is read in long format (one row per "
            "step); set data.id_column (the sequence id) and data.target (the label), and "
            "data.step_column (the step order) when the rows are not in order, e.g. "
            "id_column: seq_id, step_column: step, target: label"
        )
    target, ignore = (
        (None, [data.target] if data.target else []) if predicting else (data.target, [])
    )
    X, y, _ = load_long_csv(data.path, data.id_column, data.step_column, target,
                            data.features, ignore, encoding=data.encoding)  # fmt: skip
    return X, y


def load_texts(cfg: RunConfig):
    """(texts_train, y_train, texts_test, y_test) from a dataset, a folder or a CSV file."""
    data = cfg.data
    if data.dataset is not None:
        ds = load_dataset(data.dataset)
        if "texts" not in ds:
            raise InputError(f"dataset {data.dataset!r} holds no labelled texts")
        names = ds.get("label_names")
        texts, labels = list(ds["texts"]), np.asarray(ds["labels"])
        if names is not None:
            labels = np.asarray([names[i] for i in labels])
    else:
        path = Path(data.path)
        if path.is_dir():
            texts, labels = load_text_folder(path, encoding=data.encoding)
        elif path.suffix.lower() == ".csv":
            texts, labels = _texts_from_csv(path, data.column, data.target, data.encoding)
        else:
            raise InputError(f"data.path {path}: expected a folder (one per label) or a .csv")
        labels = np.asarray(labels)
    train, test = stratified_split(labels, test_count(data, len(labels)))
    return [texts[i] for i in train], labels[train], [texts[i] for i in test], labels[test]


def _texts_from_csv(path: Path, column: str | None, target: str | None, encoding: str):
    import csv

    if column is None or target is None:
        raise InputError("data.column (the text) and data.target (the label) name CSV columns")
    try:
        with open(path, newline="", encoding=encoding) as f:
            rows = list(csv.DictReader(f))
    except UnicodeDecodeError as err:
        raise decode_error(path, encoding, err) from err
    if not rows:
        raise InputError(f"{path}: no rows")
    for name in (column, target):
        if name not in rows[0]:
            raise InputError(f"{path}: no column {name!r}; columns are {list(rows[0])}")
    return [r[column] for r in rows], [r[target] for r in rows]


def _summary_features(X: list[np.ndarray]) -> np.ndarray:
    """Per-sequence mean, std, first and last step and length: the features a linear model gets."""
    rows = []
    for x in X:
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        rows.append(np.concatenate([x.mean(0), x.std(0), x[0], x[-1], [len(x)]]))
    return np.asarray(rows)


def _padded_steps(X: list[np.ndarray], steps: int) -> np.ndarray:
    """Each sequence's first `steps` steps, zero-padded and flattened: the raw inputs as one
    row, for a linear model that sees every step without any feature engineering."""
    first = np.asarray(X[0]).reshape(len(X[0]), -1)
    out = np.zeros((len(X), steps, first.shape[1]))
    for i, x in enumerate(X):
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)[:steps]
        out[i, : len(x)] = x
    return out.reshape(len(X), -1)


def _class_scores(truth, pred) -> dict[str, float]:
    return {
        "accuracy": metrics.accuracy(truth, pred),
        "f1_macro": metrics.f1(truth, pred, "macro"),
        "f1_micro": metrics.f1(truth, pred, "micro"),
    }


def run_sequences(cfg: RunConfig, run_dir: Path, fixed: dict):
    """Sequence classification on (T_i, F) float sequences."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X_tr, y_tr, X_te, y_te = load_sequences(cfg)
    est = estimator_for(SequenceClassifier, cfg.model, **fixed).fit(X_tr, y_tr)
    pred = est.predict(X_te)
    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    linear.fit(_summary_features(X_tr), y_tr)
    steps = max(len(x) for x in X_tr)  # longer test sequences are cut to this
    raw = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    raw.fit(_padded_steps(X_tr, steps), y_tr)
    outcome = _classification_outcome(
        y_te, pred, est.classes_, run_dir,
        {"majority_class": majority(y_tr, len(y_te)),
         "logistic_regression": linear.predict(_summary_features(X_te)),
         "logistic_regression_steps": raw.predict(_padded_steps(X_te, steps))},
    )  # fmt: skip
    outcome.notes += [
        "Baselines: logistic_regression reads each sequence's mean, std, first and last step "
        f"and length; logistic_regression_steps reads the raw steps, zero-padded to {steps}.",
        "",
    ]
    return est, outcome


def run_texts(cfg: RunConfig, run_dir: Path, fixed: dict):
    """Text classification, baseline: logistic regression on TF-IDF word counts."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    X_tr, y_tr, X_te, y_te = load_texts(cfg)
    est = estimator_for(TextClassifier, cfg.model, **fixed).fit(X_tr, y_tr)
    pred = est.predict(X_te)
    linear = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=2000)).fit(X_tr, y_tr)
    return est, _classification_outcome(
        y_te, pred, est.classes_, run_dir,
        {"majority_class": majority(y_tr, len(y_te)), "logistic_regression": linear.predict(X_te)},
    )  # fmt: skip


def _classification_outcome(truth, pred, classes, run_dir: Path, baselines: dict) -> Outcome:
    codes = {c: i for i, c in enumerate(classes)}
    matrix = metrics.confusion_matrix(
        [codes[t] for t in truth], [codes[p] for p in pred], num_classes=len(classes)
    )
    picture = plots.confusion_matrix(matrix, [str(c) for c in classes],
                                     run_dir / "plots" / "confusion_matrix.png")  # fmt: skip
    return Outcome(
        metrics=_class_scores(truth, pred),
        baselines={name: _class_scores(truth, p) for name, p in baselines.items()},
        plots=[picture],
    )


def run_regression(cfg: RunConfig, run_dir: Path, fixed: dict):
    """Sequence regression, baselines: the training mean and ridge on summary features."""
    from sklearn.linear_model import RidgeCV

    X_tr, y_tr, X_te, y_te = load_sequences(cfg)
    y_tr, y_te = y_tr.astype(np.float64), y_te.astype(np.float64)
    est = estimator_for(SequenceRegressor, cfg.model, **fixed).fit(X_tr, y_tr)
    pred = np.asarray(est.predict(X_te)).reshape(y_te.shape)
    ridge = RidgeCV().fit(_summary_features(X_tr), y_tr)
    base = {
        "mean": np.full_like(y_te, y_tr.mean()),
        "ridge": ridge.predict(_summary_features(X_te)),
    }
    return est, Outcome(
        metrics=metrics.regression_metrics(y_te, pred),
        baselines={k: metrics.regression_metrics(y_te, v) for k, v in base.items()},
    )


def evaluate(cfg: RunConfig, est) -> dict[str, float]:
    """Metrics of a fitted estimator on the test part of the configured data."""
    if cfg.task == "text_classification":
        _, _, X_te, y_te = load_texts(cfg)
        return _class_scores(y_te, est.predict(X_te))
    _, _, X_te, y_te = load_sequences(cfg)
    if cfg.task == "sequence_regression":
        y_te = y_te.astype(np.float64)
        return metrics.regression_metrics(y_te, np.asarray(est.predict(X_te)).reshape(y_te.shape))
    return _class_scores(y_te, est.predict(X_te))


def predict_file(est, path: Path, task: str, data=None) -> list[list]:
    """Rows (index, prediction) for every sequence (.npz / .npy, or a long-format .csv read
    with the run's `data` columns) or text line (.txt)."""
    if task == "text_classification":
        pred = est.predict(read_lines(path, "classify"))
    elif path.suffix.lower() == ".csv" and data is not None:
        X, _ = _long_csv(dataclasses.replace(data, dataset=None, path=str(path)), True)
        pred = est.predict(X)
    else:
        X, _ = load_numpy(path, y_key=None)
        pred = est.predict(list(X))
    rows = [["index", "prediction"]]
    for i, p in enumerate(pred):
        rows.append([i, p.tolist() if isinstance(p, np.ndarray) else p])
    return rows
