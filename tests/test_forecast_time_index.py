"""`deeprnn predict` of a forecast writes the time index that continues its input: the
input's dates in their own format, integers with their step, or the step numbers after it."""

from __future__ import annotations

import numpy as np
import pytest

from deeprnn.cli import main
from deeprnn.data import load_dataset
from deeprnn.data.time_index import continue_index, find_time_column
from deeprnn.errors import InputError

TINY = ["--set", "model.epochs=1", "--set", "model.hidden_size=4", "--set", "model.num_layers=1"]


@pytest.mark.parametrize(
    "values, expected",
    [
        (["1960-10", "1960-11", "1960-12"], ["1961-01", "1961-02"]),  # monthly, as airline
        (["2020-01-15", "2020-04-15"], ["2020-07-15", "2020-10-15"]),  # quarterly
        (["2019-01-01", "2020-01-01"], ["2021-01-01", "2022-01-01"]),  # yearly
        (["2020-01-31", "2020-02-29", "2020-03-31"], ["2020-04-30", "2020-05-31"]),  # month ends
        (["2020-02-27", "2020-02-28", "2020-02-29"], ["2020-03-01", "2020-03-02"]),  # daily
        (["2020/12/30", "2020/12/31"], ["2021/01/01", "2021/01/02"]),
        (
            ["2020-01-01 22:00:00", "2020-01-01 23:00:00"],
            ["2020-01-02 00:00:00", "2020-01-02 01:00:00"],
        ),  # fmt: skip
        (["2020-01-01T00:00", "2020-01-01T00:15"], ["2020-01-01T00:30", "2020-01-01T00:45"]),
        (["1958", "1959", "1960"], ["1961", "1962"]),  # integers: years, or step numbers
        (["0", "5", "10"], ["15", "20"]),
    ],
)
def test_the_index_continues_in_the_inputs_own_format(values, expected):
    assert continue_index(values, len(expected), "t") == expected


def test_an_index_that_cannot_be_continued_says_why_and_how():
    with pytest.raises(InputError) as err:
        continue_index(["2020-01-01", "2020-01-02", "2020-01-06"], 2, "date")
    assert str(err.value) == (
        "time column 'date' is not evenly spaced (steps 1 days, 4 days), so the forecast's "
        "dates cannot be continued; pass --time-column none to number the steps instead"
    )
    with pytest.raises(InputError, match=r"time column 'when' holds 'soon', neither a date"):
        continue_index(["2020-01-01", "soon"], 2, "when")
    with pytest.raises(InputError, match=r"mixes date formats \(e.g. '2020-01' and '2020-02-01'\)"):
        continue_index(["2020-01", "2020-02-01"], 2, "month")
    with pytest.raises(InputError, match=r"needs at least 2 dates"):
        continue_index(["2020-01"], 2, "month")
    with pytest.raises(InputError, match=r"without one constant increasing step; pass --time"):
        continue_index(["1", "2", "4"], 2, "t")


def test_the_time_column_is_the_first_column_of_dates():
    rows = [["1", "1960-01", "3"], ["2", "1960-02", "4"]]
    assert find_time_column(["id", "month", "value"], rows, skip="value") == "month"
    assert find_time_column(["id", "value"], [["1", "3"], ["2", "4"]], skip="value") is None


@pytest.fixture(scope="module")
def forecast_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fc")
    cfg = tmp / "c.yaml"
    cfg.write_text("task: forecast\ndata:\n  dataset: airline_passengers\n  test_size: 12\n"
                   "model:\n  lookback: 12\n", encoding="utf-8")  # fmt: skip
    assert main(["train", str(cfg), "--run-dir", str(tmp / "run"), "--quiet", *TINY]) == 0
    return tmp / "run"


def _predict(run, *args) -> list[list[str]]:
    out = run.parent / "pred.csv"
    assert main(["predict", str(run), *args, "--output", str(out)]) == 0
    return [line.split(",") for line in out.read_text(encoding="utf-8").splitlines()]


def test_predict_continues_the_dates_of_the_input(forecast_run, tmp_path, capsys):
    ds = load_dataset("airline_passengers")
    series = tmp_path / "airline.csv"
    series.write_text("month,passengers\n" + "".join(
        f"{d},{v:g}\n" for d, v in zip(ds.dates, ds.series)), encoding="utf-8")  # fmt: skip
    rows = _predict(forecast_run, "--input", str(series))  # --column: the one other column
    assert rows[0] == ["month", "forecast"] and len(rows) == 13
    assert [r[0] for r in rows[1:]] == [f"1961-{m:02d}" for m in range(1, 13)]
    assert all(float(r[1]) > 0 for r in rows[1:])
    same = _predict(forecast_run, "--input", str(series), "--column", "passengers",
                    "--time-column", "none")  # fmt: skip
    assert same[0] == ["step", "forecast"] and [r[0] for r in same[1:3]] == ["145", "146"]
    assert [r[1] for r in same[1:]] == [r[1] for r in rows[1:]]  # the same forecast
    assert main(["predict", str(forecast_run), "--input", str(series), "--time-column",
                 "date"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "has no time column 'date'; its columns are ['month', 'passengers']" in err


def test_predict_without_dates_numbers_the_steps_after_the_input(forecast_run, tmp_path, capsys):
    y = np.arange(40.0) % 12 + 100
    np.save(tmp_path / "s.npy", y)
    rows = _predict(forecast_run, "--input", str(tmp_path / "s.npy"))
    assert rows[0] == ["step", "forecast"] and [r[0] for r in rows[1:]] == [
        str(t) for t in range(41, 53)
    ]
    wide = tmp_path / "wide.csv"
    wide.write_text("a,b,c\n" + "".join(f"{v},{v},{v}\n" for v in y), encoding="utf-8")
    assert main(["predict", str(forecast_run), "--input", str(wide)]) == 2
    assert "--column must name the CSV column holding the series; its columns are ['a', 'b', " in (
        capsys.readouterr().err
    )
    yearly = tmp_path / "yearly.csv"
    yearly.write_text("year,v\n" + "".join(f"{1900 + i},{v}\n" for i, v in enumerate(y)))
    rows = _predict(forecast_run, "--input", str(yearly), "--column", "v", "--time-column", "year")
    assert rows[0] == ["year", "forecast"] and rows[1][0] == "1940" and rows[-1][0] == "1951"
