"""Rolling-origin backtests: forecast from several cut-off points and score each forecast.

Origin k of series i is the step o = start + k * stride (a negative start counts from the
end of each series): the model sees steps 0 .. o - 1 only and forecasts steps o .. o + h - 1.
With `refit`, a fresh clone of the estimator is fitted at every origin; without, it is
fitted once at the first origin and then forecasts from each later history (`predict(y=...)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from deeprnn.data.series import _positive_int
from deeprnn.errors import InputError
from deeprnn.forecast import metrics as fm
from deeprnn.forecast.panel import is_panel, to_panel


@dataclass
class Backtest:
    """forecasts: one row per forecast step (origin, id, step, index in the series, actual,
    forecast [, lower, upper]); table: one row per origin and series (cut-off, steps seen by
    the fit and by the forecast, MAE, sMAPE, MASE [, coverage])."""

    forecasts: pd.DataFrame
    table: pd.DataFrame

    def summary(self) -> pd.DataFrame:
        """The table's metrics averaged per origin."""
        cols = [c for c in ("mae", "smape", "mase", "coverage") if c in self.table]
        return self.table.groupby("origin")[cols].mean()

    def plot(self, path: str | Path, series: Any = None) -> Path:
        """One series (default: the first) with the forecast from every origin."""
        import matplotlib.pyplot as plt

        from deeprnn.plots import _save

        key = self.forecasts["id"].iloc[0] if series is None else series
        rows = self.forecasts[self.forecasts["id"] == key]
        fig, ax = plt.subplots(figsize=(9, 4))
        truth = rows.drop_duplicates("index").sort_values("index")
        ax.plot(truth["index"], truth["actual"], color="0.3", label="actual")
        for k, (origin, part) in enumerate(rows.groupby("origin")):
            ax.plot(part["index"], part["forecast"], color=f"C{k % 10}", label=f"origin {origin}")
        ax.set(xlabel="time step", title=f"Backtest of series {key!r}")
        ax.legend(fontsize="small")
        return _save(fig, path)


def backtest(est, y: Any, start: int, stride: int, horizon: int, refit: bool = True,
             season: int = 1, coverage: float | None = 0.8) -> Backtest:  # fmt: skip
    """Rolling-origin evaluation of the estimator `est` (unfitted: it is cloned) on y, a
    series (T,) or anything `Forecaster.fit` reads as a panel; see the module docstring.
    `season` is the MASE's; `coverage` the interval scored when est has a likelihood."""
    stride, horizon = _positive_int("stride", stride), _positive_int("horizon", horizon)
    single = (
        not is_panel(y) and isinstance(y, (np.ndarray, pd.Series, list, tuple)) and np.ndim(y) == 1
    )
    panel = to_panel(np.asarray(y, dtype=np.float64) if single else y)
    lengths = panel.lengths
    first = np.where(start >= 0, start, lengths + start).astype(np.int64)
    bad = np.flatnonzero(first < 1)
    if len(bad):
        i = int(bad[0])
        raise InputError(
            f"start={start} leaves series {panel.ids[i]!r} ({lengths[i]} steps) no history"
        )
    n_origins = int(((lengths - horizon - first) // stride + 1).max())
    if n_origins < 1:
        raise InputError(
            f"no origin leaves a full horizon of {horizon} steps after start={start} in any "
            f"series (longest: {lengths.max()} steps)"
        )
    probabilistic = coverage is not None and getattr(est, "likelihood", None) is not None
    model, fc_rows, table = None, [], []
    for k in range(n_origins):
        cut = first + k * stride
        keep = np.flatnonzero(cut + horizon <= lengths)
        hist = {panel.ids[i]: panel.series(i)[: cut[i]] for i in keep}
        data = next(iter(hist.values())) if single else hist
        if refit or model is None:
            model, fit_cut = clone(est).fit(data), cut.copy()
        pred = np.asarray(model.predict(horizon, y=data), dtype=np.float64).reshape(len(keep), -1)
        lo = hi = None
        if probabilistic:
            lo, hi = (np.asarray(b).reshape(len(keep), -1)
                      for b in model.predict_interval(coverage, horizon, y=data))  # fmt: skip
        for j, i in enumerate(keep):
            idx = np.arange(cut[i], cut[i] + horizon)
            actual = panel.series(i)[idx]
            rows = {"origin": k, "id": panel.ids[i], "step": np.arange(1, horizon + 1),
                    "index": idx, "actual": actual, "forecast": pred[j]}  # fmt: skip
            row = {"origin": k, "id": panel.ids[i], "cutoff": int(cut[i]),
                   "fit_steps": int(fit_cut[i]), "history_steps": int(cut[i]),
                   "mae": float(np.mean(np.abs(actual - pred[j]))),
                   "smape": fm.smape(actual, pred[j])}  # fmt: skip
            seen = panel.series(i)[: cut[i]]
            try:
                row["mase"] = fm.mase(actual, pred[j], seen, season)
            except InputError:  # too short, or constant at lag season: no MASE scale
                row["mase"] = np.nan
            if lo is not None:
                rows.update(lower=lo[j], upper=hi[j])
                row["coverage"] = fm.coverage(actual, lo[j], hi[j])
            fc_rows.append(pd.DataFrame(rows))
            table.append(row)
    return Backtest(pd.concat(fc_rows, ignore_index=True), pd.DataFrame(table))
