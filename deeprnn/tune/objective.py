"""One trial: fit a copy of the estimator with the trial's arguments, scored on the
validation part after every epoch (fed to Optuna's pruner) and at the end.

The pruner stops a trial whose per-epoch validation scores fall behind earlier trials'
at the same epoch; the wall clock stops a trial that runs past the budget's end (unless
no trial has finished yet, so a search always yields a model).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import clone

from deeprnn.train.loop import extra_callbacks
from deeprnn.tune.space import suggest

PRUNED_BY_BUDGET = "budget"  # the user attribute `pruned` of a trial the clock stopped


@dataclass
class Data:
    """The training part trials learn from and the validation part that scores them."""

    X_train: Any
    y_train: Any
    X_val: Any
    y_val: Any


def trial_estimator(est, params: dict[str, Any]):
    """An unfitted copy of `est` with `params` set, silent. A validation_fraction left to
    the data becomes 0: trials (and the refits of the best) train for the update budget
    the data-aware defaults give, scored on the tuner's own validation part, not by folds
    inside every trial."""
    extra = {}
    if est.get_params().get("validation_fraction", 0) is None:
        extra["validation_fraction"] = 0.0
    return clone(est).set_params(**{**extra, **params}, verbose=0)


class Objective:
    """`objective(trial) -> validation score` (higher is better) for `study.optimize`.

    With several folds a trial fits once per fold and scores their mean; the pruner reads
    the first fold's per-epoch scores, so a bad trial stops before the other folds run.
    """

    def __init__(self, est, space: dict, folds: list[Data], deadline: float, optuna,
                 keep: int = 1):  # fmt: skip
        self.est, self.space, self.folds = est, space, folds
        self.deadline = deadline
        self.optuna = optuna
        # the first fold's fitted estimator of the `keep` best finished trials, by number:
        # the members `tune` uses as they are when the budget left cannot pay for refits
        # (they share the first fold's training part, so its scaler and classes)
        self.keep, self.models, self._scores = keep, {}, {}  # _scores: of the kept models

    def _finished_any(self, study) -> bool:
        states = (self.optuna.trial.TrialState.COMPLETE,)
        return bool(study.get_trials(deepcopy=False, states=states))

    def __call__(self, trial) -> float:
        params = suggest(trial, self.space)
        may_stop = self._finished_any(trial.study)
        why: list[str] = []
        epochs = [0]
        start = time.monotonic()

        def watch(est, d: Data, first: bool):
            def report(event: str, state: dict) -> None:
                if event != "epoch_end":
                    return
                epochs[0] += 1
                if first:
                    est.model_ = state["model"]  # score the weights as they are now
                    try:
                        value = float(est.score(d.X_val, d.y_val))
                    finally:
                        del est.model_
                    state["model"].train()
                    trial.report(value if math.isfinite(value) else -math.inf, epochs[0])
                    if trial.should_prune():
                        why.append("pruner")
                if not why and may_stop and time.monotonic() > self.deadline:
                    why.append(PRUNED_BY_BUDGET)
                state["stop"] = bool(why)

            return report

        scores, first = [], None
        for i, d in enumerate(self.folds):
            est = trial_estimator(self.est, params)
            with extra_callbacks(watch(est, d, i == 0)):
                est.fit(d.X_train, d.y_train)
            if why:
                break
            scores.append(float(est.score(d.X_val, d.y_val)))
            if i == 0:
                first = est
        trial.set_user_attr("seconds", round(time.monotonic() - start, 3))
        trial.set_user_attr("epochs", epochs[0])
        if why:
            trial.set_user_attr("pruned", why[0])
            raise self.optuna.TrialPruned(f"stopped by the {why[0]} after {epochs[0]} epochs")
        score = float(np.mean(scores))
        score = score if math.isfinite(score) else -math.inf
        self._remember(trial.number, first, score)
        return score

    def _remember(self, number: int, est, score: float) -> None:
        self.models[number], self._scores[number] = est, score
        ranked = sorted(self.models, key=lambda n: (-self._scores[n], n))
        for n in ranked[self.keep :]:
            del self.models[n], self._scores[n]
