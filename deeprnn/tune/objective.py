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
    """An unfitted copy of `est` with `params` set, silent."""
    return clone(est).set_params(**params, verbose=0)


class Objective:
    """`objective(trial) -> validation score` (higher is better) for `study.optimize`."""

    def __init__(self, est, space: dict, data: Data, deadline: float, optuna):
        self.est, self.space, self.data = est, space, data
        self.deadline = deadline
        self.optuna = optuna

    def _finished_any(self, study) -> bool:
        states = (self.optuna.trial.TrialState.COMPLETE,)
        return bool(study.get_trials(deepcopy=False, states=states))

    def __call__(self, trial) -> float:
        params = suggest(trial, self.space)
        est = trial_estimator(self.est, params)
        may_stop = self._finished_any(trial.study)
        d = self.data
        why: list[str] = []
        epochs = [0]

        def report(event: str, state: dict) -> None:
            if event != "epoch_end":
                return
            epochs[0] += 1
            est.model_ = state["model"]  # score the weights as they are now
            try:
                value = float(est.score(d.X_val, d.y_val))
            finally:
                del est.model_
            state["model"].train()
            trial.report(value if math.isfinite(value) else -math.inf, epochs[0])
            if trial.should_prune():
                why.append("pruner")
                state["stop"] = True
            elif may_stop and time.monotonic() > self.deadline:
                why.append(PRUNED_BY_BUDGET)
                state["stop"] = True

        start = time.monotonic()
        with extra_callbacks(report):
            est.fit(d.X_train, d.y_train)
        trial.set_user_attr("seconds", round(time.monotonic() - start, 3))
        trial.set_user_attr("epochs", epochs[0])
        if why:
            trial.set_user_attr("pruned", why[0])
            raise self.optuna.TrialPruned(f"stopped by the {why[0]} after {epochs[0]} epochs")
        score = float(est.score(d.X_val, d.y_val))
        return score if math.isfinite(score) else -math.inf
