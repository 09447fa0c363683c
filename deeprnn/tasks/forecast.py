"""Forecasting: fit on the start of a series, forecast its held-out end, beat seasonal naive.

A panel (many series: a long CSV with `data.id_column`, or a folder of CSVs, one series per
file) fits ONE global Forecaster on every series but its last `horizon` steps, forecasts
them, scores the forecasts (MAE, sMAPE, MASE averaged over the series) against naive,
seasonal naive and drift (and statsforecast's AutoETS / AutoARIMA / AutoTheta when that
optional package is installed), backtests the model over the training part and writes
forecasts.csv (the next `horizon` steps after every series) and backtest.csv.
"""

from __future__ import annotations

import csv
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deeprnn import plots
from deeprnn.config import DataConfig, RunConfig
from deeprnn.config_io import ConfigError
from deeprnn.data import load_csv, load_dataset, load_numpy
from deeprnn.data.loaders import _numeric_column, _read_rows, decode_error
from deeprnn.data.time_index import _odd_one, continue_index, find_time_column, parse_dates
from deeprnn.errors import InputError
from deeprnn.estimators import Forecaster
from deeprnn.forecast.panel import Panel, to_panel
from deeprnn.tasks.common import Outcome, estimator_for, test_count
from deeprnn.train import metrics


def load_series(cfg: RunConfig) -> np.ndarray:
    """The series (T,) from a bundled dataset, a CSV column or a .npy / .npz file."""
    data = cfg.data
    if data.dataset is not None:
        ds = load_dataset(data.dataset)
        if "series" not in ds:
            raise InputError(f"dataset {data.dataset!r} is not a series (task {ds['task']!r})")
        return np.asarray(ds["series"], dtype=np.float64)
    path = Path(data.path)
    if path.suffix.lower() == ".csv":
        if data.column is None:
            raise InputError("data.column must name the CSV column holding the series")
        X, _ = load_csv(path, columns=[data.column])
        return X[:, 0]
    if path.suffix.lower() in (".npy", ".npz"):
        X, _ = load_numpy(path, y_key=None)
        return np.asarray(X, dtype=np.float64).reshape(-1)
    raise InputError(f"data.path {path}: expected a .csv, .npy or .npz file for forecasting")


def baselines(train: np.ndarray, steps: int, season: int) -> dict[str, np.ndarray]:
    """Seasonal naive (repeat the last season) and naive (repeat the last value)."""
    last_season = train[-season:] if len(train) >= season else train[-1:]
    reps = int(np.ceil(steps / len(last_season)))
    return {
        "seasonal_naive": np.tile(last_season, reps)[:steps],
        "naive": np.full(steps, train[-1]),
    }


def scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {
        "mae": metrics.mae(truth, pred),
        "rmse": metrics.rmse(truth, pred),
        "mape": metrics.mape(truth, pred),
        "smape": metrics.smape(truth, pred),
    }


