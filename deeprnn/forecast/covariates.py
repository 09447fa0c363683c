"""Covariates of a panel: past (observed up to the forecast origin), known future (also
known for the forecast steps: prices, holidays, calendar features) and static (one vector
per series), aligned step by step with the series and standardised per column.

    fc.fit(panel, X=past, X_known=known, static=static)
    fc.predict(X_future=known_of_the_forecast_steps)

Each of X / X_known is a dict {id: (T_i, K) array or DataFrame}, a list in the panel's order
or a long DataFrame with the id and time columns and one column per covariate; static is a
dict {id: (S,) array}, a list, or a DataFrame indexed by id. Calendar features (sin / cos of
the position in the cycles the time stamps' frequency has: month of year, day of week,
hour of day...) are generated from a DatetimeIndex as known-future covariates, for the
forecast steps as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from deeprnn.data.series import SeriesScaler
from deeprnn.errors import InputError
from deeprnn.forecast.transforms import freq_base

if TYPE_CHECKING:  # panel.py imports this module
    from deeprnn.forecast.panel import Panel

# frequency -> the cycles whose position is encoded, and each cycle's period.
CYCLES = {"M": ("month",), "MS": ("month",), "ME": ("month",), "Q": ("quarter",),
          "QS": ("quarter",), "QE": ("quarter",), "W": ("week",),
          "D": ("dayofweek", "dayofyear"), "B": ("dayofweek", "dayofyear"),
          "h": ("hour", "dayofweek"), "H": ("hour", "dayofweek"), "min": ("minute", "hour"),
          "T": ("minute", "hour")}  # fmt: skip
PERIODS = {"month": 12, "quarter": 4, "week": 52, "dayofweek": 7, "dayofyear": 365.25,
           "hour": 24, "minute": 60}  # fmt: skip


def calendar_cycles(freq: str | None) -> tuple[str, ...]:
    """The cycles encoded for time stamps of pandas frequency `freq` (none for None)."""
    return CYCLES.get(freq_base(freq), ()) if freq else ()


def calendar_features(index: pd.DatetimeIndex, cycles: tuple[str, ...]) -> np.ndarray:
    """(T, 2 * len(cycles)): sin and cos of each step's position in every cycle."""
    index = pd.DatetimeIndex(index)
    cols = []
    for c in cycles:
        if c == "week":
            pos = index.isocalendar().week.to_numpy(np.float64) - 1
        elif c in ("month", "quarter", "dayofyear"):
            pos = getattr(index, c).to_numpy(np.float64) - 1
        else:
            pos = getattr(index, c).to_numpy(np.float64)
        angle = 2 * np.pi * pos / PERIODS[c]
        cols += [np.sin(angle), np.cos(angle)]
    return np.stack(cols, axis=1) if cols else np.zeros((len(index), 0))


def _per_series(X: Any, panel: Panel, name: str, id_col: str, time_col: str,
                lengths: np.ndarray) -> list[np.ndarray]:  # fmt: skip
    """X as one (lengths[i], K) float64 array per series of the panel, or an InputError
    naming the series and what was expected."""
    if isinstance(X, pd.DataFrame) and id_col in X.columns:
        cols = [c for c in X.columns if c not in (id_col, time_col)]
        groups = {k: g.sort_values(time_col, kind="stable")[cols]
                  for k, g in X.groupby(id_col, sort=False)}  # fmt: skip
        X = groups
    if isinstance(X, dict):
        missing = [k for k in panel.ids if k not in X]
        if missing:
            raise InputError(
                f"{name} has no covariates for series {missing[:5]!r}; give every series of y "
                "its covariates"
            )
        parts = [X[k] for k in panel.ids]
    elif isinstance(X, (list, tuple)):
        if len(X) != len(panel):
            raise InputError(f"{name} holds {len(X)} series of covariates but y {len(panel)}")
        parts = list(X)
    else:
        raise InputError(
            f"{name} must be a dict {{id: (T, K) array}}, a list in the order of y's series or a "
            f"long DataFrame with columns {id_col!r}, {time_col!r} and one per covariate; got "
            f"{type(X).__name__}"
        )
    out, width = [], None
    for key, part, n in zip(panel.ids, parts, lengths):
        a = np.asarray(part, dtype=np.float64)
        a = a.reshape(len(a), -1) if a.ndim == 1 else a
        if a.ndim != 2 or len(a) < n:
            raise InputError(
                f"{name} of series {key!r} has shape {a.shape}; expected ({n}, K): one row per step"
            )
        a = a[:n]
        if width is not None and a.shape[1] != width:
            raise InputError(
                f"{name} of series {key!r} has {a.shape[1]} columns, the others {width}"
            )
        width = a.shape[1]
        bad = np.flatnonzero(~np.isfinite(a).all(axis=1))
        if len(bad):
            raise InputError(f"{name} of series {key!r} has NaN or inf at step {int(bad[0])}")
        out.append(a)
    return out


