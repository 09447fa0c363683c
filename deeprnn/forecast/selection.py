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
from deeprnn.estimators.defaults import Defaults
from deeprnn.forecast.backtest import backtest
from deeprnn.forecast.panel import is_panel
from deeprnn.forecast.transforms import season_of

# transform name -> Forecaster arguments. "relative": the network reads each window minus
# its last value and forecasts changes from it (differencing at the window's level);
# "difference": it models first differences y_t - y_(t-1); "seasonal_difference" the
# differences at the seasonal lag ("season" is replaced by the season's length).
TRANSFORMS = {
    "none": {"relative": False, "log": False, "difference": 0},
    "relative": {"relative": True, "log": False, "difference": 0},
    "log": {"relative": False, "log": True, "difference": 0},
    "log_relative": {"relative": True, "log": True, "difference": 0},
    "difference": {"relative": False, "log": False, "difference": 1},
    "seasonal_difference": {"relative": False, "log": False, "difference": "season"},
}


def transform_args(name: str, season: int) -> dict:
    """The Forecaster arguments of transform `name` for seasonal period `season`."""
    args = dict(TRANSFORMS[name])
    if args["difference"] == "season":
        args["difference"] = season
    return args


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
        return table_markdown(self.table)


def table_markdown(table: pd.DataFrame) -> str:
    """A selection table (a `Selection.table`, a Forecaster's `selection_`) as Markdown."""
    rows = ["| transform | lookback | backtest MASE | backtest sMAPE | note |",
            "|---|---|---|---|---|"]  # fmt: skip
    for r in table.itertuples():
        rows.append(f"| {r.transform} | {r.lookback} | {r.mase:.4g} | {r.smape:.4g} | "
                    f"{r.note} |")  # fmt: skip
    return "\n".join(rows)


def skip_reason(name: str, season: int, windowed: bool, values: np.ndarray | None) -> str:
    """Why transform `name` does not apply ("" when it does): `windowed` for panels and
    likelihood heads (per-window scaling, no log or differencing), values the series."""
    args = TRANSFORMS[name]
    if args["log"] and windowed:
        return "panels and likelihood heads are modelled without log"
    if args["difference"] and windowed:
        return "panels and likelihood heads are modelled without differencing"
    if args["log"] and values is not None and not (values > 0).all():
        return "y is not all positive"
    if args["difference"] == "season" and season == 1:
        return "season is 1 (the same as 'difference')"
    return ""


def _default_lookbacks(est, season: int) -> list[int]:
    """The estimator's lookback, one season or horizon longer and twice it (no repeats)."""
    base = _positive_int("lookback", est.lookback)
    step = max(season, est.horizon, 1)
    return sorted({base, base + step, 2 * base})


def select_forecaster(est, y: Any, lookbacks: list[int] | None = None,
                      transforms: list[str] | None = None, origins: int = 2,
                      season: int = 1, seeds: int = 1,
                      refit: bool = True) -> Selection:  # fmt: skip
    """Backtest every (transform, lookback) candidate of `est` (a Forecaster, unfitted) on
    y's last `origins` horizons, choose the lowest mean MASE (sMAPE breaks ties and stands
    in where MASE is undefined), and refit the choice on all of y (an ensemble of `seeds`
    seeds when seeds > 1). Log transforms are skipped (and say so) for series that are not
    all positive, for panels and for likelihood heads. Raises InputError naming an unknown
    transform, a y too short for the largest lookback, or candidates that all were skipped
    (a candidate whose fit raises InputError, e.g. too long a lookback, is skipped)."""
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
        lags = [transform_args(t, season)["difference"] for t in transforms]
        need = max(lookbacks) + min(lags) + horizon * (origins + 1)
        if len(values) < need:
            raise InputError(
                f"y has {len(values)} steps; backtesting lookback {max(lookbacks)} on "
                f"{origins} origins of horizon {horizon} needs at least {need} "
                "(pass shorter lookbacks or fewer origins)"
            )
    rows = []
    windowed = _windowed(est, y)
    for name in transforms:
        args = transform_args(name, season)
        skip = skip_reason(name, season, windowed, values)
        for lb in lookbacks:
            if skip:
                rows.append({"transform": name, "lookback": lb, "mase": np.nan,
                             "smape": np.nan, "note": f"skipped: {skip}"})  # fmt: skip
                continue
            cand = clone(est).set_params(lookback=lb, select="off", **args)
            try:
                bt = backtest(cand, y, start=-origins * horizon, stride=horizon,
                              horizon=horizon, refit=False, season=season,
                              coverage=None)  # fmt: skip
            except InputError as err:  # e.g. a lookback too long for the first origin's fit
                rows.append({"transform": name, "lookback": lb, "mase": np.nan,
                             "smape": np.nan, "note": f"skipped: {err}"})  # fmt: skip
                continue
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
    table = _ranked(table)
    best = table.iloc[0]
    chosen = {"transform": str(best["transform"]), "lookback": int(best["lookback"])}
    if not refit:
        return Selection(chosen, table, None)
    args = transform_args(chosen["transform"], season)
    final = clone(est).set_params(lookback=chosen["lookback"], select="off", **args)
    model = seed_ensemble(final, seeds).fit(y) if seeds > 1 else final.fit(y)
    return Selection(chosen, table, model)


