"""Data-aware defaults: what an estimator's arguments left as None ("auto") become, from the
shape of the training data (N sequences, their lengths T, F features, K classes).

Each rule is a small function, so README, the docstrings and the tests state the same
thing; `choose_defaults` applies them to an estimator and returns a `Defaults` record
(value and reason of every choice) that `fit` stores as `defaults_` and the run report
prints.

The rules (measured on the development sets named in issue 12 only: GunPoint,
ItalyPowerDemand, OSULeaf, ACSF1 and the two bundled sets):
- batch_size: N / 16 rounded to a power of two, within [8, 64]: small data still gets
  several updates an epoch, large data full-width batches.
- epochs: a budget of UPDATES optimizer updates (not passes): ceil(UPDATES / batches per
  epoch), within [MIN_EPOCHS, MAX_EPOCHS]. Tiny data gets enough updates; large data is
  not slowed down (it reaches MIN_EPOCHS passes).
- validation: below CV_BELOW sequences the best number of updates is picked by FOLDS-fold
  cross-validation, below SPLIT_BELOW by one 20 % split; the model is then refitted on ALL
  the training data for that many updates (classifiers: the most updates whose mean
  validation accuracy is within one standard error of the best, `pick_epochs`; else the
  lowest mean validation loss). From SPLIT_BELOW on, 10 % is held out for early
  stopping (enough sequences for a stable validation loss).
- hidden_size: 32 below 250 sequences, 64 below 5,000, else 128 (fewer weights than
  sequences x classes keep small data from being memorised at once).
- bidirectional: on (the whole sequence is known at prediction time) except for big, long
  data (N >= 10,000 and T >= 256 after the front end), where it would double the cost.
- pooling: "mean" over the outputs (robust on long and noisy sequences; "last" forgets).
- schedule: cosine decay of the lr to 0 over the fit's epochs when they are the data-aware
  budget of updates (epochs=None) without early stopping (the folds and the refit after
  them, or no validation); a constant lr with early stopping or epochs given.
  On the development sets the constant lr's last weights were a lottery (ACSF1 test
  accuracy 0.48-0.62 over seeds; cosine: 0.83-0.86).
- frontend: for feature sequences whose median length exceeds LONG steps, two conv blocks
  (CHANNELS = 64 channels, kernel 5, batch norm, ReLU) whose max pools shorten the sequence by about
  T / TARGET_STEPS (a power of two up to 16), so the recurrent stack reads ~64 steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

UPDATES = 1500  # optimizer updates a default fit aims at
MIN_EPOCHS, MAX_EPOCHS = 15, 300
CV_BELOW = 500  # k-fold choice of the training length below this many sequences
SPLIT_BELOW = 2000  # one held-out split (then a refit) below this many; early stopping above
FOLDS = 3
SMOOTH = 5  # epochs the classifiers' mean validation accuracy is smoothed over
LONG = 64  # median length above which a conv front end shortens the sequences
TARGET_STEPS = 64  # about how many steps the front end leaves for the recurrent stack
CHANNELS = 64  # of each front-end block (32 before: ACSF1 0.83 -> 0.89 at seed 0, 0.89 at 1)
POOLS = {2: [2, 1], 4: [2, 2], 8: [4, 2], 16: [4, 4]}  # total downsampling -> per-block pools


@dataclass(frozen=True)
class DataShape:
    """What the rules read of the training data."""

    n: int  # sequences
    median_length: int
    min_length: int
    features: int | None  # None for token inputs
    classes: int | None  # None for regression

    @classmethod
    def of(cls, seqs: list[np.ndarray], classes: int | None = None,
           tokens: bool = False) -> DataShape:  # fmt: skip
        """The shape of a list of (T_i, F) or (T_i,) sequences."""
        lengths = [len(s) for s in seqs]
        features = None if tokens else (seqs[0].shape[1] if seqs[0].ndim == 2 else 1)
        return cls(len(seqs), int(np.median(lengths)), int(min(lengths)), features, classes)


def auto_batch_size(n: int) -> int:
    """N / 16 as a power of two, clipped to [8, 64]."""
    return int(min(64, max(8, 2 ** round(math.log2(max(n, 1) / 16)))))


def auto_epochs(n_train: int, batch_size: int, updates: int | None = None) -> int:
    """Passes that give about `updates` (default UPDATES) optimizer updates, within
    [MIN_EPOCHS, MAX_EPOCHS]."""
    updates = UPDATES if updates is None else updates
    per_epoch = max(1, math.ceil(n_train / batch_size))
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(updates / per_epoch))))


def epochs_for_updates(updates: int, n_train: int, batch_size: int) -> int:
    """The passes over n_train sequences that make `updates` updates (at least 1)."""
    return max(1, round(updates / max(1, math.ceil(n_train / batch_size))))


def pick_epochs(curves: list[list[float]], accuracy: bool, seen: int) -> tuple[int, str]:
    """(epochs, reason) from per-fold validation curves (one value per epoch; a shorter
    curve is continued by its last value). `accuracy`: the MOST epochs whose mean accuracy,
    smoothed over SMOOTH epochs, is within one standard error sqrt(a (1 - a) / seen) of its
    best a (`seen`: validation sequences behind the mean); a longer fit that scores the same
    is the safer refit, since a peak on folds of a few dozen sequences is mostly noise.
    Otherwise the epochs of the lowest mean (loss)."""
    longest = max(len(c) for c in curves)
    score = np.mean([list(c) + [c[-1]] * (longest - len(c)) for c in curves], axis=0)
    if not accuracy:
        best = int(np.argmin(score)) + 1
        return best, f"lowest mean validation loss ({score[best - 1]:.4g})"
    width = min(SMOOTH, longest)
    padded = np.pad(score, (width // 2, width - 1 - width // 2), mode="edge")
    smooth = np.convolve(padded, np.ones(width) / width, mode="valid")
    top = float(smooth.max())
    se = math.sqrt(max(top * (1 - top), 0.0) / max(seen, 1))
    best = int(np.flatnonzero(smooth >= top - se - 1e-12)[-1]) + 1
    return best, (f"the most epochs whose mean validation accuracy ({smooth[best - 1]:.4g}, "
                  f"smoothed over {width} epochs) is within one standard error ({se:.3g}) of "
                  f"the best ({top:.4g})")  # fmt: skip


def auto_hidden_size(n: int) -> int:
    """32 below 250 sequences, 64 below 5,000, else 128."""
    return 32 if n < 250 else 64 if n < 5000 else 128


def auto_frontend(median_length: int, min_length: int) -> dict | None:
    """Two pooling conv blocks for sequences longer than LONG, else None. The pools make
    about median / TARGET_STEPS (a power of two, 2 to 16), reduced while the shortest
    sequence would come out with fewer than 4 steps."""
    if median_length <= LONG:
        return None
    total = min(16, 2 ** math.ceil(math.log2(median_length / TARGET_STEPS)))
    while total > 1 and min_length // total < 4:
        total //= 2
    if total < 2:
        return None
    return {
        "channels": [CHANNELS, CHANNELS],
        "kernel_size": 5,
        "pool": POOLS[total],
        "norm": "batch",
    }


def validation_plan(n: int) -> tuple[str, float | int]:
    """("cv", FOLDS) below CV_BELOW, ("split", 0.2) below SPLIT_BELOW, else ("early", 0.1)."""
    if n < CV_BELOW:
        return "cv", FOLDS
    if n < SPLIT_BELOW:
        return "split", 0.2
    return "early", 0.1


class Defaults(dict):
    """{argument: {"value": ..., "reason": ...}} of the arguments chosen from the data (an
    estimator's `defaults_`); `str()` is a table, `markdown()` one for reports."""

    plan: tuple[str, Any] = ("given", None)  # how fit validates: cv / split / early / given

    def choose(self, name: str, value: Any, reason: str) -> Any:
        self[name] = {"value": value, "reason": reason}
        return value

    def value(self, name: str, default: Any = None) -> Any:
        return self[name]["value"] if name in self else default

    def to_dict(self) -> dict:
        return {k: dict(v) for k, v in self.items()}

    @classmethod
    def from_dict(cls, d: dict) -> Defaults:
        return cls({k: dict(v) for k, v in d.items()})

    def markdown(self) -> str:
        rows = ["| argument | chosen | why |", "|---|---|---|"]
        rows += [f"| {k} | `{v['value']!r}` | {v['reason']} |" for k, v in self.items()]
        return "\n".join(rows)

    def __str__(self) -> str:
        width = max((len(k) for k in self), default=0)
        rows = (f"{k:<{width}}  {v['value']!r:<28}  {v['reason']}" for k, v in self.items())
        return "\n".join(rows)


def choose_defaults(est: Any, shape: DataShape, frontend_ok: bool = True,
                    pooled: bool = True) -> Defaults:  # fmt: skip
    """The arguments of `est` left as None (or "auto") with a value and a reason each;
    arguments the user set are kept and not listed. `frontend_ok`: feature inputs whose
    length the task may change; `pooled`: one output per sequence (a pooling argument)."""
    d = Defaults()
    n = shape.n
    if getattr(est, "frontend", None) == "auto":
        spec = auto_frontend(shape.median_length, shape.min_length) if frontend_ok else None
        why = (f"median length {shape.median_length} > {LONG}: pools of {spec['pool']} leave "
               f"about {shape.median_length // math.prod(spec['pool'])} steps for the RNN"
               if spec else
               "token or per-step inputs keep their length" if not frontend_ok else
               f"median length {shape.median_length} <= {LONG} steps")  # fmt: skip
        d.choose("frontend", spec, why)
    steps = shape.median_length // math.prod((d.value("frontend") or {}).get("pool", [1]))
    if est.hidden_size is None:
        d.choose("hidden_size", auto_hidden_size(n), f"{n} sequences (32 < 250 <= 64 < 5000)")
    if est.bidirectional is None:
        big = n >= 10_000 and steps >= 256
        d.choose("bidirectional", not big,
                 f"{n} sequences of ~{steps} steps: the cost would double" if big else
                 "whole sequences are known at prediction time")  # fmt: skip
    if pooled and getattr(est, "pooling", None) == "auto":
        d.choose("pooling", "mean", "the mean over all steps is robust on long, noisy data")
    plan, amount = ("given", est.validation_fraction)
    if est.validation_fraction is None:
        plan, amount = validation_plan(n)
        why = {
            "cv": f"{n} < {CV_BELOW} sequences: updates picked by {amount}-fold CV, "
            "then a refit on all the data",
            "split": f"{n} < {SPLIT_BELOW} sequences: updates picked on a 20 % split, "
            "then a refit on all the data",
            "early": f"{n} >= {SPLIT_BELOW} sequences: 10 % held out for early stopping",
        }
        d.choose("validation", f"{plan} {amount}", why[plan])
    d.plan = (plan, amount)
    if getattr(est, "schedule", None) == "auto":
        fixed = (plan in ("cv", "split") or not amount) and est.epochs is None
        d.choose("schedule", "cosine" if fixed else None,
                 "a fixed budget of updates: the lr decays to 0 over it (cosine), so the "
                 "refit ends on settled weights" if fixed else
                 "early stopping on a holdout: a constant lr" if amount else
                 "epochs given: a constant lr")  # fmt: skip
    n_train = n if plan in ("cv", "split") else n - max(1, round(n * (amount or 0)))
    if est.batch_size is None:
        d.choose("batch_size", auto_batch_size(n), f"{n} sequences / 16, within [8, 64]")
    batch = d.value("batch_size", est.batch_size)
    if est.epochs is None:
        epochs = auto_epochs(n_train, batch)
        d.choose("epochs", epochs, f"~{UPDATES} updates of {batch} over {n_train} sequences, "
                                   f"within [{MIN_EPOCHS}, {MAX_EPOCHS}] (the most)")  # fmt: skip
    return d
