"""What `deeprnn train` does for each task: load the data, fit the estimator, score it
against a simple baseline, and draw the pictures. One module per family of tasks."""

from deeprnn.tasks.common import Outcome, estimator_for
from deeprnn.tasks.registry import TASK_RUNNERS, evaluate_task, predict_file, run_task

__all__ = [
    "TASK_RUNNERS",
    "Outcome",
    "estimator_for",
    "evaluate_task",
    "predict_file",
    "run_task",
]
