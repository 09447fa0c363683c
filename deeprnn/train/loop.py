"""fit / evaluate / predict: the training loop, top to bottom.

Data: any re-iterable object yielding batches `(x, lengths, y)` (or `(x, lengths, y, reset)`)
of torch tensors; lengths may be None; targets follow `deeprnn.train.losses` (per-step
targets count where t < lengths[b] and y != -100). `reset` (B,) bool marks the rows whose
carried state starts again from zero (only meaningful with `stateful=True`).

Updates with a non-finite loss or gradient are skipped and counted, and a run with too many
of them in a row stops with a TrainingError (see `deeprnn.train.guard`); Ctrl-C inside
`deeprnn.train.interrupt.graceful_interrupt` ends fit after the batch and a checkpoint.

A validation set with a `metrics(model) -> dict` method adds its own metrics to (or replaces
the generic ones of) every epoch's `val_*` row: the forecaster scores in the series' units.

Full and truncated BPTT: see `deeprnn.train.bptt`. With `stateful=True` the final state of
a batch starts the next batch when its batch size is the same (else the state restarts
from zero), and at evaluation too; rows with reset=True start from zero.
"""

from __future__ import annotations

import dataclasses
import random
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
import torch
from torch import Tensor, nn

from deeprnn import distributed
from deeprnn.config import MONITOR_MODES, OPTIMIZERS, SCHEDULES, TASKS, TrainConfig
from deeprnn.errors import InputError, InputTypeError, check_choice
from deeprnn.train import interrupt
from deeprnn.train.bptt import carry_state, model_loss, run_model, train_batch
from deeprnn.train.callbacks import Callback, History, Monitor, run_callbacks
from deeprnn.train.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from deeprnn.train.guard import StepGuard, check_batch, check_train_config
from deeprnn.train.metrics import Accumulator
from deeprnn.train.optim import Schedule, make_optimizer
from deeprnn.train.progress import Progress

DEFAULT_CONFIG = TrainConfig()


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch, so a CPU run repeats exactly."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_config(config: TrainConfig, task: str) -> None:
    """Raise InputError for a TrainConfig or task that fit cannot run."""
    if not isinstance(config, TrainConfig):
        raise InputTypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    check_train_config(config)  # types, finiteness and the ranges of the other fields
    c = config
    check_choice("task", task, TASKS)
    check_choice("optimizer", c.optimizer, OPTIMIZERS)
    check_choice("mode", c.mode, MONITOR_MODES)
    if c.schedule is not None:
        check_choice("schedule", c.schedule, SCHEDULES)
    rules = [
        ("epochs", c.epochs, c.epochs >= 0), ("lr", c.lr, c.lr > 0),
        ("l1", c.l1, c.l1 >= 0), ("l2", c.l2, c.l2 >= 0),
        ("warmup_steps", c.warmup_steps, c.warmup_steps >= 0),
        ("step_size", c.step_size, c.step_size >= 1), ("gamma", c.gamma, 0 < c.gamma <= 1),
        ("checkpoint_every", c.checkpoint_every, c.checkpoint_every >= 1),
        ("clip_norm", c.clip_norm, c.clip_norm is None or c.clip_norm > 0),
        ("clip_value", c.clip_value, c.clip_value is None or c.clip_value > 0),
        ("patience", c.patience, c.patience is None or c.patience >= 1),
        ("tbptt_k1", c.tbptt_k1, c.tbptt_k1 is None or c.tbptt_k1 >= 1),
        ("tbptt_k2", c.tbptt_k2, c.tbptt_k2 is None or (c.tbptt_k1 or 0) <= c.tbptt_k2),
    ]  # fmt: skip
    for name, value, ok in rules:
        if not ok:
            raise InputError(f"TrainConfig.{name} = {value!r} is out of range")
    if c.tbptt_k2 is not None and c.tbptt_k1 is None:
        raise InputError("TrainConfig.tbptt_k2 needs tbptt_k1 (the update interval)")
    if not 0.0 <= c.label_smoothing < 1.0:
        raise InputError(f"TrainConfig.label_smoothing = {c.label_smoothing!r} must lie in [0, 1)")
    if task == "seq2seq" and (c.tbptt_k1 is not None or c.stateful):
        raise InputError("task 'seq2seq' trains whole pairs: tbptt_k1 and stateful do not apply")


