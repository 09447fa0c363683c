"""`deeprnn.tune`: search an estimator's arguments under a wall-clock budget, then refit.

    result = deeprnn.tune(SequenceClassifier(), X, y, budget="5m", ensemble=5)
    result.best_params, result.best_score     # the best trial's arguments and score
    result.best_estimator                     # refit on ALL of (X, y) with them
    result.ensemble                           # the top-5 trials refit, averaged
    result.leaderboard                        # one dict per trial, best first

Trials learn from the training part and are scored by the estimator's `score` (accuracy,
R^2) on the validation part (k-fold on small data: see `validation`); Optuna's TPE
sampler proposes the arguments and its median pruner stops trials whose per-epoch
validation scores fall behind (see `objective`). The first trial is the estimator as given,
with its data-aware defaults (`space.starting_point`): a known cost, and the score every
other trial has to beat.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin

from deeprnn.config_io import write_yaml
from deeprnn.data.splits import kfold, stratified_split
from deeprnn.errors import InputError
from deeprnn.estimators.ensemble import EnsembleClassifier, EnsembleRegressor
from deeprnn.estimators.inputs import take
from deeprnn.train.checkpoint import atomic_write
from deeprnn.train.progress import bar_enabled
from deeprnn.tune import leaderboard
from deeprnn.tune import space as spaces
from deeprnn.tune.budget import parse_budget
from deeprnn.tune.objective import Data, Objective, trial_estimator
from deeprnn.tune.storage import import_optuna, open_study

AUTO_FOLDS_BELOW = 100  # validation="auto": k-fold below this many items (a holdout is noisy)


@dataclass
class TuneResult:
    """What `tune` found. `ensemble` is None unless `ensemble >= 2` was asked for."""

    best_params: dict[str, Any]  # the searched arguments of the best trial
    best_score: float  # its validation score (the estimator's `score`)
    best_estimator: Any  # a fresh estimator with best_params, fitted on all the data
    leaderboard: list[dict]  # one row per trial, best first (see tune.leaderboard.rows)
    ensemble: Any = None  # EnsembleClassifier / EnsembleRegressor of the top trials
    run_dir: Path | None = None  # where the study, leaderboard and plot were written
    refitted: bool = True  # False: the members are the search's own models (see `refit`)
    study: Any = field(default=None, repr=False)  # the optuna.Study


def _folds(est, X, y, validation) -> list[Data]:
    """The trials' training and validation parts: a pair (X_val, y_val); a fraction held
    out; or k folds (an int k >= 2); "auto": 3 folds below 100 items, else 0.2 held out.
    Classifiers' splits are stratified where every class has enough members."""
    if isinstance(validation, tuple):
        if len(validation) != 2:
            raise InputError("validation: expected a fraction or a pair (X_val, y_val)")
        return [Data(X, y, *validation)]
    n = len(y)
    if validation == "auto":
        validation = 3 if n < AUTO_FOLDS_BELOW else 0.2
    labels = np.asarray(y) if isinstance(est, ClassifierMixin) else np.zeros(n)
    codes = np.unique(labels, return_inverse=True)[1].reshape(-1)
    if (
        isinstance(validation, int)
        and not isinstance(validation, bool)
        and 2 <= validation <= n // 2
    ):
        splits = kfold(n, validation, seed=0, y=codes)
    elif (
        isinstance(validation, float)
        and 0 < validation < 1
        and n - max(1, round(n * validation)) >= 2
    ):
        splits = [stratified_split(codes, max(1, round(n * validation)), seed=0)]
    else:
        raise InputError(
            f"validation must be 'auto', a fraction in (0, 1), a number of folds in [2, N/2] "
            f"or a pair (X_val, y_val), got {validation!r} for {n} items"
        )
    return [Data(take(X, tr), take(y, tr), take(X, va), take(y, va)) for tr, va in splits]


class _Progress:
    """A tqdm bar of trials on a terminal, else one line per trial (when verbose)."""

    def __init__(self, verbose: int, budget: float):
        from tqdm import tqdm

        self.verbose, self.start = verbose, time.monotonic()
        self.bar = tqdm(desc="tune", unit="trial", file=sys.stderr,
                        disable=not bar_enabled(verbose))  # fmt: skip
        self.budget = budget

    def __call__(self, study, trial) -> None:
        best = _best_value(study)
        value = trial.value if trial.state.name == "COMPLETE" else None
        if not self.bar.disable:
            self.bar.update(1)
            self.bar.set_postfix(best=f"{best:.4g}" if best is not None else "-")
        elif self.verbose:
            left = max(0.0, self.budget - (time.monotonic() - self.start))
            shown = f"{value:.4g}" if value is not None else trial.state.name.lower()
            best_text = "-" if best is None else f"{best:.4g}"
            print(f"tune: trial {trial.number} {shown} (best {best_text}, {left:.0f} s left) "
                  f"{trial.params}", file=sys.stderr, flush=True)  # fmt: skip

    def close(self) -> None:
        self.bar.close()