_KEYS = ("relative", "log", "difference")
FALLBACK = {"relative": True, "log": False, "difference": 0}  # when nothing is backtested
SELECTS = ("auto", "transform", "off")


def choose_transform(est, y: Any, X: Any = None) -> Defaults:
    """What a Forecaster's `fit` uses for the arguments left to it: season (None: from the
    time stamps), relative / log / difference (None: the transform with the lowest backtest
    MASE among those that apply, at the given lookback), and with select="auto" the lookback
    (the given one, one season or horizon longer, twice it). Each with its reason; the
    backtest table is left in est.selection_. Without a backtest (select="off", covariates
    X, or y too short for one) the free transforms take FALLBACK (relative, no log, no
    differencing). Candidates are fitted without checkpoints."""
    d = Defaults()
    if est.select not in SELECTS:
        raise InputError(f"select must be one of {list(SELECTS)}, got {est.select!r}")
    season = est.season
    if season is None:
        season = d.choose("season", season_of(y), "from the time stamps' frequency (1: none)")
    season = _positive_int("season", season)
    free = [k for k in _KEYS if getattr(est, k) is None]

    def fallback(why: str) -> Defaults:
        for k in free:
            d.choose(k, FALLBACK[k], why)
        return d

    if est.select == "off":
        return fallback("select='off'")
    if X is not None:
        return fallback("covariates X given (the backtest forecasts without them)")
    windowed = _windowed(est, y)
    try:
        values = None if is_panel(y) else np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):  # not numbers: fit's own checks say what is wrong
        values = None
    fixed = {k: getattr(est, k) for k in _KEYS if k not in free}
    names = [n for n in TRANSFORMS if all(transform_args(n, season)[k] == v
                                          for k, v in fixed.items())]  # fmt: skip
    names = [n for n in names if not skip_reason(n, season, windowed, values)]
    horizon = _positive_int("horizon", est.horizon)
    origins = _positive_int("selection_origins", est.selection_origins)
    lookbacks = _default_lookbacks(est, season) if est.select == "auto" else [est.lookback]
    # Room for the backtest origins, a validation holdout and one window (candidates that
    # need more, e.g. a seasonal lag, are skipped by select_forecaster); fewer origins on
    # short data.
    try:
        longest = _longest(est, y)
    except (TypeError, ValueError, IndexError, KeyError, AttributeError):
        return fallback("y is not a series or panel the backtest can read")  # fit says why
    while origins > 1 and est.lookback + horizon * (origins + 2) > longest:
        origins -= 1
    lookbacks = [lb for lb in lookbacks if lb + horizon * (origins + 2) <= longest]
    if est.lookback not in lookbacks:
        return fallback(f"y is too short to backtest lookback {est.lookback} on {origins} "
                        f"origins of horizon {horizon}")  # fmt: skip
    if not names:
        return fallback("no transform applies to y with the fixed ones")
    if len(names) == 1 and len(lookbacks) == 1:
        for k in free:
            d.choose(k, transform_args(names[0], season)[k], "the only transform that applies")
        return d
    # Candidates train silently and without checkpoints: fit reports the choice (verbose).
    base = clone(est).set_params(select="off", season=season, checkpoint_dir=None,
                                 resume=False, verbose=0)  # fmt: skip
    try:
        sel = select_forecaster(base, y, [est.lookback], names, origins, season, refit=False)
    except InputError as err:  # bad data, or no candidate could be backtested: fit says why
        return fallback(f"no backtest was possible ({err})")
    table = sel.table
    best = sel.chosen["transform"]
    others = [lb for lb in lookbacks if lb != est.lookback]
    if others:
        try:
            more = select_forecaster(base, y, others, [best], origins, season, refit=False)
            table = pd.concat([table, more.table], ignore_index=True)
        except InputError:  # every longer lookback was skipped: keep the given one
            others = []
        table = _ranked(table)
    top = table.iloc[0]
    est.selection_ = table
    n_scored = int((table["note"] == "").sum())
    why = (
        f"backtest on {origins} origins: transform {top['transform']!r}, lookback "
        f"{int(top['lookback'])} scored MASE {top['mase']:.3g} (best of {n_scored})"
    )
    for k in free:
        d.choose(k, transform_args(str(top["transform"]), season)[k], why)
    if others:
        d.choose("lookback", int(top["lookback"]), why)
    return d


def _windowed(est, y: Any) -> bool:
    """True where y is modelled by per-window scaling (panels, likelihood heads, the
    autoregressive decoder), which takes no log or differencing."""
    return is_panel(y) or est.likelihood is not None or est.decoder != "direct"


def _ranked(table: pd.DataFrame) -> pd.DataFrame:
    """Candidates best first: by MASE where every scored one has it, else by sMAPE."""
    scored = table[table["note"] == ""]
    key = "mase" if scored["mase"].notna().all() else "smape"
    return table.sort_values([key, "smape"], na_position="last", ignore_index=True)


def _longest(est, y: Any) -> int:
    """The most steps of any series in y (as `Forecaster.fit` reads it)."""
    if not is_panel(y):
        return int(np.shape(y)[0])
    if isinstance(y, pd.DataFrame):
        return int(y.groupby(est.id_col).size().max()) if est.id_col in y else len(y)
    return int(max(len(s) for s in (y.values() if isinstance(y, dict) else y)))