# Callbacks added around code that calls fit indirectly (the CLI around an estimator).
_EXTRA_CALLBACKS: ContextVar[tuple[Callback, ...]] = ContextVar("fit_callbacks", default=())


@contextmanager
def extra_callbacks(*callbacks: Callback) -> Iterator[None]:
    """Within the block, every `fit` also calls these callbacks."""
    token = _EXTRA_CALLBACKS.set(_EXTRA_CALLBACKS.get() + callbacks)
    try:
        yield
    finally:
        _EXTRA_CALLBACKS.reset(token)


def _unpack(batch, device: torch.device):
    """(x, lengths, y, reset) on `device` from a batch tuple or a bare x."""
    parts = list(batch) if isinstance(batch, (tuple, list)) else [batch]
    if not 1 <= len(parts) <= 4:
        raise InputError(f"a batch must be (x, lengths, y[, reset]), got {len(parts)} parts")
    parts += [None] * (4 - len(parts))
    return [p.to(device) if isinstance(p, Tensor) else p for p in parts]


def _train_epoch(
    model, data, task, config, optimizer, schedule, callbacks, epoch, step, bar, guard=None
):
    """One pass over the training data; returns (row of metrics, step, stop requested)."""
    guard = guard if guard is not None else StepGuard(config)  # skips non-finite updates
    guard.start_epoch(epoch)
    model.train()
    device = next(model.parameters()).device
    loss_sum = weight_sum = 0.0
    norms, lr, carried, stop, index = [], schedule.lr, None, False, -1
    step_fn = distributed.train_batch if distributed.active() else train_batch
    for index, batch in enumerate(data):
        x, lengths, y, reset = _unpack(batch, device)
        if y is None:
            raise InputError("training batches need targets: (x, lengths, y)")
        check_batch(x, lengths, index)
        h0 = carry_state(carried, reset, x.shape[0]) if config.stateful else None
        chunks = step_fn(model, x, lengths, y, h0, task, config, optimizer, schedule)
        for loss, weight, norm, lr_used, state in chunks:
            carried = state
            if norm is None or not guard.after_update(loss, norm, index, optimizer):
                continue  # no counted targets, or a skipped non-finite update
            loss_sum, weight_sum, lr = loss_sum + loss * weight, weight_sum + weight, lr_used
            norms.append(norm)
            step += 1
            info = {"epoch": epoch, "step": step, "batch": index, "loss": loss,
                    "grad_norm": norm, "lr": lr_used, "samples": x.shape[0], "model": model,
                    "optimizer": optimizer, "x": x, "lengths": lengths}  # fmt: skip
            stop = run_callbacks(callbacks, "batch_end", info) or stop
        bar.update(x.shape[0], loss_sum / weight_sum if weight_sum else float("nan"))
        stop = distributed.any_rank(stop)  # all ranks end the epoch at the same batch
        if stop:
            break
    if index < 0:
        raise InputError(
            f"epoch {epoch}: the training data yielded no batches; pass a re-iterable object "
            "(a list of batches, TensorBatches), not a one-shot generator"
        )
    row = {"epoch": epoch, "train_loss": loss_sum / weight_sum if weight_sum else float("nan"),
           "lr": lr, "grad_norm": float(np.mean(norms)) if norms else float("nan"),
           **guard.epoch_row()}  # fmt: skip
    return row, step, stop


