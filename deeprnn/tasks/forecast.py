"""Forecasting: fit on the start of a series, forecast its held-out end, beat seasonal naive."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deeprnn import plots
from deeprnn.config import DataConfig, RunConfig
from deeprnn.data import load_csv, load_dataset, load_numpy
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


def predict_file(est: Forecaster, path: Path, column: str | None) -> list[list]:
    """Rows (step, forecast) for the steps after the series in `path`."""
    cfg = RunConfig(task="forecast", data=DataConfig(path=str(path), column=column))
    pred = np.asarray(est.predict(y=load_series(cfg))).reshape(-1)
    return [["step", "forecast"]] + [[i + 1, float(v)] for i, v in enumerate(pred)]