def _static(static: Any, ids: list) -> np.ndarray:
    """(n_series, S) static covariates in the order of ids."""
    if isinstance(static, pd.DataFrame):
        static = {k: static.loc[k].to_numpy() for k in static.index}
    if isinstance(static, dict):
        missing = [k for k in ids if k not in static]
        if missing:
            raise InputError(f"static has no covariates for series {missing[:5]!r}")
        rows = [static[k] for k in ids]
    else:
        rows = list(static)
        if len(rows) != len(ids):
            raise InputError(f"static holds {len(rows)} rows but y {len(ids)} series")
    a = np.asarray([np.atleast_1d(np.asarray(r, dtype=np.float64)) for r in rows])
    if a.ndim != 2 or not np.isfinite(a).all():
        raise InputError(
            f"static must be one finite vector of the same length per series, got {a.shape}"
        )
    return a


@dataclass
class PanelCovariates:
    """Standardised covariates end to end like `Panel.values`: past (sum T, Kp), known
    (sum T, Kk: the user's, then calendar), static (n_series, S); None where absent."""

    past: np.ndarray | None = None
    known: np.ndarray | None = None
    static: np.ndarray | None = None
    cycles: tuple[str, ...] = ()
    scalers: dict = field(default_factory=dict)

    @property
    def widths(self) -> tuple[int, int, int]:
        return tuple(0 if a is None else a.shape[-1] for a in (self.past, self.known, self.static))

    def __bool__(self) -> bool:
        return any(self.widths)

    def state(self) -> dict:
        """What predict needs later (saved with the estimator): widths, cycles, scalers."""
        return {"widths": list(self.widths), "cycles": list(self.cycles),
                "scalers": dict(self.scalers)}  # fmt: skip


def read_covariates(panel: Panel, X: Any, X_known: Any, static: Any, calendar: bool,
                    freq: str | None, train_steps: np.ndarray, id_col: str, time_col: str,
                    state: dict | None = None) -> PanelCovariates:  # fmt: skip
    """The panel's covariates, standardised by columns fitted on the first train_steps[i]
    steps of each series (or by a saved `state`, at prediction)."""
    lengths = panel.lengths
    cycles = tuple(state["cycles"]) if state else (calendar_cycles(freq) if calendar else ())
    if cycles and panel.times is None:
        raise InputError("calendar features need time stamps: fit a DataFrame or pandas Series")
    scalers = {} if state is None else dict(state["scalers"])
    train_rows = np.concatenate(
        [panel.starts[i] + np.arange(int(k)) for i, k in enumerate(train_steps)]
    ).astype(np.int64)

    def stack(parts: list[np.ndarray], key: str) -> np.ndarray:
        a = np.concatenate(parts) if parts else np.zeros((0, 0))
        if key not in scalers:
            scalers[key] = SeriesScaler().fit(a[train_rows])
        return scalers[key].transform(a)

    past = (
        None if X is None else stack(_per_series(X, panel, "X", id_col, time_col, lengths), "past")
    )
    known_parts = []
    if X_known is not None:
        known_parts.append(_per_series(X_known, panel, "X_known", id_col, time_col, lengths))
    if cycles:
        known_parts.append([calendar_features(t, cycles) for t in panel.times])
    known = None
    if known_parts:
        joined = [np.concatenate(cols, axis=1) for cols in zip(*known_parts)]
        known = stack(joined, "known")
    st = None
    if static is not None:
        raw = _static(static, panel.ids)
        if "static" not in scalers:
            scalers["static"] = SeriesScaler().fit(raw)
        st = scalers["static"].transform(raw)
    cov = PanelCovariates(past, known, st, cycles, scalers)
    if state is not None:
        names = ("X (past covariates)", "X_known with calendar features", "static")
        for got, want, name in zip(cov.widths, state["widths"], names):
            if got and got != want:
                raise InputError(f"{name} has {got} columns; the forecaster was fitted on {want}")
    return cov