def fit(
    model: nn.Module,
    train: Iterable,
    val: Iterable | None = None,
    config: TrainConfig = DEFAULT_CONFIG,
    task: str = "classification",
    callbacks: Iterable[Callback] = (),
    run_dir=None,
    resume: bool = False,
) -> History:
    """Train `model` on `train` for `config.epochs` epochs; return the History.

    With `run_dir`, a checkpoint is written every `checkpoint_every` epochs (and at the
    end); `resume=True` continues from its latest checkpoint (or starts afresh when there is
    none) and reaches the same weights and history as an uninterrupted run.
    In a torch.distributed process group of two or more ranks (torchrun), fit trains
    data-parallel with DDP, each rank on its rows of every batch; see `deeprnn.distributed`.
    """
    check_config(config, task)
    callbacks = [*callbacks, *_EXTRA_CALLBACKS.get(), interrupt.stop_on_request]
    if not hasattr(train, "__iter__"):
        raise InputTypeError(f"train must be an iterable of batches, got {type(train).__name__}")
    if resume and run_dir is None:
        raise InputError("resume=True needs the run_dir that holds the checkpoints")
    watch = config.patience is not None or config.schedule == "plateau"
    if watch and val is None and config.monitor.startswith("val_"):
        raise InputError(
            f"monitor={config.monitor!r} needs validation data (val=...), or monitor='train_loss'"
        )
    optimizer = make_optimizer(model, config)
    schedule = Schedule(optimizer, config)
    history = History()
    monitor = Monitor(config.monitor, config.mode, config.min_delta, config.patience)
    keep_best = config.patience is not None and config.restore_best
    best_weights, epoch, step = None, 0, 0
    guard = StepGuard(config, run_dir)
    if resume and latest_checkpoint(run_dir) is not None:
        saved = load_checkpoint(run_dir, model, optimizer, schedule, restore_rng=True)
        trainer = saved["trainer"]
        if trainer.get("task") != task:
            raise CheckpointError(
                f"{saved['path']}: a checkpoint of task {trainer.get('task')!r}, not {task!r}"
            )
        history = History.from_dict(trainer["history"])
        monitor.load_state_dict(trainer["monitor"])
        epoch, step, best_weights = trainer["epoch"], trainer["step"], saved["best_weights"]
        guard.load_state_dict(trainer.get("guard", {}))
    else:
        seed_everything(config.seed)
    # Data-parallel (see deeprnn.distributed): DDP model, this rank's rows of every batch.
    distributed.check_same(epoch, f"the epoch resumed from {run_dir}")
    net, train = distributed.wrap(model), distributed.shard(train, config.seed)

    while epoch < config.epochs and not monitor.stopped:
        if hasattr(train, "set_epoch"):
            train.set_epoch(epoch)  # shuffling depends on the epoch, not on past iterations
        start = time.perf_counter()
        total = len(train) if hasattr(train, "__len__") else None
        verbose = config.verbose if distributed.is_main() else 0  # other ranks stay quiet
        bar = Progress(epoch + 1, config.epochs, total, verbose)
        row, step, stop = _train_epoch(
            net, train, task, config, optimizer, schedule, callbacks, epoch + 1, step, bar, guard
        )
        if val is not None:
            scores = evaluate(model, val, task, config) if distributed.is_main() else None
            if scores is not None and hasattr(val, "metrics"):  # it scores in its own units
                scores.update(val.metrics(model))
            row.update({f"val_{k}": v for k, v in distributed.broadcast(scores).items()})
        row["seconds"] = time.perf_counter() - start
        history.append(row)
        if watch and config.monitor not in row:
            raise InputError(f"monitor {config.monitor!r} is not among the metrics {list(row)}")
        if monitor.update(row) and keep_best:
            best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        schedule.after_epoch(row.get(config.monitor))
        bar.finish(row, config.monitor)
        epoch += 1
        last = epoch == config.epochs or monitor.stopped or stop
        due = epoch % config.checkpoint_every == 0 or last
        if run_dir is not None and due and distributed.is_main():
            trainer = {"task": task, "epoch": epoch, "step": step,
                       "history": history.to_dict(), "monitor": monitor.state_dict(),
                       "config": dataclasses.asdict(config),
                       "guard": guard.state_dict()}  # fmt: skip
            save_checkpoint(run_dir, model, trainer, optimizer, schedule, best_weights,
                            keep=config.keep_checkpoints)  # fmt: skip
        state = {"epoch": epoch, "step": step, "metrics": row, "history": history,
                 "model": model, "optimizer": optimizer}  # fmt: skip
        if distributed.any_rank(run_callbacks(callbacks, "epoch_end", state) or stop):
            break

    if interrupt.requested():
        where = latest_checkpoint(run_dir) if run_dir is not None else None
        saved = f"checkpoint {where} written; resume to continue" if where else "no checkpoint"
        raise interrupt.TrainingInterrupted(f"training stopped at epoch {epoch} ({saved})")
    if keep_best and best_weights is not None:
        model.load_state_dict(best_weights)
    history.stop = monitor.stop_record(epoch, config.epochs, keep_best and best_weights is not None)
    if config.verbose >= 1 and distributed.is_main() and history.stop["reason"] != "completed":
        print(f"fit: {history.stop['message']}", file=sys.stderr, flush=True)
    final = {"epoch": epoch, "step": step, "history": history, "model": model}
    run_callbacks(callbacks, "fit_end", final)
    return history