def run(cfg: RunConfig, run_dir: Path, fixed: dict) -> tuple[Forecaster, Outcome]:
    """Hold out the last `test_size` steps, forecast them in one go, compare."""
    if is_panel_data(cfg.data):
        return run_panel(cfg, run_dir, fixed)
    series = load_series(cfg)
    n_test = test_count(cfg.data, len(series))
    train, test = series[:-n_test], series[-n_test:]
    defaults = {"lookback": min(2 * cfg.data.season, len(train) // 3), "horizon": n_test,
                "season": cfg.data.season}  # fmt: skip
    est = estimator_for(Forecaster, {**defaults, **cfg.model}, **fixed)
    est.fit(train)
    pred = np.asarray(est.predict(horizon=n_test)).reshape(-1)
    base = baselines(train, n_test, cfg.data.season)
    picture = plots.forecast(
        train, test, pred, run_dir / "plots" / "forecast.png",
        baseline=base["seasonal_naive"], title=f"Forecast of the last {n_test} steps",
    )  # fmt: skip
    outcome = Outcome(
        metrics=scores(test, pred),
        baselines={name: scores(test, b) for name, b in base.items()},
        plots=[picture],
    )
    return est, outcome


def evaluate(cfg: RunConfig, est: Forecaster) -> dict[str, float]:
    """Forecast the held-out end of the configured series from the part before it."""
    if is_panel_data(cfg.data):
        return evaluate_panel(cfg, est)
    series = load_series(cfg)
    n_test = test_count(cfg.data, len(series))
    pred = np.asarray(est.predict(horizon=n_test, y=series[:-n_test])).reshape(-1)
    return scores(series[-n_test:], pred)


def evaluate_baselines(cfg: RunConfig) -> dict[str, dict[str, float]]:
    """The baselines' metrics on the held-out end of the configured series."""
    if is_panel_data(cfg.data):
        data = read_panel_config(cfg.data)
        horizon, _ = panel_split(cfg, data)
        train, truth = data.panel.head(data.panel.lengths - horizon), data.holdout(horizon)
        base = panel_baselines(train, horizon, cfg.data.season)
        return {name: panel_scores(train, truth, f, cfg.data.season) for name, f in base.items()}
    series = load_series(cfg)
    n_test = test_count(cfg.data, len(series))
    base = baselines(series[:-n_test], n_test, cfg.data.season)
    return {name: scores(series[-n_test:], b) for name, b in base.items()}


def predict_file(est: Forecaster, path: Path, column: str | None, time_column: str | None = None,
                 data: DataConfig | None = None) -> list[list]:  # fmt: skip
    """Rows (time, forecast) for the steps after the series in `path`.

    A panel run (`data` its training config) gives rows (id, time, forecast [, quantiles])
    for every series in `path`, a long CSV or a folder read as in training (see
    `predict_panel_file`).

    The time continues the CSV's `time_column` (None: its first column of dates; "none":
    no column) in its own format ("1960-12" -> "1961-01", ...); without one, the steps
    count on from the input's (rows 1..T, so T+1, T+2, ...). `column` None: the CSV's one
    column besides the time column.
    """
    if getattr(est, "panel_kind_", None) == "panel":
        return predict_panel_file(est, path, data, column, time_column)
    name, values = "step", None
    if path.suffix.lower() == ".csv" and path.is_file():  # (a missing file: load_series says so)
        rows = _read_rows(path, ",", "utf-8") or [[]]
        header = [h.strip().lstrip("\ufeff") for h in rows[0]]
        if time_column is None:
            time_column = find_time_column(header, rows[1:], column)
        elif time_column != "none" and time_column not in header:
            raise InputError(f"{path} has no time column {time_column!r}; its columns are "
                             f"{header} (--time-column none: number the steps)")  # fmt: skip
        others = [h for h in header if h != time_column]
        if column is None and len(others) != 1:
            raise InputError(f"{path}: --column must name the CSV column holding the series; "
                             f"its columns are {header}")  # fmt: skip
        column = column or others[0]
        if time_column not in (None, "none"):
            name, values = time_column, [r[header.index(time_column)] for r in rows[1:]]
    cfg = RunConfig(task="forecast", data=DataConfig(path=str(path), column=column))
    series = load_series(cfg)
    pred = np.asarray(est.predict(y=series)).reshape(-1)
    if values is None:
        times = [str(len(series) + k) for k in range(1, len(pred) + 1)]
    else:
        times = continue_index(values, len(pred), name)
    return [[name, "forecast"]] + [[t, float(v)] for t, v in zip(times, pred)]


# ---- Panels: many series, one global model -------------------------------------------------

PANEL_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)  # forecasts.csv and fan charts (parametric heads)
STATSFORECAST_MODELS = ("AutoETS", "AutoARIMA", "AutoTheta")
STATSFORECAST_MISSING = "statsforecast not installed: pip install statsforecast"
BACKTEST_ORIGINS = 3  # rolling origins over the training part, `horizon` steps apart
MAX_PLOTS = 3  # series drawn (fan charts, or forecast plots for a point forecaster)


@dataclass
class PanelData:
    """Series read from a long CSV or a folder: the panel (each series in time order), each
    series' time labels as the input wrote them, and the column names of output rows."""

    panel: Panel
    times: list[list[str]]  # per series, its time column's values (numbered steps: "1", ...)
    id_name: str  # the id column ("id" for a folder)
    time_name: str  # the time column ("step" when the steps are numbered)
    numbered: bool  # no time column: steps are numbered 1..T per series

    def series(self, drop: int = 0) -> dict:
        """{id: series} without the last `drop` steps of each."""
        p = self.panel
        return {k: p.series(i)[: len(p.series(i)) - drop] for i, k in enumerate(p.ids)}

    def holdout(self, steps: int) -> np.ndarray:
        """(n_series, steps): the last `steps` values of every series."""
        return np.stack([self.panel.series(i)[-steps:] for i in range(len(self.panel))])

    def future_times(self, steps: int) -> list[list[str]]:
        """Per series, the `steps` time labels after its end (in the input's own format)."""
        if self.numbered:
            return [[str(len(t) + k) for k in range(1, steps + 1)] for t in self.times]
        out = []
        for key, t in zip(self.panel.ids, self.times):
            try:
                out.append(continue_index(t, steps, self.time_name))
            except InputError as err:
                raise InputError(f"series {key!r}: {err}") from None
        return out


