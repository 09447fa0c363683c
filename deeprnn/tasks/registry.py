"""Task name -> runner, and the one entry point `run_task` the CLI calls."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from deeprnn.config import RunConfig
from deeprnn.errors import InputError
from deeprnn.tasks import classify, forecast, language, tagging, translation
from deeprnn.tasks.common import Outcome

Runner = Callable[[RunConfig, Path, dict], tuple[object, Outcome]]

TASK_RUNNERS: dict[str, Runner] = {
    "forecast": forecast.run,
    "sequence_classification": classify.run_sequences,
    "sequence_regression": classify.run_regression,
    "text_classification": classify.run_texts,
    "sequence_labelling": tagging.run_tagging,
    "char_lm": language.run,
    "translation": translation.run,
}

EVALUATORS = {
    "forecast": forecast.evaluate,
    "sequence_classification": classify.evaluate,
    "sequence_regression": classify.evaluate,
    "text_classification": classify.evaluate,
    "sequence_labelling": tagging.evaluate,
    "char_lm": language.evaluate,
    "translation": translation.evaluate,
}


def run_task(cfg: RunConfig, run_dir: Path, fixed: dict) -> tuple[object, Outcome]:
    """Fit the task's estimator on the configured data and score it against baselines."""
    return TASK_RUNNERS[cfg.task](cfg, run_dir, fixed)


def evaluate_task(cfg: RunConfig, est) -> dict[str, float]:
    """Metrics of a fitted estimator on the test part of the data `cfg` names."""
    return EVALUATORS[cfg.task](cfg, est)


# Baselines that `deeprnn evaluate --data` recomputes on other data (cheap ones; the other
# tasks' baselines are fitted models, scored by `deeprnn train` only).
BASELINE_EVALUATORS = {
    "forecast": forecast.evaluate_baselines,
    "char_lm": language.evaluate_baselines,
}


def predict_file(cfg: RunConfig, est, path: Path, column: str | None = None,
                 time_column: str | None = None) -> list[list]:  # fmt: skip
    """Prediction rows (a header first) for the inputs in a user file; a forecast's CSV
    column defaults to the one the run trained on (a panel's id and time columns too)."""
    if cfg.task == "forecast":
        return forecast.predict_file(est, path, column or cfg.data.column, time_column, cfg.data)
    if cfg.task == "char_lm":
        raise InputError("a language model does not predict files; use `deeprnn generate`")
    if cfg.task == "sequence_labelling":
        return tagging.predict_file(est, path)
    if cfg.task == "translation":
        return translation.predict_file(est, path)
    return classify.predict_file(est, path, cfg.task, cfg.data)