def _outputs(model: nn.Module, data: Iterable, stateful: bool = False, task: str = ""):
    """Yield (logits, lengths, y) per batch, in eval mode and without gradients."""
    was_training = model.training
    # Module.train() walks and re-sets every submodule (~0.5 ms a call for an estimator's
    # network, a sixth of a one-sequence predict): only when some part is training.
    switch = any(m.training for m in model.modules())
    if switch:
        model.eval()
    device = next(model.parameters()).device
    state = None
    try:
        with torch.no_grad():
            for batch in data:
                x, lengths, y, reset = _unpack(batch, device)
                h0 = carry_state(state, reset, x.shape[0]) if stateful else None
                logits, state = run_model(model, x, h0, lengths, y, task)
                yield logits, lengths, y
    finally:
        if switch:
            model.train(was_training)


def evaluate(
    model: nn.Module,
    data: Iterable,
    task: str = "classification",
    config: TrainConfig = DEFAULT_CONFIG,
) -> dict[str, float]:
    """The loss and the task's metrics over `data` (see deeprnn.train.metrics)."""
    check_choice("task", task, TASKS)
    own = model_loss(model)
    if own is not None:  # the model defines its loss: only the loss is reported
        total = weight = 0.0
        for logits, lengths, y in _outputs(model, data, config.stateful, task):
            loss, w = own(logits, y, lengths)
            total, weight = total + float(loss) * w, weight + w
        return {"loss": total / weight if weight else float("nan")}
    acc = Accumulator(task, config.class_weights)
    for logits, lengths, y in _outputs(model, data, config.stateful, task):
        if y is None:
            raise InputError("evaluate needs batches with targets: (x, lengths, y)")
        acc.add(logits, y, lengths)
    return acc.result()


def predict(model: nn.Module, data: Iterable, activate: bool = True) -> np.ndarray:
    """Outputs for every row of `data`, batches concatenated: (N, K) or (N, T, K).

    `activate` applies the head's activation (probabilities for softmax / sigmoid heads).
    Per-step outputs of batches with different T are right-padded with zeros to the longest.
    """
    outs = []
    for logits, _, _ in _outputs(model, data):
        outs.append((model.activate(logits) if activate else logits).cpu().numpy())
    if not outs:
        return np.zeros((0,), dtype=np.float32)
    if outs[0].ndim == 3:
        t = max(o.shape[1] for o in outs)
        outs = [np.pad(o, ((0, 0), (0, t - o.shape[1]), (0, 0))) for o in outs]
    return np.concatenate(outs)
