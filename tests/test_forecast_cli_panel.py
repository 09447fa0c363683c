"""`task: forecast` on a panel (a long CSV or a folder of CSVs): one global model, per-series
forecasts.csv, backtest.csv, fan charts, baselines (naive, seasonal naive, drift,
statsforecast when installed), predict on a panel, and errors naming the series."""

import csv
import json
import sys

import numpy as np
import pytest

from deeprnn.cli import main
from deeprnn.config import DataConfig, RunConfig
from deeprnn.config_io import ConfigError
from deeprnn.errors import InputError
from deeprnn.forecast import metrics as fm
from deeprnn.forecast import to_panel
from deeprnn.tasks import forecast
from deeprnn.tasks.forecast import (
    STATSFORECAST_MISSING,
    STATSFORECAST_MODELS,
    panel_baselines,
    panel_scores,
    panel_split,
    read_panel,
    statsforecast_baselines,
)

LENGTHS = [40, 44, 48, 52, 56, 60]
HORIZON, SEASON = 4, 6
MODEL = ("model:\n  lookback: 6\n  horizon: 4\n  hidden_size: 8\n  num_layers: 1\n"
         "  epochs: 2\n")  # fmt: skip
PNG = b"\x89PNG\r\n\x1a\n"


def _month(start: int, t: int) -> str:
    """'YYYY-MM' of month `start + t`, counted from 2018-01."""
    m = start + t
    return f"{2018 + m // 12}-{m % 12 + 1:02d}"


def _values(i: int, n: int, rng) -> np.ndarray:
    return (i + 1) * (2 + np.sin(2 * np.pi * np.arange(n) / SEASON)) + rng.normal(0, 0.05, n)


