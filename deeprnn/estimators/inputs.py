"""From estimator inputs to sequences: batches for `fit`, class labels, features, texts, tokens."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted
from torch import Tensor

from deeprnn.data import SeriesScaler, Vocabulary, batches, validate_sequences
from deeprnn.errors import InputError, InputTypeError


def python_value(value: Any) -> Any:
    """NumPy scalars (from a GridSearchCV grid built with np.arange, say) as Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(python_value(v) for v in value)
    return value


class Loader:
    """Re-iterable mini-batches `(x, lengths, y)` over a list of sequences.

    Each pass draws `deeprnn.data.batches` afresh: shuffled (and bucketed by length, so a
    batch pads only to its own longest row) from `seed + epoch`, or in order.
    """

    def __init__(self, seqs, targets=None, batch_size=32, shuffle=False, seed=0, per_step=False):
        self.seqs, self.targets, self.per_step = seqs, targets, per_step
        self.batch_size, self.shuffle = python_value(batch_size), shuffle
        self.seed = python_value(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.seqs) // self.batch_size)

    def __iter__(self):
        return batches(
            self.seqs, self.targets, batch_size=self.batch_size, shuffle=self.shuffle,
            seed=self.seed + self.epoch, bucket=self.shuffle, per_step=self.per_step,
        )  # fmt: skip


def take(a, idx):
    """Rows `idx` of an array, or items of a list."""
    if a is None or isinstance(a, np.ndarray):
        return None if a is None else a[idx]
    return [a[i] for i in idx]


def label_list(y: Any, name: str = "y") -> list:
    """One hashable label per sequence, NumPy scalars as Python values."""
    if isinstance(y, Tensor):
        y = y.detach().cpu().numpy()
    if isinstance(y, str) or not hasattr(y, "__len__"):
        raise InputTypeError(f"{name} must be a sequence of labels, got {type(y).__name__}")
    if isinstance(y, np.ndarray) and y.ndim != 1:
        raise InputError(f"{name} must hold one label per sequence, shape (N,), got {y.shape}")
    labels = [v.item() if isinstance(v, np.generic) else v for v in list(y)]
    for i, v in enumerate(labels):
        try:
            hash(v)
        except TypeError:
            raise InputTypeError(
                f"{name}[{i}] = {v!r:.60} is not hashable; labels must be ints, strings, tuples..."
            ) from None
        if v is None or (isinstance(v, float) and v != v):
            raise InputError(f"{name}[{i}] is {v!r}, a missing label; drop or fill it first")
    return labels


def fit_labels(y: Any, n: int, name: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """classes_ (sorted when the labels can be sorted) and the class id of every label."""
    labels = label_list(y, name)
    if len(labels) != n:
        raise InputError(f"{name} has {len(labels)} labels but X has {n} sequences")
    distinct = list(dict.fromkeys(labels))
    try:
        distinct = sorted(distinct)
    except TypeError:  # mixed types keep their order of first appearance
        pass
    if len(distinct) < 2:
        raise InputError(f"{name} holds a single class {distinct!r}; a classifier needs two")
    if len({type(c) for c in distinct}) == 1 and isinstance(distinct[0], (bool, int, float, str)):
        classes = np.asarray(distinct)
    else:
        classes = np.empty(len(distinct), dtype=object)
        for i, c in enumerate(distinct):
            classes[i] = c
    index = {c: i for i, c in enumerate(distinct)}
    return classes, np.array([index[v] for v in labels], dtype=np.int64)


def encode_labels(classes: np.ndarray, y: Any, name: str = "y") -> np.ndarray:
    """Class ids of labels; labels unseen at fit time raise InputError naming them."""
    index = {c: i for i, c in enumerate(classes.tolist())}
    labels = label_list(y, name)
    unseen = list(dict.fromkeys(v for v in labels if v not in index))
    if unseen:
        raise InputError(
            f"{name} holds labels unseen at fit time: {unseen[:5]!r}; the estimator knows "
            f"{classes.tolist()[:10]!r}"
        )
    return np.array([index[v] for v in labels], dtype=np.int64)


def check_texts(X: Any, name: str = "X") -> list[str]:
    """A non-empty list of strings."""
    if isinstance(X, str):
        raise InputTypeError(f"{name} must be a list of strings, got one str; wrap it: [text]")
    if not hasattr(X, "__len__") or isinstance(X, dict):
        raise InputTypeError(f"{name} must be a list of strings, got {type(X).__name__}")
    texts = list(X)
    if not texts:
        raise InputError(f"{name} is empty; expected at least one text")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputTypeError(f"{name}[{i}] must be a str, got {type(t).__name__}")
    return texts


def encode_tokens(vocab: Vocabulary, token_lists, max_len: int | None = None) -> list[np.ndarray]:
    """Token ids (T_i,) per document, cut to `max_len`; a document with no tokens becomes
    one `<unk>`, so every document can be predicted."""
    if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int)
                                or max_len < 1):  # fmt: skip
        raise InputError(f"max_len must be None or an int >= 1, got {max_len!r}")
    return [
        np.asarray(vocab.encode(tokens[:max_len]) or [Vocabulary.unk_id], dtype=np.int64)
        for tokens in token_lists
    ]


def per_sequence_normalise(seq: np.ndarray) -> np.ndarray:
    """(T, F) z-normalised per feature by the sequence's own mean and std (a constant
    feature becomes 0), in float64."""
    seq = np.asarray(seq, dtype=np.float64)
    std = seq.std(axis=0)
    return (seq - seq.mean(axis=0)) / np.where(std > 1e-12, std, 1.0)


class FloatSequences:
    """Inputs as an array (N, T, F) or a list of arrays (T_i, F) / (T_i,); with
    `standardize`, each feature is scaled by the mean and std of the training steps."""

    def _encode_inputs(self, X: Any, fitting: bool) -> list[np.ndarray]:
        if not fitting:
            check_is_fitted(self, "model_")
        seqs = [s.reshape(len(s), -1) for s in validate_sequences(X, "X")]
        features = seqs[0].shape[1]
        if getattr(self, "per_sequence", False):
            seqs = [per_sequence_normalise(s) for s in seqs]
        if fitting:
            self.n_features_in_ = features
            scaler = SeriesScaler().fit(np.concatenate(seqs)) if self.standardize else None
            self.input_scaler_ = scaler
        elif features != self.n_features_in_:
            shape = np.shape(X) if isinstance(X, np.ndarray) else ()
            hint = ""
            if len(shape) == 2 and shape[1] == self.n_features_in_:  # one (T, F) sequence?
                hint = (
                    f"; a 2-D array {shape} is read as {shape[0]} sequences of {shape[1]} "
                    f"steps with 1 feature: if it is one sequence of {shape[0]} steps with "
                    f"{shape[1]} features, pass a list [x] for one sequence (or x[None])"
                )
            raise InputError(
                f"X has {features} features per step but the estimator was fitted on "
                f"{self.n_features_in_}{hint}"
            )
        if self.input_scaler_ is not None:
            seqs = [self.input_scaler_.transform(s) for s in seqs]
        big = max(float(np.abs(s).max()) for s in seqs)
        if big > float(np.finfo(np.float32).max):
            raise InputError(
                f"X holds values up to {big:.3g} (after scaling), beyond float32's range; "
                "rescale the features"
            )
        return [s.astype(np.float32) for s in seqs]

    def _input_spec(self) -> dict[str, Any]:
        return {"n_inputs": self.n_features_in_}
