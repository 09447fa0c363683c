"""Evaluation metrics: plain functions on NumPy arrays, and an accumulator over batches.

Classification averages follow scikit-learn ("macro" averages over the labels present in
y_true or y_pred; a class never predicted scores precision 0). MAPE and sMAPE are percent:
    MAPE  = 100 / n * sum |y - p| / max(|y|, eps)
    sMAPE = 100 / n * sum 2 |y - p| / (|y| + |p|)     (a term with y = p = 0 counts 0)
Perplexity = exp(mean NLL in nats); bits per character = mean NLL / ln 2.
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import torch
from torch import Tensor

from deeprnn.train.losses import align_targets, step_mask, target_mask, task_loss

_EPS = np.finfo(np.float64).eps


def _sk():
    """sklearn.metrics, imported on first use: it costs seconds, and `import deeprnn` must not."""
    return importlib.import_module("sklearn.metrics")


def accuracy(y_true, y_pred) -> float:
    return float(_sk().accuracy_score(y_true, y_pred))


def precision(y_true, y_pred, average: str = "macro") -> float:
    return float(_sk().precision_score(y_true, y_pred, average=average, zero_division=0))


def recall(y_true, y_pred, average: str = "macro") -> float:
    return float(_sk().recall_score(y_true, y_pred, average=average, zero_division=0))


def f1(y_true, y_pred, average: str = "macro") -> float:
    return float(_sk().f1_score(y_true, y_pred, average=average, zero_division=0))


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """(K, K) counts: row = true class, column = predicted class."""
    labels = None if num_classes is None else list(range(num_classes))
    return _sk().confusion_matrix(y_true, y_pred, labels=labels)


def mse(y_true, y_pred) -> float:
    return float(_sk().mean_squared_error(y_true, y_pred))


def rmse(y_true, y_pred) -> float:
    return math.sqrt(mse(y_true, y_pred))


def mae(y_true, y_pred) -> float:
    return float(_sk().mean_absolute_error(y_true, y_pred))


def mape(y_true, y_pred) -> float:
    y, p = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    return float(100.0 * np.mean(np.abs(y - p) / np.maximum(np.abs(y), _EPS)))


def smape(y_true, y_pred) -> float:
    y, p = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    denom = np.abs(y) + np.abs(p)
    terms = np.where(denom == 0, 0.0, 2 * np.abs(y - p) / np.where(denom == 0, 1.0, denom))
    return float(100.0 * np.mean(terms))


def perplexity(mean_nll: float) -> float:
    return math.exp(mean_nll)


def bits_per_character(mean_nll: float) -> float:
    return mean_nll / math.log(2)


def classification_metrics(y_true, y_pred) -> dict[str, float]:
    return {
        "accuracy": accuracy(y_true, y_pred),
        "f1_macro": f1(y_true, y_pred, "macro"),
        "f1_micro": f1(y_true, y_pred, "micro"),
        "precision": precision(y_true, y_pred, "macro"),
        "recall": recall(y_true, y_pred, "macro"),
    }


def binary_metrics(y_true, prob, threshold: float = 0.5) -> dict[str, float]:
    """Every output is one yes / no decision: prob >= threshold predicts 1."""
    t = (np.asarray(y_true).ravel() >= 0.5).astype(int)
    p = (np.asarray(prob).ravel() >= threshold).astype(int)
    return {
        "accuracy": accuracy(t, p),
        "precision": precision(t, p, "binary"),
        "recall": recall(t, p, "binary"),
        "f1": f1(t, p, "binary"),
    }


def regression_metrics(y_true, y_pred) -> dict[str, float]:
    y, p = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    return {"mse": mse(y, p), "rmse": rmse(y, p), "mae": mae(y, p), "mape": mape(y, p),
            "smape": smape(y, p)}  # fmt: skip


class Accumulator:
    """Collects a task's loss and metric inputs batch by batch; `result()` gives the dict.

    Only counted targets are kept (same rule as the losses), so padding never scores.
    """

    def __init__(self, task: str, class_weights=None):
        self.task = task
        self.class_weights = class_weights
        self.loss_sum = self.weight = 0.0
        self.nll_sum = self.tokens = 0.0
        self.true: list[np.ndarray] = []
        self.pred: list[np.ndarray] = []

    @torch.no_grad()
    def add(self, logits: Tensor, y: Tensor, lengths: Tensor | None = None) -> None:
        if self.task == "seq2seq":
            lengths = None  # source lengths: targets are masked by their -100 padding
        loss, weight = task_loss(self.task, logits, y, lengths, self.class_weights)
        self.loss_sum += float(loss) * weight
        self.weight += weight
        if self.task in ("classification", "tagging", "lm", "seq2seq"):
            mask = target_mask(logits, y, lengths)
            if self.task in ("lm", "seq2seq"):
                nll = torch.nn.functional.cross_entropy(
                    logits[mask].double(), y[mask], reduction="sum"
                )
                self.nll_sum += float(nll)
                self.tokens += int(mask.sum())
            self.true.append(y[mask].cpu().numpy())
            self.pred.append(logits.argmax(-1)[mask].cpu().numpy())
            return
        out, target, per_step = align_targets(logits, y)
        keep = step_mask(target, lengths, per_step).bool()
        if self.task == "binary":
            out = torch.sigmoid(out)
        self.true.append(target[keep].cpu().numpy())
        self.pred.append(out[keep].cpu().numpy())

    def result(self) -> dict[str, float]:
        out = {"loss": self.loss_sum / self.weight if self.weight else float("nan")}
        if not self.true or not sum(len(t) for t in self.true):
            return out
        true, pred = np.concatenate(self.true), np.concatenate(self.pred)
        if self.task in ("lm", "seq2seq"):
            nll = self.nll_sum / self.tokens
            out.update(perplexity=perplexity(nll), bpc=bits_per_character(nll))
            out["accuracy"] = accuracy(true, pred)
        elif self.task == "binary":
            out.update(binary_metrics(true, pred))
        elif self.task == "regression":
            out.update(regression_metrics(true, pred))
        else:
            out.update(classification_metrics(true, pred))
        return out