def _long_csv(path, lengths=LENGTHS, seed=0):
    """A long CSV id,date,value: series s0..s5, each from its own month, its rows shuffled
    (each series is sorted by date; series keep the order in which their ids appear)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, n in enumerate(lengths):
        part = [[f"s{i}", _month(i, t), f"{v:.4f}"] for t, v in enumerate(_values(i, n, rng))]
        rows += [part[k] for k in rng.permutation(n)]
    path.write_text("id,date,value\n" + "".join(",".join(r) + "\n" for r in rows))
    return path


def _no_statsforecast(monkeypatch):
    monkeypatch.setitem(sys.modules, "statsforecast", None)  # `import statsforecast` fails
    monkeypatch.setitem(sys.modules, "statsforecast.models", None)


def _read(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def panel_run(tmp_path_factory):
    """A trained long-CSV panel run (statsforecast made unimportable: fast, and its note)."""
    tmp = tmp_path_factory.mktemp("panel")
    _long_csv(tmp / "panel.csv")
    cfg = tmp / "c.yaml"
    data = f"  path: panel.csv\n  id_column: id\n  time_column: date\n  season: {SEASON}\n"
    cfg.write_text("task: forecast\ndata:\n" + data + "  column: value\n" + MODEL)
    with pytest.MonkeyPatch.context() as mp:
        _no_statsforecast(mp)
        assert main(["train", str(cfg), "--run-dir", str(tmp / "run"), "--quiet"]) == 0
    return tmp / "run"


def test_a_panel_run_forecasts_every_series_after_its_end(panel_run):
    rows = _read(panel_run / "forecasts.csv")
    assert list(rows[0]) == ["id", "date", "forecast"]
    assert [r["id"] for r in rows] == [f"s{i}" for i in range(6) for _ in range(HORIZON)]
    for i, n in enumerate(LENGTHS):  # the dates continue each series (which ends at n - 1)
        dates = [r["date"] for r in rows if r["id"] == f"s{i}"]
        assert dates == [_month(i, t) for t in range(n, n + HORIZON)]
    assert all(np.isfinite(float(r["forecast"])) for r in rows)
    saved = json.loads((panel_run / "metrics.json").read_text())
    assert set(saved["metrics"]) == {"mae", "smape", "mase"}
    assert list(saved["baselines"]) == ["seasonal_naive", "naive", "drift"]  # no statsforecast
    # The seasonal panel: seasonal naive is near perfect, naive and drift are not.
    assert saved["baselines"]["seasonal_naive"]["mase"] < 0.5 * saved["baselines"]["naive"]["mase"]


def test_the_backtest_origins_lie_before_the_held_out_part(panel_run):
    rows = _read(panel_run / "backtest.csv")
    assert {"origin", "id", "cutoff", "cutoff_time", "mae", "smape", "mase"} <= set(rows[0])
    assert {r["origin"] for r in rows} == {"0", "1", "2"} and len(rows) == 3 * 6
    for r in rows:
        i = int(r["id"][1:])
        n_train = LENGTHS[i] - HORIZON
        cut = int(r["cutoff"])
        assert cut + HORIZON <= n_train and r["cutoff_time"] == _month(i, cut)
    ends = {int(r["cutoff"]) + HORIZON - (LENGTHS[int(r["id"][1:])] - HORIZON)
            for r in rows if r["origin"] == "2"}  # fmt: skip
    assert ends == {0}  # the last origin's forecast ends where the held-out part begins


def test_the_report_holds_baselines_backtest_and_plots(panel_run):
    report = (panel_run / "report.md").read_text()
    for name in ("| deeprnn |", "| seasonal_naive |", "| naive |", "| drift |", "## Panel",
                 "## Backtest", "| origin | steps before the test part | mae | smape | mase |",
                 f"Note: {STATSFORECAST_MISSING}."):  # fmt: skip
        assert name in report, name
    pictures = ["forecast_s0", "forecast_s1", "forecast_s2", "backtest"]
    for name in pictures:
        assert f"![{name}](plots/{name}.png)" in report
        assert (panel_run / "plots" / f"{name}.png").read_bytes()[:8] == PNG
    assert not (panel_run / "plots" / "forecast_s3.png").exists()  # 3 series drawn at most


def test_evaluate_and_predict_a_panel_run(panel_run, tmp_path, capsys):
    assert main(["evaluate", str(panel_run), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    saved = json.loads((panel_run / "metrics.json").read_text())
    assert scores["metrics"]["mae"] == pytest.approx(saved["metrics"]["mae"], rel=1e-5)
    # Other histories of two of the series (other lengths): forecasts after each.
    histories = _long_csv(tmp_path / "new.csv", lengths=[20, 30], seed=1)
    out = tmp_path / "pred.csv"
    assert main(["predict", str(panel_run), "--input", str(histories), "--output", str(out)]) == 0
    rows = _read(out)
    assert list(rows[0]) == ["id", "date", "forecast"]
    assert [(r["id"], r["date"]) for r in rows] == [
        (f"s{i}", _month(i, t)) for i, n in enumerate([20, 30]) for t in range(n, n + HORIZON)
    ]
    one = tmp_path / "s9.csv"  # one series in a file of its own: named by the file
    one.write_text("value\n" + "".join(f"{v}\n" for v in _values(2, 15, np.random.default_rng(2))))
    assert main(["predict", str(panel_run), "--input", str(one), "--column", "value",
                 "--time-column", "none", "--output", str(out)]) == 0  # fmt: skip
    assert [(r["id"], r["step"]) for r in _read(out)] == [("s9", str(t)) for t in range(16, 20)]


def test_a_folder_panel_with_a_likelihood_draws_fan_charts(tmp_path, monkeypatch, capsys):
    _no_statsforecast(monkeypatch)
    folder = tmp_path / "series"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i, n in enumerate(LENGTHS[:4]):  # one CSV per series: a time column of integers
        body = "".join(f"{100 + t},{v:.4f}\n" for t, v in enumerate(_values(i, n, rng)))
        (folder / f"shop {i}.csv").write_text("week,sales\n" + body)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"task: forecast\ndata:\n  path: {folder}\n  time_column: week\n"
                   f"  season: {SEASON}\n" + MODEL + "  likelihood: gaussian\n")  # fmt: skip
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--run-dir", str(run), "--quiet"]) == 0
    rows = _read(run / "forecasts.csv")
    assert list(rows[0]) == ["id", "week", "forecast", "q0.1", "q0.25", "q0.5", "q0.75", "q0.9"]
    assert [(r["id"], r["week"]) for r in rows] == [
        (f"shop {i}", str(100 + t)) for i, n in enumerate(LENGTHS[:4]) for t in range(n, n + 4)
    ]
    for r in rows:
        qs = [float(r[f"q{q}"]) for q in (0.1, 0.25, 0.5, 0.75, 0.9)]
        assert qs == sorted(qs)
    report = (run / "report.md").read_text()
    for i in range(3):
        assert f"![fan_shop_{i}](plots/fan_shop_{i}.png)" in report
        assert (run / "plots" / f"fan_shop_{i}.png").read_bytes()[:8] == PNG
    assert "coverage" in _read(run / "backtest.csv")[0]
    assert f"Note: {STATSFORECAST_MISSING}." in report
    saved = json.loads((run / "metrics.json").read_text())
    assert list(saved["baselines"]) == ["seasonal_naive", "naive", "drift"]


def test_baselines_and_scores_by_hand():
    panel = to_panel({"a": [1.0, 2, 3, 4, 5, 6, 7], "b": [10.0, 8, 9], "c": [4.0, 5]})
    base = panel_baselines(panel, steps=4, season=3)
    np.testing.assert_allclose(base["naive"], [[7] * 4, [9] * 4, [5] * 4])
    np.testing.assert_allclose(base["seasonal_naive"], [[5, 6, 7, 5], [10, 8, 9, 10], [5] * 4])
    np.testing.assert_allclose(base["drift"], [[8, 9, 10, 11], [8.5, 8, 7.5, 7], [6, 7, 8, 9]])
    two = to_panel({"a": [1.0, 2, 3, 4, 5, 6, 7], "b": [10.0, 8, 9]})
    truth = np.array([[8.0, 9, 10, 11], [9, 9, 9, 9]])
    naive = panel_baselines(two, 4, 2)["naive"]  # a: 7, 7, 7, 7 (errors 1..4); b: exact
    got = panel_scores(two, truth, naive, season=2)
    assert got["mae"] == pytest.approx((2.5 + 0) / 2)
    assert got["smape"] == pytest.approx(100 * np.mean([2 / 15, 4 / 16, 6 / 17, 8 / 18]) / 2)
    assert got["mase"] == pytest.approx((2.5 / 2 + 0 / 1) / 2)  # scales |y_t - y_(t-2)|: 2, 1
    by_series = [fm.mase(truth[0], naive[0], [1, 2, 3, 4, 5, 6, 7], 2),
                 fm.mase(truth[1], naive[1], [10, 8, 9], 2)]  # fmt: skip
    assert got["mase"] == pytest.approx(np.mean(by_series))
    # season 3: b (3 steps) has no lag-3 pair, so no MASE scale: the MASE averages a alone.
    assert panel_scores(two, truth, naive, season=3)["mase"] == pytest.approx(2.5 / 3)
    # A forecast with NaN rows (a model that failed on a series) averages the others.
    partial = np.array([[7.0] * 4, [np.nan] * 4])
    assert panel_scores(two, truth, partial, 3)["mae"] == pytest.approx(2.5)


def test_statsforecast_baselines_when_installed():
    pytest.importorskip("statsforecast", reason="the optional statsforecast extra")
    from statsforecast import models

    pattern = np.tile([1.0, 5, 3, 7], 6)
    trend = 10 + 0.5 * np.arange(20) + np.tile([0.0, 1, 0, -1], 5)
    out, notes = statsforecast_baselines([pattern, trend], steps=4, season=4, ids=["p", "t"])
    assert notes == [] and list(out) == list(STATSFORECAST_MODELS)
    for name, forecasts in out.items():
        assert forecasts.shape == (2, 4)
        np.testing.assert_allclose(forecasts[0], [1, 5, 3, 7], atol=0.3)  # the pattern goes on
        direct = getattr(models, name)(season_length=4).forecast(y=trend, h=4)["mean"]
        np.testing.assert_allclose(forecasts[1], direct)
    np.testing.assert_allclose(out["AutoETS"][1], [20, 21.5, 21, 20.5], atol=0.3)


def test_statsforecast_missing_is_a_note(monkeypatch):
    _no_statsforecast(monkeypatch)
    assert statsforecast_baselines([np.arange(30.0)], 4, 4) == ({}, [STATSFORECAST_MISSING])


def test_bad_panels_name_the_series(tmp_path):
    def long(name, text, **kw):
        (tmp_path / name).write_text(text)
        args = {"id_column": "id", "column": "value", "time_column": "date", **kw}
        return lambda: read_panel(tmp_path / name, **args)

    cases = [
        (long("dup.csv", "id,date,value\na,2020-01,1\na,2020-02,2\nb,2020-01,3\na,2020-02,4\n"),
         r"series 'a' has duplicate timestamps \('2020-02' appears more than once"),
        (long("nan.csv", "id,date,value\na,2020-01,1\nb,2020-01,2\nb,2020-02,\nb,2020-03,nan\n"),
         r"series 'b' has NaN or inf at step 1 \(2 missing in all\)"),
        (long("noid.csv", "sid,date,value\na,2020-01,1\n"), r"has no id column 'id'"),
        (long("noval.csv", "id,date,y\na,2020-01,1\n"), r"has no value column 'value'"),
        (long("notime.csv", "id,when,value\na,2020-01,1\n"), r"has no time column 'date'"),
        (long("odd.csv", "id,date,value\na,2020-01,1\na,soon,2\n"), r"holds 'soon', neither"),
        (lambda: read_panel(tmp_path / "empty", None), r"holds no \.csv files"),
    ]  # fmt: skip
    (tmp_path / "empty").mkdir()
    for reader, message in cases:
        with pytest.raises(InputError, match=message):
            reader()
    # Too short for lookback + horizon: named, via the CLI, before any training.
    text = "id,date,value\n" + "".join(f"long,{_month(0, t)},{t % 6}\n" for t in range(30))
    text += "".join(f"tiny,{_month(0, t)},{t}\n" for t in range(7))
    (tmp_path / "short.csv").write_text(text)
    data = DataConfig(path=str(tmp_path / "short.csv"), id_column="id", column="value")
    panel = read_panel(tmp_path / "short.csv", "id", "value")  # the date column is found
    assert panel.time_name == "date" and panel.panel.ids == ["long", "tiny"]
    with pytest.raises(InputError, match=r"series 'tiny' has 7 steps, fewer than lookback \+ "
                       r"horizon = 6 \+ 4"):  # fmt: skip
        panel_split(RunConfig(task="forecast", data=data, model={"lookback": 6, "horizon": 4}),
                    panel)  # fmt: skip
    bad = RunConfig(task="forecast", data=DataConfig(**{**vars(data), "test_size": 6}),
                    model={"horizon": 4})  # fmt: skip
    with pytest.raises(ConfigError, match=r"data.test_size=6 and model.horizon=4 disagree"):
        panel_split(bad, panel)


def test_a_short_series_fails_the_cli_run_with_its_name(tmp_path, capsys):
    text = "id,step,value\n" + "".join(f"a,{t},{t % 6}\n" for t in range(30))
    (tmp_path / "p.csv").write_text(text + "b,0,1\nb,1,2\nb,2,3\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("task: forecast\ndata:\n  path: p.csv\n  id_column: id\n  time_column: step\n"
                   + MODEL)  # fmt: skip
    assert main(["train", str(cfg), "--run-dir", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "series 'b' has 3 steps, fewer than lookback + horizon = 6 + 4" in err
    assert "Traceback" not in err and not (tmp_path / "run" / "model").exists()


def test_a_single_series_config_is_not_a_panel(tmp_path):
    (tmp_path / "s.csv").write_text("value\n1\n2\n")
    assert not forecast.is_panel_data(DataConfig(path=str(tmp_path / "s.csv"), column="value"))
    assert not forecast.is_panel_data(DataConfig(dataset="airline_passengers"))
    assert forecast.is_panel_data(DataConfig(path=str(tmp_path)))


def test_uneven_dates_fail_before_training_and_short_series_skip_the_backtest(tmp_path, capsys):
    dates = ["2020-01-01", "2020-01-02", "2020-01-05", "2020-01-06"]  # + 7 days a week
    text = "id,date,value\n" + "".join(
        f"{k},{d[:8]}{int(d[8:]) + 7 * w:02d},{w}\n" for k in "ab" for w in range(3) for d in dates
    )
    (tmp_path / "p.csv").write_text(text)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("task: forecast\ndata:\n  path: p.csv\n  id_column: id\n" + MODEL)
    assert main(["train", str(cfg), "--run-dir", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "series 'a': time column 'date' is not evenly spaced" in err
    assert "(in a config: data.time_column: none)" in err and "Traceback" not in err
    # 12 steps, lookback 6, horizon 4: the 8 training steps hold no origin with 6 before it.
    panel = read_panel(tmp_path / "p.csv", "id", "value", "none")
    assert panel.time_name == "step" and panel.times[0][:3] == ["1", "2", "3"]
    bt, lines, pictures = forecast._backtest(None, panel, 4, 6, SEASON, tmp_path)
    assert bt is None and pictures == [] and lines[0] == "## Backtest"
    assert lines[2].startswith("Skipped: the training part of the shortest series (8 steps)")