class RefitReserve:
    """Keeps the refits inside the budget. After every trial the search's end moves to
    start + budget - the refits' estimated seconds (for each of the `members` best trials:
    its seconds per fold x `scale`, the full data over a fold's training part; the best's
    again for members beyond the finished trials); the search stops once past it, and a
    trial running past it is stopped (`Objective.deadline`). One trial always finishes."""

    def __init__(self, objective: Objective, start: float, budget: float, members: int,
                 n_folds: int, scale: float):  # fmt: skip
        self.objective, self.start, self.budget = objective, start, budget
        self.members, self.n_folds, self.scale = members, n_folds, scale
        self.reserved = 0.0

    def __call__(self, study, trial) -> None:
        best = _top_trials(study, self.members)
        if not best:
            return
        self.reserved = refit_seconds(best, self.n_folds, self.scale, self.members)
        self.objective.deadline = self.start + self.budget - self.reserved
        if time.monotonic() >= self.objective.deadline:
            study.stop()


def _refit_scale(X: Any, folds: list[Data]) -> float:
    """How much longer a refit on all of X takes than a fit on a fold's training part."""
    part = float(np.mean([len(d.X_train) for d in folds]))
    return max(1.0, len(X) / part) if part else 1.0


def _best_value(study) -> float | None:
    try:
        return study.best_value
    except ValueError:  # no finished trial yet
        return None


def _top_trials(study, k: int) -> list:
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    done.sort(key=lambda t: (-t.value, t.number))
    return done[:k]


def refit_seconds(trials: list, n_folds: int, scale: float, members: int) -> float:
    """The predicted seconds of refitting `members` estimators: each of the best `trials`
    takes its seconds per fold x `scale`; members beyond them are seeds of the best."""
    per_fit = [float(t.user_attrs.get("seconds", 0.0)) / n_folds for t in trials]
    top = per_fit[:members] + [per_fit[0]] * max(0, members - len(per_fit))
    return scale * sum(top)


