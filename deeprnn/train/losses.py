"""Training losses from logits: cross-entropy, binary cross-entropy, MSE, and L1 / L2 penalties.

Targets (one rule for every task):
- "classification": logits (B, K), y (B,) int64 class ids.
- "tagging" / "lm": logits (B, T, K), y (B, T) int64 ids (for "lm", the NEXT token at each
  step). Step t of row b counts iff t < lengths[b] (when lengths are given) AND
  y[b, t] != IGNORE_INDEX (-100); so pad y with -100, or pass lengths, or both. Pooled
  tagging (logits (B, K), y (B,)) is the same as classification.
- "binary": logits (B,), (B, K), or per step (B, T) / (B, T, K); y float of the same shape
  (a trailing logits axis of size 1 may be left out of y). Per-step losses count t < lengths[b].
- "regression": like "binary" with real-valued y.
- "seq2seq": logits (B, T, K), y (B, T) target ids padded with -100; lengths are the
  SOURCE lengths and do not mask targets (the -100 padding does).
Every loss is a weighted mean: sum(w * loss) / sum(w) over the counted terms, w = 1 unless
class weights are given (torch's convention for weighted cross-entropy). Binary class
weights are (w_neg, w_pos): a term with target y weighs w_neg * (1 - y) + w_pos * y.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deeprnn.config import TASKS
from deeprnn.errors import InputError, InputTypeError, check_choice
from deeprnn.heads import valid_mask

IGNORE_INDEX = -100


def window_lengths(lengths: Tensor | None, start: int, stop: int) -> Tensor | None:
    """Lengths of each row inside the time window [start, stop)."""
    if lengths is None:
        return None
    return (lengths - start).clamp(0, stop - start)


def _weights(class_weights: Sequence[float] | None, n: int, like: Tensor) -> Tensor | None:
    if class_weights is None:
        return None
    w = torch.as_tensor(class_weights, dtype=like.dtype, device=like.device)
    if w.dim() != 1 or w.shape[0] != n:
        raise InputError(f"class_weights must hold {n} values, got {tuple(w.shape)}")
    return w


def _mean(terms: Tensor, weights: Tensor) -> tuple[Tensor, float]:
    """sum(w * terms) / sum(w), and sum(w); an empty selection gives a zero loss."""
    total = weights.sum()
    loss = (terms * weights).sum() / total.clamp(min=torch.finfo(terms.dtype).tiny)
    return loss, float(total)


def target_mask(logits: Tensor, y: Tensor, lengths: Tensor | None) -> Tensor:
    """(B,) or (B, T) bool: which integer targets count (see the module docstring)."""
    mask = y != IGNORE_INDEX
    if logits.dim() == 3:
        mask = mask & valid_mask(lengths, y.shape[0], y.shape[1], y.device)
    return mask


def cross_entropy(
    logits: Tensor,
    y: Tensor,
    lengths: Tensor | None = None,
    class_weights: Sequence[float] | None = None,
    label_smoothing: float = 0.0,
) -> tuple[Tensor, float]:
    """Mean -log softmax(logits)[y] over counted targets; returns (loss, total weight).

    With label_smoothing e the target is (1 - e) one-hot(y) + e / K (Szegedy et al. 2016).
    """
    if y.is_floating_point():
        raise InputTypeError(f"class targets y must be int64 ids, got dtype {y.dtype}")
    if logits.shape[:-1] != y.shape:
        raise InputError(
            f"logits {tuple(logits.shape)} need targets y of shape {tuple(logits.shape[:-1])}, "
            f"got {tuple(y.shape)}"
        )
    k = logits.shape[-1]
    mask = target_mask(logits, y, lengths)
    ids = torch.where(mask, y, torch.zeros_like(y))
    if mask.any() and (int(ids[mask].min()) < 0 or int(ids[mask].max()) >= k):
        raise InputError(f"class ids in y must lie in [0, {k}) or be {IGNORE_INDEX}")
    nll = F.cross_entropy(
        logits.reshape(-1, k), ids.reshape(-1), reduction="none", label_smoothing=label_smoothing
    )
    w = _weights(class_weights, k, logits)
    weights = (w[ids] if w is not None else torch.ones_like(logits[..., 0])) * mask
    return _mean(nll.view_as(ids), weights.view_as(ids))


def align_targets(logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor, bool]:
    """Squeeze a size-1 output axis the targets leave out; note whether outputs are per step."""
    per_step = logits.dim() == 3
    if not y.is_floating_point():
        y = y.to(logits.dtype)
    if logits.shape != y.shape and logits.shape[-1] == 1 and logits.shape[:-1] == y.shape:
        logits = logits.squeeze(-1)
    if logits.shape != y.shape:
        raise InputError(f"targets y {tuple(y.shape)} do not match outputs {tuple(logits.shape)}")
    return logits, y, per_step


def step_mask(y: Tensor, lengths: Tensor | None, per_step: bool) -> Tensor:
    """Ones over counted terms of y: all of them, or t < lengths[b] on per-step outputs."""
    ones = torch.ones_like(y)
    if not per_step:
        return ones
    mask = valid_mask(lengths, y.shape[0], y.shape[1], y.device).to(y.dtype)
    return ones * mask.view(*mask.shape, *([1] * (y.dim() - 2)))


def binary_cross_entropy(
    logits: Tensor,
    y: Tensor,
    lengths: Tensor | None = None,
    class_weights: Sequence[float] | None = None,
) -> tuple[Tensor, float]:
    """Mean binary cross-entropy with logits; returns (loss, total weight)."""
    logits, y, per_step = align_targets(logits, y)
    terms = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    weights = step_mask(y, lengths, per_step)
    w = _weights(class_weights, 2, logits)
    if w is not None:
        weights = weights * (w[0] * (1 - y) + w[1] * y)
    return _mean(terms, weights)


def mse(logits: Tensor, y: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, float]:
    """Mean squared error over counted terms; returns (loss, number of terms)."""
    logits, y, per_step = align_targets(logits, y)
    return _mean((logits - y) ** 2, step_mask(y, lengths, per_step))


def task_loss(
    task: str,
    logits: Tensor,
    y: Tensor,
    lengths: Tensor | None = None,
    class_weights: Sequence[float] | None = None,
    label_smoothing: float = 0.0,
) -> tuple[Tensor, float]:
    """The loss of `task` (see the module docstring); returns (mean loss, total weight).

    `label_smoothing` applies to the cross-entropy tasks (classification, tagging, lm, seq2seq).
    """
    check_choice("task", task, TASKS)
    if task == "seq2seq":
        lengths = None  # source lengths; the targets' own padding is -100
    if task == "binary":
        return binary_cross_entropy(logits, y, lengths, class_weights)
    if task == "regression":
        if class_weights is not None:
            raise InputError("class_weights apply to classification tasks, not regression")
        return mse(logits, y, lengths)
    return cross_entropy(logits, y, lengths, class_weights, label_smoothing)


def weight_penalty(model: nn.Module, l1: float = 0.0, l2: float = 0.0) -> Tensor | None:
    """l1 * sum |W| + l2 * sum W^2 over weight matrices (parameters with 2+ dimensions).

    Biases and layer-norm gains are left out: shrinking them towards 0 is not regularising.
    Returns None when both coefficients are 0.
    """
    if not l1 and not l2:
        return None
    total = None
    for p in model.parameters():
        if p.dim() < 2 or not p.requires_grad:
            continue
        term = l1 * p.abs().sum() + l2 * p.pow(2).sum()
        total = term if total is None else total + term
    return total
