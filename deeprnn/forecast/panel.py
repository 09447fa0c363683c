"""Many series of different lengths as one panel, and training windows drawn from it lazily.

A `Panel` keeps every series end to end in one float64 array with the start of each, so a
panel of 100,000 series costs its values and two integers per series. `Windows` draws
training windows (lookback + horizon consecutive steps of one series) by number: window w
is found by a binary search in the cumulative window counts, and only a batch of windows is
ever built, never the array of all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from deeprnn.errors import InputError, InputTypeError
from deeprnn.forecast.covariates import ar_extra, direct_extra, gather
from deeprnn.forecast.scaling import window_scale


@dataclass
class Panel:
    """Series end to end: series i is values[starts[i]:starts[i + 1]]; ids name them and
    times (optional) hold each series' time stamps (a pandas Index)."""

    ids: list
    values: np.ndarray  # (sum of lengths,) float64
    starts: np.ndarray  # (n_series + 1,) int64
    times: list | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.starts)

    def series(self, i: int) -> np.ndarray:
        return self.values[self.starts[i] : self.starts[i + 1]]

    def head(self, steps: np.ndarray) -> Panel:
        """The first steps[i] steps of every series i."""
        parts = [self.series(i)[: int(k)] for i, k in enumerate(steps)]
        times = None if self.times is None else [t[: int(k)] for t, k in zip(self.times, steps)]
        return _from_arrays(self.ids, parts, times)

    def select(self, ids: Any) -> np.ndarray:
        """Positions of the given ids; InputError naming the ids the panel does not hold."""
        where = {k: i for i, k in enumerate(self.ids)}
        wanted = list(ids) if isinstance(ids, (list, tuple, np.ndarray)) else [ids]
        missing = [k for k in wanted if k not in where]
        if missing:
            raise InputError(
                f"series {missing[:5]!r} are not in the panel, which holds {self.ids[:5]!r}"
                + (" ..." if len(self.ids) > 5 else "")
            )
        return np.array([where[k] for k in wanted], dtype=np.int64)