def tune(
    est,
    X: Any,
    y: Any,
    budget: str | float = "5m",
    space: dict | None = None,
    validation: str | float | int | tuple = "auto",
    ensemble: int = 0,
    run_dir: str | Path | None = None,
    seed: int = 0,
    resume: bool = False,
    trials: int | None = None,
    verbose: int = 1,
    refit: bool | str = "auto",
) -> TuneResult:
    """Search `est`'s arguments on (X, y) for `budget` of wall-clock time, then refit.

    Args:
        est: an unfitted deeprnn estimator with fit(X, y) / score(X, y) (SequenceClassifier,
            SequenceRegressor, TextClassifier...); its own arguments are the starting point.
        budget: seconds, or a text like "90s", "5m", "1h": the search AND the refits (the
            search ends early enough for the refits its trials' times predict).
        space: restricts or overrides the default `deeprnn.tune.space.SEARCH_SPACE`.
        validation: how trials are scored: "auto" (3-fold below 100 items, else 20 % held
            out), a fraction held out, a number of folds k (each trial fits k times and
            scores the mean), or a pair (X_val, y_val).
        ensemble: k >= 2 also refits the k best trials (k seeds of the best where fewer
            trials finished) into an EnsembleClassifier / EnsembleRegressor.
        run_dir: keeps the study (study.journal), leaderboard.csv, leaderboard.png,
            best_params.yaml and the saved ensemble there; None: in memory only.
        resume: continue the search in `run_dir` (its finished trials are kept).
        seed: seeds the sampler (each trial trains with the estimator's own seed).
        trials: at most this many trials in this call (None: as many as the budget allows).
        refit: True refits the best (and the ensemble's members) on ALL of (X, y); False
            uses the search's own fitted models of those trials (trained on the first
            fold's training part); "auto" refits when the refits' predicted time fits in the
            budget left, else uses the search's models (`TuneResult.refitted` says which).
    Raises InputError for a budget <= 0, ConfigError for an unknown search-space key.
    """
    seconds = parse_budget(budget)
    if isinstance(ensemble, bool) or not isinstance(ensemble, int) or ensemble < 0:
        raise InputError(f"ensemble must be an int >= 0 (members; 0 or 1: none), got {ensemble!r}")
    if trials is not None and (
        isinstance(trials, bool) or not isinstance(trials, int) or trials < 1
    ):
        raise InputError(f"trials must be None or an int >= 1, got {trials!r}")
    if refit not in (True, False, "auto"):
        raise InputError(f"refit must be True, False or 'auto', got {refit!r}")
    searched, start_params = spaces.starting_point(
        est, spaces.resolve(est, space), set(space or {})
    )
    folds = _folds(est, X, y, validation)
    optuna = import_optuna()
    run_dir = None if run_dir is None else Path(run_dir)
    study = open_study(optuna, run_dir, resume, seed, spaces.describe(searched))
    if not study.get_trials(deepcopy=False):
        study.enqueue_trial(start_params)
    start = time.monotonic()
    objective = Objective(est, searched, folds, start + seconds, optuna, max(1, ensemble))
    reserve = RefitReserve(objective, start, seconds, max(1, ensemble), len(folds),
                           _refit_scale(X, folds))  # fmt: skip
    progress = _Progress(verbose, seconds)
    try:
        study.optimize(objective, n_trials=trials, timeout=seconds,
                       callbacks=[reserve, progress], gc_after_trial=False)  # fmt: skip
    finally:
        progress.close()
        if run_dir is not None:  # also after an interrupt: the board shows what is done
            _write_board(study, searched, run_dir)
    best = _top_trials(study, max(1, ensemble))
    if not best:
        raise InputError(
            f"no trial finished within the budget of {seconds:g} s; raise the budget or "
            "lower the estimator's epochs"
        )
    top = [spaces.decode(searched, t.params) for t in best]
    need = refit_seconds(best, len(folds), _refit_scale(X, folds), max(1, ensemble))
    left = start + seconds - time.monotonic()
    kept = [objective.models.get(t.number) for t in best]
    enough = len(best) >= (2 if ensemble >= 2 else 1) and all(m is not None for m in kept)
    refitted = refit is True or (refit == "auto" and (need <= left or not enough))
    if refitted:
        members = [trial_estimator(est, p).fit(X, y) for p in top]
        while ensemble >= 2 and len(members) < ensemble:  # too few trials: seeds of the best
            p = {**top[0], "seed": est.seed + len(members)}
            members.append(trial_estimator(est, p).fit(X, y))
    elif not enough:
        why = ("fewer trials finished than the 2 an ensemble needs" if len(best) < 2
               else "some of them ran before a resume")  # fmt: skip
        raise InputError(f"refit=False needs the search's own models of the best trials, but "
                         f"{why}; use refit='auto' or True")  # fmt: skip
    else:
        members = kept
        if verbose:
            print(f"tune: {left:.0f} s of the budget left, the refits would take ~{need:.0f} s: "
                  f"the best trials' own models are used (trained on "
                  f"{len(folds[0].X_train)} of {len(y)} items)", file=sys.stderr)  # fmt: skip
    result = TuneResult(best_params=top[0], best_score=float(study.best_value),
                        best_estimator=members[0], leaderboard=leaderboard.rows(study, searched),
                        run_dir=run_dir, study=study, refitted=refitted)  # fmt: skip
    if ensemble >= 2:
        kind = EnsembleClassifier if isinstance(est, ClassifierMixin) else EnsembleRegressor
        result.ensemble = kind.from_fitted(members)
    if run_dir is not None:
        write_yaml({"estimator": type(est).__name__, "params": top[0],
                    "score": result.best_score}, run_dir / "best_params.yaml")  # fmt: skip
        if result.ensemble is not None:
            result.ensemble.save(run_dir / "ensemble")
    return result


def _write_board(study, searched: dict, run_dir: Path) -> None:
    board = leaderboard.rows(study, searched)
    leaderboard.write_csv(board, run_dir / "leaderboard.csv")
    if board:
        leaderboard.plot(board, run_dir / "leaderboard.png")
    summary = {
        "trials": len(board),
        "best_score": _best_value(study),
        "space": spaces.describe(searched),
    }
    atomic_write(run_dir / "tune.json", json.dumps(summary, indent=1).encode("utf-8"))
