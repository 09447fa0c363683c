"""One batch of training: full or truncated BPTT, the stateful carry, the optimizer update.

Truncated BPTT (`tbptt_k1` = k1, `tbptt_k2` = k2 >= k1): a batch (B, T) is cut into chunks
[0, k1), [k1, 2k1), ... (the last may be shorter). Every chunk is one optimizer update whose
loss covers the chunk and whose gradient reaches k2 - k1 steps further back, to a detached
state: no gradient flows past it. The state at the end of one chunk starts the next, so the
whole batch is trained statefully. Without tbptt_k1 the batch is one chunk (full BPTT).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from deeprnn.config import TrainConfig
from deeprnn.errors import InputError
from deeprnn.train.losses import task_loss, weight_penalty, window_lengths
from deeprnn.train.optim import Schedule


def map_state(fn: Callable[[Tensor], Tensor], state):
    """Apply fn to every tensor of a (nested) state."""
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, (list, tuple)):
        return type(state)(map_state(fn, s) for s in state)
    return state


def run_model(model: nn.Module, x: Tensor, h, lengths: Tensor | None, y, task: str):
    """`model(x, h, lengths)`; a "seq2seq" model also reads the targets (teacher forcing)."""
    if task == "seq2seq":
        return model(x, h, lengths, y)
    return model(x, h, lengths)


def model_loss(model: nn.Module):
    """The model's own `loss(logits, y, lengths) -> (loss, weight)`, which replaces the
    task's loss, or None (the DDP wrapper is looked through)."""
    inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    return getattr(inner, "loss", None) if "loss" in dir(type(inner)) else None


def carry_state(state, reset: Tensor | None, batch: int):
    """The carried state for the next batch: None (start from zero) if its batch size differs."""
    first = [None]
    map_state(lambda t: first.__setitem__(0, first[0] if first[0] is not None else t), state)
    if first[0] is None or first[0].shape[-2] != batch or not finite_state(state):
        return None
    if reset is None:
        return state
    keep = (~reset.bool()).view(-1, 1)
    return map_state(lambda t: t * keep.to(t.dtype), state)


def finite_state(state) -> bool:
    """True when every tensor of a (nested) state is finite."""
    finite = [True]
    map_state(lambda t: finite.__setitem__(0, finite[0] and bool(torch.isfinite(t).all())), state)
    return finite[0]


def windows(time_steps: int, k1: int | None, k2: int | None) -> list[tuple[int, int, int]]:
    """(gradient start, loss start, end) of every update of a batch of `time_steps` steps."""
    if k1 is None:
        return [(0, 0, time_steps)]
    back = 0 if k2 is None else k2 - k1
    ends = list(range(k1, time_steps, k1)) + [time_steps]
    return [(max(0, (e - 1) // k1 * k1 - back), (e - 1) // k1 * k1, e) for e in ends]


def update(
    model: nn.Module,
    loss: Tensor,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    config: TrainConfig,
) -> float:
    """One optimizer step: backward (with penalties), clip, step; the grad norm before clipping.

    When the loss or the norm is not finite the optimizer does not step and the returned
    norm is not finite (NaN for a non-finite loss with a finite gradient).
    """
    penalty = weight_penalty(model, config.l1, config.l2)
    optimizer.zero_grad(set_to_none=True)
    (loss if penalty is None else loss + penalty).backward()
    params = [p for p in model.parameters() if p.grad is not None]
    norm = float(torch.nn.utils.get_total_norm([p.grad for p in params])) if params else 0.0
    # A non-finite step is skipped (deeprnn.train.guard counts it). Under DDP the decision
    # rests on the norm alone: it is the same on every rank, a rank's own loss is not.
    ddp = isinstance(model, nn.parallel.DistributedDataParallel)
    if not math.isfinite(norm) or not (ddp or bool(torch.isfinite(loss.detach()))):
        optimizer.zero_grad(set_to_none=True)
        return norm if not math.isfinite(norm) else float("nan")
    if config.clip_value is not None:
        torch.nn.utils.clip_grad_value_(params, config.clip_value)
    if config.clip_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, config.clip_norm)
    optimizer.step()
    schedule.after_step()
    return norm


def train_batch(
    model: nn.Module,
    x: Tensor,
    lengths: Tensor | None,
    y: Tensor,
    h0,
    task: str,
    config: TrainConfig,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    combine: Callable[[Tensor, float], tuple[Tensor, float, float]] | None = None,
) -> Iterator[tuple[float, float, float | None, float, list]]:
    """Train on one batch; yield (loss, weight, grad_norm, lr, state) per chunk.

    grad_norm is None for a chunk without counted targets (no update); state is the
    detached state at the chunk's end. `combine(loss, weight)` -> (loss to back-propagate,
    loss to report, total weight) lets data-parallel training weigh a rank's share of a
    global batch (`deeprnn.distributed`); None: this batch alone.
    """
    k1 = config.tbptt_k1
    boundary = {0: h0}  # detached states at the cuts, by time step
    for start, loss_start, end in windows(x.shape[1], k1, config.tbptt_k2):
        cut = start if k1 is None else start // k1 * k1
        h = boundary[cut]
        if start > cut:  # k2 > k1: roll the state forward, without gradient, to `start`
            with torch.no_grad():
                _, h = model(x[:, cut:start], h, window_lengths(lengths, cut, start))
        logits, state = run_model(
            model, x[:, start:end], h, window_lengths(lengths, start, end), y, task
        )
        target = y
        if logits.dim() == 3 and task != "seq2seq":  # seq2seq: the targets' own time
            logits, target = logits[:, loss_start - start :], y[:, loss_start:end]
        elif k1 is not None:
            raise InputError("truncated BPTT needs per-step outputs: a head with pooling='every'")
        own = model_loss(model)
        if own is not None:  # a model that defines its loss (a forecaster's likelihood)
            loss, weight = own(logits, target, window_lengths(lengths, loss_start, end))
        else:
            loss, weight = task_loss(
                task,
                logits,
                target,
                window_lengths(lengths, loss_start, end),
                config.class_weights,
                config.label_smoothing,
            )
        reported = float(loss.detach())
        if combine is not None:
            loss, reported, weight = combine(loss, weight)
        state = map_state(Tensor.detach, state)
        boundary[end] = state if finite_state(state) else None  # diverged: restart from zero
        lr, norm = schedule.lr, None
        if weight > 0:
            norm = update(model, loss, optimizer, schedule, config)
        yield reported, weight, norm, lr, boundary[end]