def _from_arrays(ids: list, parts: list[np.ndarray], times: list | None = None) -> Panel:
    lengths = np.array([len(p) for p in parts], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = np.concatenate(parts) if parts else np.zeros(0)
    return Panel(list(ids), values.astype(np.float64, copy=False), starts, times)


def _check_series(key: Any, a: Any) -> np.ndarray:
    """One series (T,) as float64, or an InputError naming it."""
    try:
        v = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputTypeError(f"series {key!r} must hold numbers, got {type(a).__name__}") from None
    if v.ndim != 1:
        raise InputError(f"series {key!r} must be one-dimensional (T,), got shape {v.shape}")
    if len(v) == 0:
        raise InputError(f"series {key!r} is empty")
    bad = np.flatnonzero(~np.isfinite(v))
    if len(bad):
        raise InputError(
            f"series {key!r} has NaN or inf at step {int(bad[0])} ({len(bad)} missing in all); "
            "fill the gaps (interpolate, or drop the series) first"
        )
    return v


def is_panel(y: Any) -> bool:
    """True for the inputs read as many series: a dict, a DataFrame, a list of arrays (or of
    pandas Series), or a ragged list of lists (an even list of lists stays rows (T, C))."""
    import pandas as pd

    if isinstance(y, (dict, pd.DataFrame)):
        return True
    if not isinstance(y, (list, tuple)) or not y:
        return False
    if all(isinstance(s, (np.ndarray, pd.Series)) and np.ndim(s) == 1 for s in y):
        return True
    if all(isinstance(s, (list, tuple)) for s in y):
        return len({len(s) for s in y}) > 1
    return False


def to_panel(y: Any, id_col: str = "id", time_col: str = "time", value_col: str = "value") -> Panel:
    """A Panel from a list of arrays (ids 0..n-1), a dict {id: array or pandas Series}, a long
    DataFrame (id_col, time_col, value_col columns), or one series (T,) (id 0)."""
    import pandas as pd

    if isinstance(y, Panel):
        return y
    if isinstance(y, pd.DataFrame):
        return _from_frame(y, id_col, time_col, value_col)
    if isinstance(y, dict):
        if not y:
            raise InputError("y is an empty dict; expected {id: series}")
        times = (
            [s.index for s in y.values()]
            if all(isinstance(s, pd.Series) for s in y.values())
            else None
        )
        parts = [_check_series(k, s) for k, s in y.items()]
        return _from_arrays(list(y), parts, times)
    if isinstance(y, pd.Series):
        return _from_arrays([0], [_check_series(0, y)], [y.index])
    if isinstance(y, (list, tuple)) and is_panel(y):
        parts = [_check_series(i, s) for i, s in enumerate(y)]
        times = [s.index for s in y] if all(isinstance(s, pd.Series) for s in y) else None
        return _from_arrays(list(range(len(y))), parts, times)
    if np.ndim(y) == 1:
        return _from_arrays([0], [_check_series(0, y)])
    raise InputError(
        "y must be a series (T,), a list of series, a dict {id: series} or a long DataFrame "
        f"with columns {id_col!r}, {time_col!r}, {value_col!r}; got {type(y).__name__} "
        f"of shape {np.shape(y)}"
    )


def _from_frame(df, id_col: str, time_col: str, value_col: str) -> Panel:
    missing = [c for c in (id_col, time_col, value_col) if c not in df.columns]
    if missing:
        raise InputError(
            f"the DataFrame lacks the columns {missing}; it has {list(df.columns)} (pass "
            "id_col / time_col / value_col to name yours)"
        )
    if df[id_col].isna().any():
        row = int(np.flatnonzero(df[id_col].isna().to_numpy())[0])
        raise InputError(f"column {id_col!r} has a missing series id at row {row}")
    ids, parts, times = [], [], []
    for key, g in df.groupby(id_col, sort=True):
        g = g.sort_values(time_col, kind="stable")
        t = g[time_col]
        dup = t.duplicated().to_numpy()
        if dup.any():
            raise InputError(
                f"series {key!r} has duplicate timestamps ({t[dup].iloc[0]!r} appears more "
                "than once); aggregate or drop them first"
            )
        ids.append(key)
        parts.append(_check_series(key, g[value_col].to_numpy()))
        times.append(pd_index(t))
    return _from_arrays(ids, parts, times)


def pd_index(t):
    import pandas as pd

    return pd.Index(t.to_numpy())


class Windows:
    """Re-iterable batches (x, None, y) of windows drawn from a panel, built batch by batch.

    x (B, lookback, 2 [+1]): scaled values, log of the window's scale [, the series number];
    y (B, horizon + 2): scaled targets, then the window's location and scale (the
    likelihoods need them to score in the series' units). Window positions come from the
    cumulative counts `cum` (n_series,): no (series, offset) array is kept. An epoch is every
    window once (shuffled) when there are at most `per_epoch`, else `per_epoch` drawn at random.

    Args:
        panel: the series.
        stop: (n_series,) steps of each series windows may read (targets included).
        first_target: (n_series,) earliest step a target may start at (0: any).
        lookback, horizon, scaling: window shape and scaling (see `window_scale`).
        ids: add the series number as the last input channel (for an id embedding).
    """

    def __init__(self, panel: Panel, stop, lookback: int, horizon: int, scaling: str | None,
                 batch_size: int, shuffle: bool, seed: int, ids: bool, first_target=None,
                 per_epoch: int = 10_000, autoregressive: bool = False,
                 covariates=None):  # fmt: skip
        self.panel, self.L, self.H, self.scaling = panel, lookback, horizon, scaling
        self.autoregressive, self.covariates = autoregressive, covariates
        self.batch_size, self.shuffle, self.seed, self.ids = batch_size, shuffle, seed, ids
        self.per_epoch, self.epoch = per_epoch, 0
        stop = np.asarray(stop, dtype=np.int64)
        lo = np.zeros(len(panel), dtype=np.int64) if first_target is None else first_target
        # Window k of series i reads steps lo_i - L + k .. its target ends <= stop_i.
        self.begin = np.maximum(np.asarray(lo, dtype=np.int64) - lookback, 0)
        counts = np.maximum(stop - self.begin - lookback - horizon + 1, 0)
        self.cum = np.cumsum(counts)
        self.total = int(self.cum[-1]) if len(self.cum) else 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self._n() // self.batch_size)

    def _n(self) -> int:
        return min(self.total, self.per_epoch) if self.shuffle else self.total

    def locate(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(series number, first step) of windows numbered w."""
        s = np.searchsorted(self.cum, w, side="right")
        before = np.where(s > 0, self.cum[np.maximum(s - 1, 0)], 0)
        return s, self.begin[s] + (w - before)

    def batch(self, w: np.ndarray):
        s, first = self.locate(w)
        steps = self.panel.starts[s, None] + first[:, None] + np.arange(self.L + self.H)
        raw = self.panel.values[steps]  # (B, L + H)
        series = s if self.ids else None
        parts = (None, None, None)
        if self.covariates:
            parts = gather(self.covariates, steps, s)
        if self.autoregressive:
            extra = ar_extra(parts[1], parts[2], self.L + self.H - 1)
            return make_ar_inputs(raw, self.L, series, self.scaling, extra)
        extra = direct_extra(*parts, self.L, self.H)
        return make_inputs(raw[:, : self.L], series, self.scaling, raw[:, self.L :], extra)

    def __iter__(self):
        if self.shuffle:
            rng = np.random.default_rng(self.seed + self.epoch)
            if self.total <= self.per_epoch:
                order = rng.permutation(self.total)
            else:
                order = rng.integers(0, self.total, size=self.per_epoch)
        else:
            order = np.arange(self.total)
        for i in range(0, len(order), self.batch_size):
            x, y = self.batch(order[i : i + self.batch_size])
            yield x, None, y


def make_inputs(past: np.ndarray, series: np.ndarray | None, scaling: str | None,
                future: np.ndarray | None = None,
                extra: np.ndarray | None = None):  # fmt: skip
    """Network inputs (B, L, 2 [+E] [+1]) from raw windows past (B, L), and targets
    (B, H + 2) from the raw future (B, H) when given (else None). `extra` (B, T_in, E):
    covariate channels (`covariates.direct_extra`); T_in > L pads the values with zeros."""
    loc, scale = window_scale(past, scaling)  # (B, 1) each
    z = (past - loc) / scale
    if extra is not None and extra.shape[1] > z.shape[1]:
        z = np.concatenate([z, np.zeros((len(z), extra.shape[1] - z.shape[1]))], axis=1)
    x = features(z, scale, series, extra)
    if future is None:
        return x, None
    y = np.concatenate([(future - loc) / scale, loc, scale], axis=1)
    return x, torch.as_tensor(y, dtype=torch.float32)


def features(z: np.ndarray, scale: np.ndarray, series: np.ndarray | None,
             extra: np.ndarray | None = None) -> torch.Tensor:  # fmt: skip
    """Network inputs (B, T, 2 [+E] [+1]) of scaled values z (B, T): z, the log of each
    window's scale (B, 1) [, covariate channels extra (B, T, E)] [, the series number (B,):
    last, where `GlobalNet` finds it]."""
    feats = [z[..., None], np.broadcast_to(np.log(scale)[..., None], z.shape + (1,))]
    if extra is not None:
        feats.append(extra)
    if series is not None:
        feats.append(np.broadcast_to(series[:, None, None].astype(np.float64), z.shape + (1,)))
    return torch.as_tensor(np.concatenate(feats, axis=-1), dtype=torch.float32)


def make_ar_inputs(raw: np.ndarray, lookback: int, series: np.ndarray | None,
                   scaling: str | None, extra: np.ndarray | None = None):  # fmt: skip
    """Teacher-forced training pairs of windows raw (B, L + H), scaled by their first L
    steps: inputs (B, L + H - 1, 2 [+1]) hold steps 0 .. L + H - 2; targets (B, L + H - 1, 3)
    are per step (the training loop slices targets by step): the step after each input
    (1 .. L + H - 1), the window's loc and its scale (see `make_inputs`)."""
    loc, scale = window_scale(raw[:, :lookback], scaling)
    z = (raw - loc) / scale
    t = z.shape[1] - 1
    y = np.stack([z[:, 1:], np.repeat(loc, t, axis=1), np.repeat(scale, t, axis=1)], axis=-1)
    return features(z[:, :-1], scale, series, extra), torch.as_tensor(y, dtype=torch.float32)
