"""SequenceRegressor: one real value (or K of them) per sequence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import RegressorMixin

from deeprnn.data import SeriesScaler
from deeprnn.errors import InputError, InputTypeError
from deeprnn.estimators.base import DataAwareEstimator
from deeprnn.estimators.defaults import DataShape
from deeprnn.estimators.inputs import FloatSequences


def check_targets(y: Any, n: int) -> np.ndarray:
    """Finite float targets (N,) or (N, K) as a float64 array."""
    try:
        a = np.asarray(y)
    except ValueError as err:
        raise InputError("y is ragged; expected an array (N,) or (N, K) of floats") from err
    if a.dtype.kind not in "biuf":
        raise InputTypeError(f"y holds {a.dtype} values; expected numbers")
    if a.ndim not in (1, 2):
        raise InputError(f"y must have shape (N,) or (N, K), got {a.shape}")
    if len(a) != n:
        raise InputError(f"y has {len(a)} rows but X has {n} sequences")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise InputError(f"y contains NaN or inf at row {int(np.argwhere(~np.isfinite(a))[0][0])}")
    return a


@dataclass(eq=False, repr=False, kw_only=True)
class SequenceRegressor(RegressorMixin, FloatSequences, DataAwareEstimator):
    """Predict real values from whole sequences of feature vectors.

    `fit(X, y)`: X an array (N, T, F) or a list of N arrays (T_i, F) or (T_i,); y floats
    (N,) or (N, K). Targets are standardised for training (each column by its training mean
    and std) and predictions mapped back, so `predict` returns the units of y, with the
    shape of y: (N,) or (N, K). `score` is R^2 (scikit-learn's `r2_score`, averaged
    uniformly over the K outputs).
    Arguments left as None / "auto" are chosen from the data (`defaults_` says what and why).
    Args (besides RNNEstimator's): pooling ("auto" | "last" | "mean" | "attention"),
    standardize (scale input features), per_sequence (z-normalise each sequence on its own
    first). Learned: model_, fold_models_, n_features_in_, input_scaler_, target_scaler_,
    n_outputs_, defaults_, history_.
    """

    pooling: str = "auto"  # "auto" (mean) | "last" | "mean" | "attention"
    standardize: bool = True  # scale features with their training mean and std
    per_sequence: bool = False  # z-normalise each sequence on its own first

    _learned = ("n_features_in_", "input_scaler_", "target_scaler_", "n_outputs_", "target_ndim_",
                "defaults_")  # fmt: skip

    def fit(self, X: Any, y: Any) -> SequenceRegressor:
        """Learn from sequences X and targets y; returns self."""
        self._check_params()
        seqs = self._encode_inputs(X, fitting=True)
        targets = check_targets(y, len(seqs))
        self.target_ndim_ = targets.ndim
        targets = targets.reshape(len(targets), -1)
        self.n_outputs_ = targets.shape[1]
        self.target_scaler_ = SeriesScaler().fit(targets)
        scaled = self.target_scaler_.transform(targets).astype(np.float32)
        self._choose_defaults(DataShape.of(seqs), frontend_ok=True, pooled=True)
        spec = {**self._input_spec(), "n_outputs": self.n_outputs_, "pooling": self._pooling(),
                "activation": None}  # fmt: skip
        self._fit_sequences(seqs, scaled, "regression", spec)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """(N,) or (N, K) predictions in the units of the training targets."""
        scaled = self._outputs(self._encode_inputs(X, fitting=False))
        out = self.target_scaler_.inverse_transform(scaled)
        return out[:, 0] if self.target_ndim_ == 1 else out

    def score(self, X: Any, y: Any, sample_weight=None) -> float:
        """R^2 of the predictions for X against y (finite targets, one row per sequence)."""
        from sklearn.metrics import r2_score

        pred = self.predict(X)
        truth = check_targets(y, len(pred)).reshape(pred.shape)
        return float(r2_score(truth, pred, sample_weight=sample_weight))
