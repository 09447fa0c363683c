"""Forecasting: fit on the start of a series, forecast its held-out end, beat seasonal naive."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deeprnn import plots
from deeprnn.config import DataConfig, RunConfig
from deeprnn.data import load_csv, load_dataset, load_numpy
from deeprnn.data.loaders import _read_rows
from deeprnn.data.time_index import continue_index, find_time_column
from deeprnn.errors import InputError
from deeprnn.estimators import Forecaster
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
    series = load_series(cfg)
    n_test = test_count(cfg.data, len(series))
    train, test = series[:-n_test], series[-n_test:]
    defaults = {"lookback": min(2 * cfg.data.season, len(train) // 3), "horizon": n_test}
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
    series = load_series(cfg)
    n_test = test_count(cfg.data, len(series))
    pred = np.asarray(est.predict(horizon=n_test, y=series[:-n_test])).reshape(-1)
    return scores(series[-n_test:], pred)


def evaluate_baselines(cfg: RunConfig) -> dict[str, dict[str, float]]:
    """The baselines' metrics on the held-out end of the configured series."""
    series = load_series(cfg)
    n_test = test_count(cfg.data, len(series))
    base = baselines(series[:-n_test], n_test, cfg.data.season)
    return {name: scores(series[-n_test:], b) for name, b in base.items()}


def predict_file(est: Forecaster, path: Path, column: str | None,
                 time_column: str | None = None) -> list[list]:  # fmt: skip
    """Rows (time, forecast) for the steps after the series in `path`.

    The time continues the CSV's `time_column` (None: its first column of dates; "none":
    no column) in its own format ("1960-12" -> "1961-01", ...); without one, the steps
    count on from the input's (rows 1..T, so T+1, T+2, ...). `column` None: the CSV's one
    column besides the time column.
    """
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