def is_panel_data(data: DataConfig) -> bool:
    """True when `data` names many series: a long CSV (data.id_column) or a folder."""
    if data.dataset is not None:
        return False
    return data.id_column is not None or Path(data.path).is_dir()


def read_panel_config(data: DataConfig) -> PanelData:
    return read_panel(Path(data.path), data.id_column, data.column, data.time_column)


def read_panel(path: Path, id_column: str | None = None, column: str | None = None,
               time_column: str | None = None) -> PanelData:  # fmt: skip
    """Series from a folder of CSVs (one series per file, the file name its id), a long CSV
    (one row per series and time: `id_column`, the time column, `column`) or, with neither,
    one CSV file as one series named by its file name.

    `column` holds the values (None: the one column besides the id and time columns);
    `time_column` orders each series' rows and dates its forecasts (None: the first column
    of dates, if any; "none": no time column, rows in file order, steps numbered 1..T).
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() == ".csv")
        if not files:
            raise InputError(
                f"{path} holds no .csv files; a folder of series has one CSV per series "
                "(the file name is its id)"
            )
        read = [_read_series_file(f, column, time_column) for f in files]
        names = {name for _, _, name in read}
        name = names.pop() if len(names) == 1 else "time"
        numbered = all(labels is None for _, labels, _ in read)
        return _panel_data([f.stem for f in files], read, "id", name, numbered)
    if not path.is_file():
        raise FileNotFoundError(f"no such CSV file: {path.absolute()}")
    if path.suffix.lower() != ".csv":
        raise InputError(f"{path}: a panel is a long .csv file (data.id_column) or a folder")
    if id_column is None:
        read = [_read_series_file(path, column, time_column)]
        return _panel_data([path.stem], read, "id", read[0][2], read[0][1] is None)
    return _read_long(path, id_column, column, time_column)


def _read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        rows = _read_rows(path, ",", "utf-8")
    except UnicodeDecodeError as err:
        raise decode_error(path, "utf-8", err) from err
    if len(rows) < 2:
        raise InputError(f"{path}: expected a header row and data rows, got {len(rows)} row(s)")
    return [h.strip().lstrip("\ufeff") for h in rows[0]], rows[1:]


def _pick_time(path: Path, header: list[str], body: list[list[str]], time_column: str | None,
               skip: tuple) -> str | None:  # fmt: skip
    if time_column == "none":
        return None
    if time_column is not None:
        if time_column not in header:
            raise InputError(
                f"{path} has no time column {time_column!r} (data.time_column); its columns "
                f"are {header} (time_column: none keeps the file's row order)"
            )
        return time_column
    for j, name in enumerate(header):
        if name not in skip and parse_dates([r[j] for r in body]) is not None:
            return name
    return None


def _pick_value(path: Path, header: list[str], column: str | None, skip: tuple) -> str:
    if column is not None:
        if column not in header:
            raise InputError(
                f"{path} has no value column {column!r} (data.column); its columns are {header}"
            )
        return column
    others = [h for h in header if h not in skip]
    if len(others) != 1:
        raise InputError(
            f"{path}: data.column must name the value column; its columns are {header}"
        )
    return others[0]


def _time_keys(path: Path, labels: list[str], name: str) -> list:
    """Sortable values of a time column: its dates, or its integers."""
    parsed = parse_dates(labels)
    if parsed is not None:
        return parsed[0]
    try:
        return [int(v) for v in labels]
    except ValueError:
        if all(parse_dates([v]) is not None for v in labels):
            raise InputError(
                f"{path}: time column {name!r} mixes date formats (e.g. {labels[0]!r} and "
                f"{next(v for v in labels if v != labels[0])!r}); write every date alike"
            ) from None
        raise InputError(
            f"{path}: time column {name!r} holds {_odd_one(labels)!r}, neither a date (e.g. "
            "2020-01, 2020-01-31) nor an integer; name another with data.time_column, or set "
            "time_column: none to keep the file's row order"
        ) from None


def _ordered(path: Path, key, rows: list[int], labels: list[str] | None, keys: list | None,
             name: str | None) -> list[int]:  # fmt: skip
    """The rows of series `key` in time order; duplicate timestamps raise, naming it."""
    if keys is None:
        return rows
    rows = sorted(rows, key=lambda r: keys[r])
    for a, b in zip(rows, rows[1:]):
        if keys[a] == keys[b]:
            raise InputError(
                f"{path}: series {key!r} has duplicate timestamps ({labels[b]!r} appears more "
                f"than once in column {name!r}); aggregate or drop them first"
            )
    return rows


def _read_series_file(path: Path, column: str | None, time_column: str | None):
    """(values in time order, their time labels or None, the time column's name or "step")."""
    header, body = _read_table(path)
    time = _pick_time(path, header, body, time_column, (column,))
    value = _pick_value(path, header, column, (time,))
    values = _numeric_column(path, body, header.index(value), value, True)  # NaN: named later
    if time is None:
        return values, None, "step"
    labels = [r[header.index(time)].strip() for r in body]
    keys = _time_keys(path, labels, time)
    rows = _ordered(path, path.stem, list(range(len(body))), labels, keys, time)
    return values[rows], [labels[r] for r in rows], time


def _read_long(path: Path, id_column: str, column: str | None, time_column: str | None):
    header, body = _read_table(path)
    if id_column not in header:
        raise InputError(
            f"{path} has no id column {id_column!r} (data.id_column); its columns are {header}"
        )
    time = _pick_time(path, header, body, time_column, (id_column, column))
    value = _pick_value(path, header, column, (id_column, time))
    values = _numeric_column(path, body, header.index(value), value, True)
    j = header.index(id_column)
    groups: dict[str, list[int]] = {}
    for k, row in enumerate(body):
        key = row[j].strip()
        if not key:
            raise InputError(f"{path}: data row {k + 1} has no series id in column {id_column!r}")
        groups.setdefault(key, []).append(k)
    labels = keys = None
    if time is not None:
        labels = [r[header.index(time)].strip() for r in body]
        keys = _time_keys(path, labels, time)
    read = []
    for key, rows in groups.items():
        rows = _ordered(path, key, rows, labels, keys, time)
        read.append((values[rows], None if labels is None else [labels[r] for r in rows], time))
    return _panel_data(list(groups), read, id_column, time or "step", time is None)


def _panel_data(ids: list, read: list, id_name: str, time_name: str, numbered: bool) -> PanelData:
    panel = to_panel(dict(zip(ids, (values for values, _, _ in read))))  # NaN: names the series
    times = [
        [str(k) for k in range(1, len(values) + 1)] if labels is None else labels
        for values, labels, _ in read
    ]
    return PanelData(panel, times, id_name, time_name, numbered)


def panel_split(cfg: RunConfig, data: PanelData) -> tuple[int, int]:
    """(held-out steps = the model's horizon, lookback) of a panel run; InputError naming a
    series too short for them."""
    lengths = data.panel.lengths
    horizon, test_size = cfg.model.get("horizon"), cfg.data.test_size
    if horizon is None:
        horizon = int(test_size) if test_size >= 1 else max(1, round(test_size * lengths.min()))
    elif isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ConfigError(f"model.horizon: expected an int >= 1, got {horizon!r}")
    elif test_size >= 1 and int(test_size) != horizon:
        raise ConfigError(
            f"data.test_size={test_size:g} and model.horizon={horizon} disagree: a panel holds "
            "out the last horizon steps of every series; set one of them"
        )
    default = min(2 * cfg.data.season, max(1, (int(lengths.min()) - horizon) // 3))
    lookback = cfg.model.get("lookback", default)
    if isinstance(lookback, int) and not isinstance(lookback, bool) and lookback >= 1:
        short = np.flatnonzero(lengths < lookback + horizon)
        if len(short):
            i = int(short[0])
            more = f" ({len(short)} series are that short)" if len(short) > 1 else ""
            raise InputError(
                f"series {data.panel.ids[i]!r} has {lengths[i]} steps, fewer than lookback + "
                f"horizon = {lookback} + {horizon}: its last {horizon} steps are held out and "
                f"their forecast reads the {lookback} before them{more}; drop it or use a "
                "shorter lookback or horizon"
            )
    return horizon, lookback


def panel_baselines(panel: Panel, steps: int, season: int) -> dict[str, np.ndarray]:
    """Seasonal naive (y[T - season + (h - 1) mod season]; naive for series shorter than a
    season), naive (the last value) and drift (the line through the first and last values)
    forecasts of `steps` steps after every series: each (n_series, steps)."""
    lengths = panel.lengths
    ends = panel.starts[1:] - 1  # each series' last value
    last, first = panel.values[ends], panel.values[panel.starts[:-1]]
    h = np.arange(1, steps + 1)
    naive = np.repeat(last[:, None], steps, axis=1)
    slope = np.where(lengths > 1, (last - first) / np.maximum(lengths - 1, 1), 0.0)
    at = ends[:, None] + 1 - season + (h - 1) % season
    seasonal = np.where((lengths >= season)[:, None], panel.values[np.maximum(at, 0)], naive)
    return {"seasonal_naive": seasonal, "naive": naive, "drift": last[:, None] + slope[:, None] * h}


def statsforecast_baselines(
    series: list[np.ndarray], steps: int, season: int, ids: list | None = None
) -> tuple[dict[str, np.ndarray], list[str]]:
    """statsforecast's AutoETS, AutoARIMA and AutoTheta (season_length=season) fitted to every
    series: ({name: (n_series, steps)}, report notes). Without statsforecast: ({}, a note
    saying how to install it). A series a model fails on gets NaN rows (and a note)."""
    try:
        from statsforecast import models
    except ImportError:
        return {}, [STATSFORECAST_MISSING]
    except Exception as err:  # installed but broken: the run goes on without it
        return {}, [f"statsforecast could not be imported ({type(err).__name__}: {err})"]
    ids = list(range(len(series))) if ids is None else ids
    out, notes = {}, []
    for name in STATSFORECAST_MODELS:
        forecasts, failed = np.full((len(series), steps), np.nan), []
        for i, y in enumerate(series):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = getattr(models, name)(season_length=season)
                    forecasts[i] = model.forecast(y=np.asarray(y, np.float64), h=steps)["mean"]
            except Exception as err:  # one series' failure leaves the others' forecasts
                failed.append(f"{ids[i]!r} ({type(err).__name__}: {err})"[:200])
        if len(failed) == len(series):
            notes.append(f"statsforecast {name} failed on every series, e.g. {failed[0]}")
            continue
        if failed:
            notes.append(f"statsforecast {name} failed on {len(failed)} series (scores average "
                         f"the others), e.g. {failed[0]}")  # fmt: skip
        out[name] = forecasts
    return out, notes


def _mase_scales(panel: Panel, season: int) -> np.ndarray:
    """Per series: mean |y_t - y_(t - season)| (the MASE's scale); NaN where undefined or 0."""
    n, v = len(panel), panel.values
    if len(v) <= season:
        return np.full(n, np.nan)
    seg = np.repeat(np.arange(n), panel.lengths)
    same = seg[season:] == seg[:-season]
    who, gap = seg[season:][same], np.abs(v[season:] - v[:-season])[same]
    sums, counts = np.bincount(who, gap, minlength=n), np.bincount(who, minlength=n)
    ok = (counts > 0) & (sums > 0)
    return np.where(ok, sums / np.maximum(counts, 1), np.nan)


def panel_scores(train: Panel, truth: np.ndarray, pred: np.ndarray, season: int) -> dict:
    """MAE, sMAPE and MASE (scaled by each series' in-sample seasonal naive error) of
    forecasts pred of truth, both (n_series, steps), averaged over the series (those with a
    finite forecast; MASE: those with a scale)."""
    ok = np.isfinite(pred).all(axis=1)
    if not ok.any():
        return {"mae": float("nan"), "smape": float("nan"), "mase": float("nan")}
    y, f = truth[ok], pred[ok]
    err = np.abs(y - f)
    denom = np.abs(y) + np.abs(f)
    terms = np.where(denom == 0, 0.0, 2 * err / np.where(denom == 0, 1.0, denom))
    mae = err.mean(axis=1)
    mase = mae / _mase_scales(train, season)[ok]
    mase = mase[np.isfinite(mase)]
    return {"mae": float(mae.mean()), "smape": float(100 * terms.mean(axis=1).mean()),
            "mase": float(mase.mean()) if len(mase) else float("nan")}  # fmt: skip


def _levels(est: Forecaster) -> tuple[float, ...] | None:
    """The quantile levels forecasts.csv and the fan charts show (None: a point forecaster)."""
    if est.likelihood is None:
        return None
    if est.likelihood == "quantile":
        return tuple(est.quantiles or (0.1, 0.5, 0.9))
    return PANEL_QUANTILES


def _rows(est: Forecaster, data: PanelData, history: dict) -> list[list]:
    """Rows (id, time, forecast [, q...]), a header first, of the `horizon` steps after
    every series in `history` (the full series of `data`)."""
    mean = np.asarray(est.predict(y=history))
    levels = _levels(est)
    qs = None if levels is None else np.asarray(est.predict(y=history, quantiles=list(levels)))
    times = data.future_times(est.horizon)
    out = [[data.id_name, data.time_name, "forecast", *(f"q{q:g}" for q in levels or ())]]
    for i, key in enumerate(data.panel.ids):
        for h, t in enumerate(times[i]):
            extra = [] if qs is None else [float(v) for v in qs[i, h]]
            out.append([key, t, float(mean[i, h]), *extra])
    return out


def _write_csv(rows: list[list], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


def _plot_name(key, used: set) -> str:
    name = re.sub(r"[^\w.-]", "_", str(key)).strip(".") or "series"
    while name in used:
        name += "_"
    used.add(name)
    return name


def _backtest(est: Forecaster, train: PanelData, horizon: int, lookback: int, season: int,
              run_dir: Path):  # fmt: skip
    """(backtest or None, report lines, plots): rolling origins over the training part,
    `horizon` apart, the model fitted once at the first (refit=False)."""
    from sklearn.base import clone

    from deeprnn.forecast.backtest import backtest

    lengths = train.panel.lengths - horizon  # `train` holds the full series
    k = int(min(BACKTEST_ORIGINS, (lengths.min() - lookback) // horizon))
    head = ["## Backtest", ""]
    if k < 1 or (lengths - k * horizon).max() < lookback + horizon:
        why = (f"Skipped: the training part of the shortest series ({lengths.min()} steps) "
               f"leaves no rolling origin with lookback = {lookback} steps of history and a "
               f"horizon of {horizon} before the held-out part.")  # fmt: skip
        return None, [*head, why, ""], []
    model = clone(est).set_params(checkpoint_dir=None, resume=False, verbose=0)
    hist = train.series(drop=horizon)
    try:
        bt = backtest(model, hist, start=-k * horizon, stride=horizon, horizon=horizon,
                      refit=False, season=season)  # fmt: skip
    except InputError as err:
        return None, head + [f"Skipped: {err}", ""], []
    where = {key: i for i, key in enumerate(train.panel.ids)}
    cutoff = zip(bt.table["id"], bt.table["cutoff"])
    bt.table.insert(3, "cutoff_time", [train.times[where[key]][c] for key, c in cutoff])
    summary = bt.summary()
    cols = list(summary.columns)
    lines = head + [
        f"Rolling origin over the training part (`backtest.csv`: one row per origin and "
        f"series): the model is fitted once on the steps before the first origin "
        f"(refit=False), then forecasts {horizon} steps from each of {k} origins {horizon} "
        "steps apart, the last ending where the held-out part begins. Averaged over the "
        "series:",
        "",
        "| origin | steps before the test part | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 2) + "|",
    ]
    for origin, row in summary.iterrows():
        cells = " | ".join(f"{row[c]:.4g}" for c in cols)
        lines.append(f"| {origin} | {(k - int(origin)) * horizon} | {cells} |")
    picture = bt.plot(run_dir / "plots" / "backtest.png")
    return bt, lines + [""], [picture]


def run_panel(cfg: RunConfig, run_dir: Path, fixed: dict) -> tuple[Forecaster, Outcome]:
    """Hold out the last `horizon` steps of every series, fit one global Forecaster on the
    rest, forecast them all, compare with the baselines; backtest, forecasts.csv."""
    data = read_panel_config(cfg.data)
    horizon, lookback = panel_split(cfg, data)
    season, panel = cfg.data.season, data.panel
    try:  # a time column forecasts.csv cannot continue: say so before training
        data.future_times(horizon)
    except InputError as err:
        raise InputError(f"{err} (in a config: data.time_column: none)") from None
    est = estimator_for(Forecaster, {"lookback": lookback, "horizon": horizon,
                                     "season": season, **cfg.model}, **fixed)  # fmt: skip
    train_panel = panel.head(panel.lengths - horizon)
    train = data.series(drop=horizon)
    truth = data.holdout(horizon)
    est.fit(train)
    pred = np.asarray(est.predict(), dtype=np.float64)  # (n_series, horizon)
    base = panel_baselines(train_panel, horizon, season)
    extra, sf_notes = statsforecast_baselines(list(train.values()), horizon, season, panel.ids)
    scored = {name: panel_scores(train_panel, truth, f, season)
              for name, f in {**base, **extra}.items()}  # fmt: skip
    outcome = Outcome(metrics=panel_scores(train_panel, truth, pred, season), baselines=scored)
    levels = _levels(est)
    rows = _rows(est, data, data.series())
    _write_csv(rows, run_dir / "forecasts.csv")
    lengths = panel.lengths
    outcome.notes += [
        "## Panel",
        "",
        f"{len(panel)} series of {lengths.min()} to {lengths.max()} steps: one global model "
        f"is trained on all but the last {horizon} steps of every series and forecasts them "
        f"(lookback {lookback}); the metrics average the series (MASE with season {season}). "
        f"Baselines on the same split: seasonal naive, naive, drift"
        + (", " + ", ".join(f"statsforecast {n}" for n in extra) if extra else "")
        + ".",
        "",
        f"`forecasts.csv`: the next {horizon} steps after the end of every series "
        f"({data.id_name}, {data.time_name}, forecast"
        + ("" if levels is None else ", " + ", ".join(f"q{q:g}" for q in levels))
        + "), forecast from each series' last lookback steps by the model above.",
        "",
    ]
    outcome.notes += [f"Note: {n}." if not n.endswith(".") else f"Note: {n}" for n in sf_notes]
    if sf_notes:
        outcome.notes.append("")
    bt, lines, pictures = _backtest(est, data, horizon, lookback, season, run_dir)
    outcome.notes += lines
    if bt is not None:
        bt.table.to_csv(run_dir / "backtest.csv", index=False)
    else:
        (run_dir / "backtest.csv").unlink(missing_ok=True)  # not an older run's
    qs = None if levels is None else np.asarray(est.predict(quantiles=list(levels)))
    used: set = set()
    for i in range(min(MAX_PLOTS, len(panel))):
        key, name = panel.ids[i], _plot_name(panel.ids[i], used)
        history, title = train_panel.series(i), f"Series {key!r}: the last {horizon} steps"
        if qs is None:
            picture = plots.forecast(history, truth[i], pred[i],
                                     run_dir / "plots" / f"forecast_{name}.png",
                                     baseline=base["seasonal_naive"][i], title=title)  # fmt: skip
        else:
            picture = plots.fan_chart(history, qs[i], levels, run_dir / "plots" / f"fan_{name}.png",
                                      actual=truth[i], title=title)  # fmt: skip
        outcome.plots.append(picture)
    outcome.plots += pictures
    return est, outcome


def evaluate_panel(cfg: RunConfig, est: Forecaster) -> dict[str, float]:
    """A panel run's metrics: forecast the last `horizon` steps of every configured series
    from the steps before them."""
    data = read_panel_config(cfg.data)
    horizon = int(est.horizon)
    train = data.series(drop=horizon)
    pred = np.asarray(est.predict(y=train), dtype=np.float64)
    train_panel = data.panel.head(data.panel.lengths - horizon)
    return panel_scores(train_panel, data.holdout(horizon), pred, cfg.data.season)


def predict_panel_file(est: Forecaster, path: Path, data: DataConfig | None,
                       column: str | None = None,
                       time_column: str | None = None) -> list[list]:  # fmt: skip
    """Rows (id, time, forecast [, quantiles]) of the `horizon` steps after every series in
    `path`: a long CSV with the run's id column, a folder of CSVs, or one CSV (one series,
    named by the file, when it lacks the id column). The time column defaults to the run's
    `data.time_column`."""
    path = Path(path)
    id_column = None if data is None else data.id_column
    if id_column is not None and path.is_file():
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            header = [h.strip().lstrip("\ufeff") for h in next(csv.reader(f), [])]
        if id_column not in header:
            id_column = None  # one series
    if time_column is None and data is not None:
        time_column = data.time_column
    if column is None and data is not None:
        column = data.column
    panel = read_panel(path, id_column, column, time_column)
    return _rows(est, panel, panel.series())
