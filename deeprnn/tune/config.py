"""`deeprnn tune CONFIG.yaml`: search a `deeprnn train` config's model arguments.

The config's training part (the test part is never looked at) is split into trials' training
and validation data; the config's `model:` section is the starting point. RUN_DIR gets
what `deeprnn.tune` writes (study.journal, leaderboard.csv / .png, tune.json) and
    best.yaml   the config with the best trial's arguments: `deeprnn train best.yaml`
                retrains that model on the same data, to the same test score (CPU)
    ensemble/   the top-k trials (--ensemble K) as one saved EnsembleClassifier / Regressor
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from deeprnn.config import RunConfig
from deeprnn.config_io import write_yaml
from deeprnn.errors import InputError
from deeprnn.estimators import SequenceClassifier, SequenceRegressor, TextClassifier
from deeprnn.tasks import estimator_for, evaluate_task
from deeprnn.train.checkpoint import atomic_write
from deeprnn.tune.search import TuneResult, tune

ESTIMATORS = {
    "sequence_classification": SequenceClassifier,
    "sequence_regression": SequenceRegressor,
    "text_classification": TextClassifier,
}


def _training_part(cfg: RunConfig):
    from deeprnn.tasks.classify import load_sequences, load_texts

    load = load_texts if cfg.task == "text_classification" else load_sequences
    X_train, y_train, _, _ = load(cfg)
    return X_train, y_train


def best_config(cfg: RunConfig, params: dict) -> RunConfig:
    """`cfg` with the model arguments of `params` (the run directory left to the user)."""
    return dataclasses.replace(cfg, model={**cfg.model, **params}, run_dir=None)


def tune_config(
    cfg: RunConfig,
    run_dir: Path,
    budget: str | float,
    space: dict | None = None,
    ensemble: int = 0,
    resume: bool = False,
    trials: int | None = None,
    verbose: int = 1,
) -> tuple[TuneResult, dict]:
    """Tune `cfg`'s model on its training part; returns (result, summary) where the
    summary holds the test metrics of the best model (and of the ensemble)."""
    from deeprnn.runs import resolved

    if cfg.task not in ESTIMATORS:
        raise InputError(
            f"deeprnn tune searches the tasks {list(ESTIMATORS)}; a {cfg.task} config is not "
            "supported yet: tune its model by hand with deeprnn train --set"
        )
    est = estimator_for(ESTIMATORS[cfg.task], cfg.model)
    X, y = _training_part(cfg)
    result = tune(est, X, y, budget, space=space, ensemble=ensemble, run_dir=run_dir,
                  seed=est.seed, resume=resume, trials=trials, verbose=verbose)  # fmt: skip
    write_yaml(resolved(best_config(cfg, result.best_params)), run_dir / "best.yaml")
    summary = {"best_params": result.best_params, "validation_score": result.best_score,
               "test": {"best": evaluate_task(cfg, result.best_estimator)}}  # fmt: skip
    if result.ensemble is not None:
        summary["test"]["ensemble"] = evaluate_task(cfg, result.ensemble)
    tune_json = run_dir / "tune.json"
    old = json.loads(tune_json.read_text(encoding="utf-8")) if tune_json.is_file() else {}
    atomic_write(tune_json, json.dumps({**old, **summary}, indent=1).encode("utf-8"))
    return result, summary
