"""Choosing a Forecaster's transform and lookback by a backtest on the training data, and
averaging a few seeds (the M4-winning recipe of ensembling).

    sel = select_forecaster(Forecaster(lookback=24, horizon=12), y, season=12)
    sel.table                    # every candidate's backtest MASE, best first
    sel.chosen                   # {"transform": "log_relative", "lookback": 36}
    sel.estimator.predict()      # refit on ALL of y with the chosen arguments

The candidates are scored on rolling origins inside y only: the last `origins` blocks of
`horizon` steps, each forecast from the steps before it (so no candidate sees the steps it
is scored on), fitted once at the first origin (`backtest(..., refit=False)`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from deeprnn.data.series import _positive_int
from deeprnn.errors import InputError
from deeprnn.forecast.backtest import backtest
from deeprnn.forecast.panel import is_panel

# transform name -> Forecaster arguments. "relative": the network reads each window minus
# its last value and forecasts changes from it (differencing at the window's level).
TRANSFORMS = {
    "none": {"relative": False, "log": False},
    "relative": {"relative": True, "log": False},
    "log": {"relative": False, "log": True},
    "log_relative": {"relative": True, "log": True},
}


@dataclass
class ForecastEnsemble:
    """Forecasters fitted alike but for their seeds; forecasts are the members' mean."""

    members: list = field(default_factory=list)

    def fit(self, y: Any) -> ForecastEnsemble:
        """Fit every member on y; returns self."""
        if not self.members:
            raise InputError("a ForecastEnsemble needs at least one member; got none")
        self.members = [m.fit(y) for m in self.members]
        return self

    def predict(self, horizon: int | None = None, y: Any = None) -> np.ndarray:
        """The mean of the members' `predict(horizon, y=y)`."""
        return np.mean([np.asarray(m.predict(horizon, y=y)) for m in self.members], axis=0)


def seed_ensemble(est, seeds: int) -> ForecastEnsemble:
    """`seeds` unfitted clones of est with seeds est.seed, est.seed + 1, ..."""
    seeds = _positive_int("seeds", seeds)
    base = est.seed if est.seed is not None else 0
    return ForecastEnsemble([clone(est).set_params(seed=base + k) for k in range(seeds)])


@dataclass
class Selection:
    """What `select_forecaster` chose: its arguments, the backtest table (one row per
    candidate, best first) and the estimator refitted on all the data."""

    chosen: dict
    table: pd.DataFrame
    estimator: Any

    def markdown(self) -> str:
        """The table as Markdown, for reports."""
        rows = ["| transform | lookback | backtest MASE | backtest sMAPE | note |",
                "|---|---|---|---|---|"]  # fmt: skip
        for r in self.table.itertuples():
            rows.append(f"| {r.transform} | {r.lookback} | {r.mase:.4g} | {r.smape:.4g} | "
                        f"{r.note} |")  # fmt: skip
        return "\n".join(rows)


def _default_lookbacks(est, season: int) -> list[int]:
    """The estimator's lookback, one season or horizon longer and twice it (no repeats)."""
    base = _positive_int("lookback", est.lookback)
    step = max(season, est.horizon, 1)
    return sorted({base, base + step, 2 * base})


def select_forecaster(est, y: Any, lookbacks: list[int] | None = None,
                      transforms: list[str] | None = None, origins: int = 2,
                      season: int = 1, seeds: int = 1) -> Selection:  # fmt: skip
    """Backtest every (transform, lookback) candidate of `est` (a Forecaster, unfitted) on
    y's last `origins` horizons, choose the lowest mean MASE (sMAPE breaks ties and stands
    in where MASE is undefined), and refit the choice on all of y (an ensemble of `seeds`
    seeds when seeds > 1). Log transforms are skipped (and say so) for series that are not
    all positive, for panels and for likelihood heads. Raises InputError naming an unknown
    transform, a y too short for the largest lookback, or candidates that all were skipped."""
    origins = _positive_int("origins", origins)
    horizon = _positive_int("horizon", est.horizon)
    transforms = list(TRANSFORMS) if transforms is None else list(transforms)
    unknown = [t for t in transforms if t not in TRANSFORMS]
    if unknown or not transforms:
        raise InputError(
            f"transforms {unknown or transforms!r}: expected some of {list(TRANSFORMS)}"
        )
    lookbacks = _default_lookbacks(est, season) if lookbacks is None else sorted(set(lookbacks))
    lookbacks = [_positive_int("lookback", lb) for lb in lookbacks]
    panel = is_panel(y)
    values = None if panel else np.asarray(y, dtype=np.float64)
    if values is not None:
        need = max(lookbacks) + horizon * (origins + 1)
        if len(values) < need:
            raise InputError(
                f"y has {len(values)} steps; backtesting lookback {max(lookbacks)} on "
                f"{origins} origins of horizon {horizon} needs at least {need} "
                "(pass shorter lookbacks or fewer origins)"
            )
    rows = []
    for name in transforms:
        args = TRANSFORMS[name]
        skip = ""
        if args["log"] and (panel or est.likelihood is not None):
            skip = "panels and likelihood heads are modelled without log"
        elif args["log"] and not (values > 0).all():
            skip = "y is not all positive"
        for lb in lookbacks:
            if skip:
                rows.append({"transform": name, "lookback": lb, "mase": np.nan,
                             "smape": np.nan, "note": f"skipped: {skip}"})  # fmt: skip
                continue
            cand = clone(est).set_params(lookback=lb, **args)
            bt = backtest(cand, y, start=-origins * horizon, stride=horizon, horizon=horizon,
                          refit=False, season=season, coverage=None)  # fmt: skip
            mase = bt.table["mase"]
            rows.append({"transform": name, "lookback": lb,
                         "mase": float(np.nanmean(mase)) if mase.notna().any() else np.nan,
                         "smape": float(bt.table["smape"].mean()), "note": ""})  # fmt: skip
    table = pd.DataFrame(rows)
    scored = table[table["note"] == ""]
    if scored.empty:
        raise InputError(
            f"every candidate was skipped ({table['note'].iloc[0]}); pass transforms that "
            "apply to y, e.g. transforms=['none', 'relative']"
        )
    key = "mase" if scored["mase"].notna().all() else "smape"
    table = table.sort_values([key, "smape"], na_position="last", ignore_index=True)
    best = table.iloc[0]
    chosen = {"transform": str(best["transform"]), "lookback": int(best["lookback"])}
    final = clone(est).set_params(lookback=chosen["lookback"], **TRANSFORMS[chosen["transform"]])
    model = seed_ensemble(final, seeds).fit(y) if seeds > 1 else final.fit(y)
    return Selection(chosen, table, model)
