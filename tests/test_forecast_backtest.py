"""Rolling-origin backtests: what each fit and forecast sees, the tables, refit or not."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator

from deeprnn.errors import InputError
from deeprnn.estimators import Forecaster
from deeprnn.forecast.backtest import backtest


class _Spy(BaseEstimator):
    """Naive forecasts; logs the largest value each fit / predict is shown. The series' values
    are their own step indices, so the log says which steps were seen."""

    log: list = []

    def fit(self, y):
        self.last_ = {k: v[-1] for k, v in y.items()} if isinstance(y, dict) else {0: y[-1]}
        _Spy.log.append(("fit", max(self.last_.values())))
        return self

    def predict(self, horizon, y=None):
        last = {k: v[-1] for k, v in y.items()} if isinstance(y, dict) else {0: y[-1]}
        _Spy.log.append(("predict", max(last.values())))
        out = np.array([np.full(horizon, v) for v in last.values()])
        return out if isinstance(y, dict) else out[0]


@pytest.mark.parametrize("refit", [True, False])
def test_backtest_windows_never_see_the_future(refit):
    _Spy.log = []
    y = np.arange(50, dtype=float)  # value == step index
    bt = backtest(_Spy(), y, start=20, stride=7, horizon=5, refit=refit)
    origins = sorted(bt.table["cutoff"])
    assert origins == [20, 27, 34, 41]  # the last origin leaves a full horizon: 41 + 5 <= 50
    fits = [v for what, v in _Spy.log if what == "fit"]
    preds = [v for what, v in _Spy.log if what == "predict"]
    assert len(fits) == (4 if refit else 1) and len(preds) == 4
    for cut, seen in zip(origins, preds):
        assert seen == cut - 1  # the forecast from origin o reads steps < o only
    assert max(fits) <= (41 - 1 if refit else 20 - 1)
    for _, part in bt.forecasts.groupby("origin"):
        cut = int(part["index"].min())
        assert (part["index"].to_numpy() == np.arange(cut, cut + 5)).all()
        np.testing.assert_array_equal(part["actual"], part["index"])  # the true future steps
    assert (bt.table["fit_steps"] <= bt.table["cutoff"]).all()


def test_backtest_of_a_panel_from_the_end_with_a_forecaster(tmp_path):
    rng = np.random.default_rng(0)
    ys = {k: 10 + np.sin(2 * np.pi * np.arange(n) / 12) + rng.normal(0, 0.1, n)
          for k, n in (("a", 60), ("b", 72))}  # fmt: skip
    est = Forecaster(12, 4, likelihood="gaussian", epochs=2, hidden_size=8, num_layers=1)
    bt = backtest(est, ys, start=-12, stride=4, horizon=4, refit=False, season=12)
    assert len(bt.table) == 6 and set(bt.table["id"]) == {"a", "b"}
    for _, row in bt.table.iterrows():
        n = len(ys[row["id"]])
        assert row["cutoff"] in (n - 12, n - 8, n - 4) and row["fit_steps"] == n - 12
    assert {"mae", "smape", "mase", "coverage"} <= set(bt.table.columns)
    assert (bt.forecasts["lower"] <= bt.forecasts["upper"]).all()
    assert len(bt.summary()) == 3
    assert bt.plot(tmp_path / "bt.png", series="b").stat().st_size > 1000


def test_backtest_rejects_origins_without_a_horizon():
    with pytest.raises(InputError, match=r"no origin leaves a full horizon of 10"):
        backtest(_Spy(), np.arange(30.0), start=25, stride=1, horizon=10)
    with pytest.raises(InputError, match=r"leaves series 0 \(30 steps\) no history"):
        backtest(_Spy(), np.arange(30.0), start=-30, stride=1, horizon=10)
