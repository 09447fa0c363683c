"""benchmarks/forecast.py: --quick runs end to end and writes its tables; the baselines."""

import importlib.util
import json
import math
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _module():
    spec = importlib.util.spec_from_file_location(
        "forecast_bench", ROOT / "benchmarks" / "forecast.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_forecast_benchmark_quick_mode_writes_every_model_and_set(tmp_path):
    bench = _module()
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "forecast_quick.json").read_text())
    assert report["quick"] and len(report["sets"]) == 2 and "airline" in report["sets"]
    for name, row in report["sets"].items():
        expected = {*bench.BASELINES, bench.DEEPRNN}
        expected |= {bench.PER_SERIES} if row["kind"] == "panel" else set()
        expected |= set(bench.STATS) - set(row["skipped"])  # statsforecast: when installed
        assert set(row["models"]) == expected, name
        assert set(row["skipped"]) <= set(bench.STATS), row["skipped"]
        for model, m in row["models"].items():
            assert math.isfinite(m["mase"]) and m["mase"] >= 0, (name, model)
            assert math.isfinite(m["smape"]) and 0 <= m["smape"] <= 200, (name, model)
            assert m["seconds"] >= 0, (name, model)
        assert row["lookback"] >= 1 and row["horizon"] >= 1 and row["season"] >= 1
    assert set(report["mean"]) >= {*bench.BASELINES, bench.DEEPRNN}
    assert len(report["targets"]) == 3
    assert all(t["met"] in (True, False, None) and t["detail"] for t in report["targets"])
    text = (tmp_path / "forecast_quick.md").read_text()
    assert text.count("- target: ") == 3 and "mean over sets" in text
    for t in report["targets"]:
        assert t["target"] in text


def test_seasonal_naive_is_exact_on_a_perfectly_seasonal_series():
    bench = _module()
    season, horizon = 12, 30  # a horizon longer than the season wraps around it
    pattern = 5 + np.sin(2 * np.pi * np.arange(season) / season)
    y = np.tile(pattern, 13)[: 120 + horizon]  # exactly periodic
    train, test = y[:-horizon], y[-horizon:]
    forecast = bench.seasonal_naive(train, horizon, season)
    np.testing.assert_allclose(forecast, test, atol=1e-12)
    assert bench.scores(train, test, forecast, season)[0] == 0  # in-sample scale 0: 0 / 0
    mase, smape = bench.scores(train, test, forecast, 1)  # a scale > 0
    assert mase < 1e-10 and smape < 1e-10
    assert bench.scores(train, test, bench.naive(train, horizon), season)[0] == math.inf


def test_naive_is_exact_on_a_constant_series_and_drift_extends_a_line():
    bench = _module()
    y = np.full(50, 3.5)
    train, test = y[:-10], y[-10:]
    forecast = bench.naive(train, 10)
    assert np.array_equal(forecast, test)
    assert bench.scores(train, test, forecast, 1) == (0.0, 0.0)
    ramp = np.arange(40, dtype=np.float64)
    rtrain, rtest = ramp[:-6], ramp[-6:]
    np.testing.assert_allclose(bench.drift(rtrain, 6), rtest)
    assert bench.scores(rtrain, rtest, bench.drift(rtrain, 6), 1)[0] < 1e-12
    assert bench.scores(rtrain, rtest, bench.naive(rtrain, 6), 1)[0] == 3.5  # mean of 1..6


def test_lookback_rule():
    bench = _module()
    assert bench.lookback_for(12, 24, 120) == 24
    assert bench.lookback_for(132, 24, 3096) == 264
    assert bench.lookback_for(1, 5, 56) == 12
    assert bench.lookback_for(48, 48, 1296) == 96
    assert bench.lookback_for(12, 12, 30) == 10  # at most a third of the training part


def test_without_statsforecast_its_models_are_skipped_with_a_note(tmp_path, monkeypatch):
    bench = _module()
    monkeypatch.setattr(bench, "statsforecast_models", lambda season: None)
    assert bench.main(["--quick", "--sets", "airline", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "forecast_quick.json").read_text())
    row = report["sets"]["airline"]
    assert set(row["models"]) == {*bench.BASELINES, bench.DEEPRNN}
    assert set(row["skipped"]) == set(bench.STATS)
    assert [t["met"] for t in report["targets"]][1:] == [None, None]  # not measured
    assert "statsforecast is not installed" in (tmp_path / "forecast_quick.md").read_text()