def future_known(state: dict, X_future: Any, names: list, last_times: list | None,
                 freq: str | None, steps: int, needed: int) -> np.ndarray:  # fmt: skip
    """Standardised known covariates (N, needed, Kk) of the forecast steps of the series
    `names`: the user's from X_future (a dict {id: (>= steps, K)} or a list in the order of
    the forecast series; rows past `steps` repeat the last), then calendar features of the
    dates after each series' last time stamp."""
    cycles = tuple(state["cycles"])
    user = state["widths"][1] - 2 * len(cycles)
    parts = []
    if user:
        if X_future is None:
            raise InputError(
                f"the forecaster was fitted with {user} known-future covariates (X_known): pass "
                f"X_future with their values for the {steps} forecast steps of every series"
            )
        if isinstance(X_future, dict) and any(k not in X_future for k in names):
            missing = [k for k in names if k not in X_future]
            raise InputError(f"X_future has no rows for series {missing[:5]!r}")
        rows = [X_future[k] for k in names] if isinstance(X_future, dict) else list(X_future)
        if len(rows) != len(names):
            raise InputError(f"X_future holds {len(rows)} series, the forecast {len(names)}")
        block = []
        for key, r in zip(names, rows):
            a = np.asarray(r, dtype=np.float64)
            a = a.reshape(len(a), -1) if a.ndim == 1 else a
            if a.ndim != 2 or len(a) < steps or a.shape[1] != user or not np.isfinite(a).all():
                raise InputError(
                    f"X_future of series {key!r} has shape {a.shape}; expected ({steps} or "
                    f"more, {user}) finite values"
                )
            a = a[:needed]
            block.append(np.concatenate([a, np.repeat(a[-1:], needed - len(a), axis=0)]))
        parts.append(np.stack(block))
    elif X_future is not None:
        raise InputError("the forecaster was fitted without X_known; X_future must be None")
    if cycles:
        if last_times is None or freq is None:
            raise InputError(
                "calendar features need the time stamps (and a regular frequency) of the "
                "series forecast"
            )
        dates = [pd.date_range(t, periods=needed + 1, freq=freq)[1:] for t in last_times]
        parts.append(np.stack([calendar_features(d, cycles) for d in dates]))
    return state["scalers"]["known"].transform(np.concatenate(parts, axis=-1))


def gather(cov: PanelCovariates, rows: np.ndarray, series: np.ndarray):
    """(past (B, T, Kp), known (B, T, Kk), static (B, S)) at panel rows (B, T) of the series
    numbered `series` (B,); None where absent."""
    past = None if cov.past is None else cov.past[rows]
    known = None if cov.known is None else cov.known[rows]
    static = None if cov.static is None else cov.static[series]
    return past, known, static


def direct_extra(past, known, static, lookback: int, horizon: int) -> np.ndarray | None:
    """Covariate channels (B, T_in, E) of direct windows, None without covariates. With
    known covariates the horizon steps are appended to the lookback (T_in = L + H), flagged
    1 in a first channel, so the network reads the known future before it forecasts; past
    covariates are 0 there (unknown). Static ones repeat at every step."""
    if past is None and known is None and static is None:
        return None
    t_in = lookback + horizon if known is not None else lookback
    some = next(a for a in (past, known, static) if a is not None)
    b = len(some)
    chans = []
    if known is not None:
        flag = np.zeros((b, t_in, 1))
        flag[:, lookback:] = 1.0
        chans += [flag, known[:, :t_in]]
    if past is not None:
        p = np.zeros((b, t_in, past.shape[-1]))
        p[:, :lookback] = past[:, :lookback]
        chans.append(p)
    if static is not None:
        chans.append(np.broadcast_to(static[:, None], (b, t_in, static.shape[-1])))
    return np.concatenate(chans, axis=-1)


def ar_extra(known, static, steps: int, offset: int = 0) -> np.ndarray | None:
    """Covariate channels (B, steps, E) of autoregressive inputs: the input at position j
    (which predicts step j + 1) carries the known covariates of step j + 1 (rows offset + 1
    .. offset + steps of `known`) and the static ones."""
    if known is None and static is None:
        return None
    chans = []
    if known is not None:
        chans.append(known[:, offset + 1 : offset + 1 + steps])
    if static is not None:
        chans.append(np.broadcast_to(static[:, None], (len(static), steps, static.shape[-1])))
    return np.concatenate(chans, axis=-1)
