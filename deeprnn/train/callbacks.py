"""Callbacks, the per-epoch History, and the Monitor behind early stopping and best weights.

A callback is a plain function `callback(event, state)`. `fit` calls it with
- "batch_end" after every optimizer step; state: epoch, step, batch, loss, grad_norm, lr,
  samples, model, optimizer;
- "epoch_end" after the epoch's metrics are in the history and the checkpoint is written;
  state: epoch, step, metrics (this epoch's row), history, model, optimizer;
- "fit_end" once, after the best weights are restored; state: epoch, step, history, model.
Every state also holds "stop": False. A callback that sets `state["stop"] = True` ends
training: at "batch_end" the epoch ends early (and is then recorded as usual), at
"epoch_end" no further epoch starts. Such a stop is not final: `resume=True` continues the
run, while an early stop by `patience` is final.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

Callback = Callable[[str, dict], None]

_MAXIMISED = ("accuracy", "f1", "precision", "recall")


def resolve_mode(metric: str, mode: str = "auto") -> str:
    """ "min" or "max"; "auto" maximises accuracy / f1 / precision / recall, minimises the rest."""
    if mode != "auto":
        return mode
    return "max" if any(word in metric for word in _MAXIMISED) else "min"


def run_callbacks(callbacks: Iterable[Callback], event: str, state: dict) -> bool:
    """Call every callback with (event, state); True if one of them asked to stop."""
    state["event"] = event
    state.setdefault("stop", False)
    for callback in callbacks:
        callback(event, state)
    return bool(state["stop"])


class History:
    """Every metric of every epoch: one row (a dict of floats) per epoch.

    Row keys: epoch, train_loss, lr (of the epoch's last update), grad_norm (mean over the
    epoch's updates, before clipping), seconds, and the validation metrics as val_<name>.
    Read it as a pandas DataFrame reads: `history["val_loss"]` is a column (a list),
    `list(history)` / `keys()` the metric names, `items()` the (name, column) pairs,
    `len(history)` the number of epochs; `to_frame()` gives a real DataFrame (pandas needed).
    `stop` says why training ended (set by fit; None before): a dict with "reason"
    ("early_stopping", "callback" or "completed"), "epoch", "epochs", "monitor",
    "best_epoch", "best", "patience" and a readable "message".
    """

    def __init__(self, rows: Iterable[dict] = (), stop: dict | None = None):
        self.rows: list[dict] = [dict(r) for r in rows]
        self.stop = stop

    def __iter__(self):
        return iter(self.keys())

    def __contains__(self, key: object) -> bool:
        return any(key in r for r in self.rows)

    def get(self, key: str, default=None):
        return self[key] if key in self else default

    def items(self) -> list[tuple[str, list]]:
        return [(k, self[k]) for k in self.keys()]

    def values(self) -> list[list]:
        return [self[k] for k in self.keys()]

    def to_frame(self):
        """A pandas DataFrame, one row per epoch, indexed by epoch."""
        import pandas as pd  # optional: only this method needs it

        frame = pd.DataFrame(self.rows)
        return frame.set_index("epoch") if "epoch" in frame else frame

    def __repr__(self) -> str:
        return f"History({len(self)} epochs: {', '.join(self.keys())})"

    def append(self, row: dict) -> None:
        self.rows.append(dict(row))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: str) -> list:
        """The column `key`, one value per epoch (None where an epoch lacks it)."""
        if not any(key in r for r in self.rows):
            raise KeyError(f"no metric {key!r} in the history; it has {self.keys()}")
        return [r.get(key) for r in self.rows]

    def keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.rows:
            seen.update(dict.fromkeys(r))
        return list(seen)

    def to_dict(self) -> dict[str, list]:
        """{metric: [value per epoch]}, None where an epoch lacks the metric."""
        return {k: self[k] for k in self.keys()}

    @classmethod
    def from_dict(cls, columns: dict[str, list]) -> History:
        n = max((len(v) for v in columns.values()), default=0)
        rows = [{k: v[i] for k, v in columns.items() if v[i] is not None} for i in range(n)]
        return cls(rows)

    def best(self, metric: str, mode: str = "auto") -> tuple[int, float]:
        """(epoch, value) of the best value of `metric` (epochs count from 1)."""
        sign = 1.0 if resolve_mode(metric, mode) == "min" else -1.0
        pairs = [
            (r.get("epoch", i + 1), r[metric])
            for i, r in enumerate(self.rows)
            if r.get(metric) is not None and not math.isnan(r[metric])
        ]
        if not pairs:
            raise KeyError(f"no value of {metric!r} in the history; it has {self.keys()}")
        return min(pairs, key=lambda p: sign * p[1])


class Monitor:
    """Tracks one metric's best value and the epochs since it last improved.

    An epoch improves when value < best - min_delta ("min") or value > best + min_delta
    ("max"). With `patience` set, `stopped` turns True after `patience` epochs in a row
    without improvement.
    """

    def __init__(self, metric: str, mode: str = "auto", min_delta: float = 0.0, patience=None):
        self.metric = metric
        self.mode = resolve_mode(metric, mode)
        self.min_delta = min_delta
        self.patience = patience
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.stopped = False

    def update(self, row: dict) -> bool:
        """Read this epoch's row; True when it is the best so far."""
        value = row.get(self.metric)
        if value is None:
            return False
        if self.best is None:
            improved = not math.isnan(value)
        elif self.mode == "min":
            improved = value < self.best - self.min_delta
        else:
            improved = value > self.best + self.min_delta
        if improved:
            self.best, self.best_epoch, self.bad_epochs = float(value), row.get("epoch"), 0
        else:
            self.bad_epochs += 1
            if self.patience is not None and self.bad_epochs >= self.patience:
                self.stopped = True
        return improved

    def stop_record(self, epoch: int, epochs: int, restored: bool) -> dict:
        """Why training ended after `epoch` of `epochs`, as `History.stop` holds it."""
        reason = "early_stopping" if self.stopped else "completed"
        if reason == "completed" and epoch < epochs:
            reason = "callback"
        best = ""
        if self.best_epoch is not None:
            best = f"; best epoch {self.best_epoch} ({self.metric} {self.best:.4g})"
            best += ", whose weights were kept" if restored else ""
        if reason == "early_stopping":
            message = (
                f"early stopping at epoch {epoch} of {epochs}: {self.metric} did not improve "
                f"for {self.patience} epochs (patience={self.patience}){best}"
            )
        elif reason == "callback":
            message = f"stopped at epoch {epoch} of {epochs} by a callback{best}"
        else:
            message = f"trained all {epochs} epochs{best}"
        return {"reason": reason, "epoch": epoch, "epochs": epochs, "monitor": self.metric,
                "best_epoch": self.best_epoch, "best": self.best, "patience": self.patience,
                "message": message}  # fmt: skip

    def state_dict(self) -> dict:
        keys = ("metric", "mode", "best", "best_epoch", "bad_epochs", "stopped")
        return {k: getattr(self, k) for k in keys}

    def load_state_dict(self, state: dict) -> None:
        for k in ("best", "best_epoch", "bad_epochs", "stopped"):
            setattr(self, k, state[k])
