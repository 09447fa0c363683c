"""Ensembles of fitted estimators: EnsembleClassifier (probabilities averaged) and
EnsembleRegressor (predictions averaged).

    ens = EnsembleClassifier(estimators=[SequenceClassifier(cell="gru"), ...]).fit(X, y)
    ens.save("ens")                 # ens/ensemble.json + ens/members/0, 1, ... (no pickle)
    EnsembleClassifier.load("ens")
    ens.export("ens.onnx")          # ONE network that runs every member and averages them

`deeprnn.tune(..., ensemble=k)` builds one from the top-k trials. Averaging in probability
space keeps a confident member from outvoting the others on the logits' scale.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted

from deeprnn.errors import InputError
from deeprnn.estimators.base import RNNEstimator
from deeprnn.train import CheckpointError
from deeprnn.train.checkpoint import atomic_write, read_meta

FORMAT = "deeprnn-ensemble"
VERSION = 1
META = "ensemble.json"
MEMBERS = "members"
# Learned attributes that turn raw inputs into network inputs: one exported graph serves
# every member only when they agree on them.
_PREPROCESSING = ("input_scaler_", "vocab_", "n_features_in_", "target_scaler_")


def _as_dict(value: Any) -> Any:
    return value.to_dict() if hasattr(value, "to_dict") else value


@dataclass(eq=False, repr=False, kw_only=True)
class _Ensemble(BaseEstimator):
    """What both ensembles share: fit clones of `estimators`, save / load / export."""

    estimators: list = field(default_factory=list)  # the members' (unfitted) estimators

    def _check_members(self, members: list) -> None:
        if not members:
            raise InputError("an ensemble needs at least one estimator; got an empty list")
        for i, m in enumerate(members):
            if not isinstance(m, RNNEstimator):
                raise InputError(
                    f"estimators[{i}] is a {type(m).__name__}, not a deeprnn estimator"
                )

    def fit(self, X: Any, y: Any):
        """Fit a clone of every estimator on (X, y); returns self. Sets estimators_."""
        self._check_members(self.estimators)
        self._set_members([clone(e).fit(X, y) for e in self.estimators])
        return self

    @classmethod
    def from_fitted(cls, members: list):
        """An ensemble of estimators that are already fitted (as `fit` would leave it)."""
        ens = cls(estimators=[clone(m) for m in members])
        ens._check_members(members)
        ens._set_members(list(members))
        return ens

    def _set_members(self, members: list) -> None:
        for i, m in enumerate(members):
            check_is_fitted(m, "model_")
            if type(m) is not type(members[0]):
                raise InputError(
                    f"estimators[{i}] is a {type(m).__name__} but estimators[0] a "
                    f"{type(members[0]).__name__}; an ensemble holds one kind"
                )
        self.estimators_ = members

    def _mean(self, method: str, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimators_")
        return np.mean([getattr(m, method)(X) for m in self.estimators_], axis=0)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted ensemble to the directory `path`: `ensemble.json` and one saved
        estimator per member under `members/` (safetensors + JSON each)."""
        check_is_fitted(self, "estimators_")
        path = Path(path)
        for i, m in enumerate(self.estimators_):
            m.save(path / MEMBERS / str(i))
        meta = {"format": FORMAT, "version": VERSION, "class": type(self).__name__,
                "members": len(self.estimators_)}  # fmt: skip
        atomic_write(path / META, json.dumps(meta, indent=1).encode("utf-8"))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None):
        """Restore an ensemble written by `save` (called on `EnsembleClassifier` or
        `EnsembleRegressor`; `device` overrides the members' saved one)."""
        path = Path(path)
        if not (path / META).is_file():
            raise CheckpointError(f"{path}: not a saved deeprnn ensemble (it has no {META})")
        meta = read_meta(path / META, "ensemble", FORMAT, VERSION)
        kinds = {c.__name__: c for c in (EnsembleClassifier, EnsembleRegressor)}
        klass = kinds.get(meta.get("class"))
        if klass is None or not issubclass(klass, cls):
            raise CheckpointError(
                f"{path / META}: holds a {meta.get('class')}, not a {cls.__name__}"
            )
        n = meta.get("members")
        if not isinstance(n, int) or n < 1:
            raise CheckpointError(f"{path / META}: members must be a count >= 1, got {n!r}")
        members = [RNNEstimator.load(path / MEMBERS / str(i), device) for i in range(n)]
        return klass.from_fitted(members)

    def export(self, path: str | os.PathLike, format: str = "onnx", lengths: bool = True) -> Path:
        """Write ONE network that runs every member and averages their outputs (the
        probabilities of a classifier, the scaled predictions of a regressor) as "onnx" or
        "torchscript". Members must share their input preprocessing (scaler, vocabulary),
        as members fitted on the same data do; it is not part of the graph."""
        from deeprnn.export import export_ensemble

        check_is_fitted(self, "estimators_")
        first = self.estimators_[0]
        for i, m in enumerate(self.estimators_[1:], 1):
            for key in _PREPROCESSING:
                if _as_dict(getattr(m, key, None)) != _as_dict(getattr(first, key, None)):
                    raise InputError(
                        f"member {i} has another {key} than member 0, so one graph cannot "
                        "serve both; fit the members on the same data"
                    )
        return export_ensemble([m.model_ for m in self.estimators_], path, format, lengths)


@dataclass(eq=False, repr=False, kw_only=True)
class EnsembleClassifier(ClassifierMixin, _Ensemble):
    """Averages its members' class probabilities; `predict` takes the most probable class,
    `score` is the accuracy. Members must share `classes_`."""

    def _set_members(self, members: list) -> None:
        super()._set_members(members)
        for i, m in enumerate(members):
            if list(m.classes_) != list(members[0].classes_):
                raise InputError(f"estimators[{i}] knows other classes than estimators[0]")
        self.classes_ = members[0].classes_

    def predict_proba(self, X: Any) -> np.ndarray:
        """(N, K) mean of the members' probabilities, columns ordered as `classes_`."""
        return self._mean("predict_proba", X)

    def predict(self, X: Any) -> np.ndarray:
        """(N,) the label with the highest mean probability."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


@dataclass(eq=False, repr=False, kw_only=True)
class EnsembleRegressor(RegressorMixin, _Ensemble):
    """Averages its members' predictions; `score` is R^2."""

    def predict(self, X: Any) -> np.ndarray:
        """The mean of the members' predictions, shaped as theirs."""
        return self._mean("predict", X)
