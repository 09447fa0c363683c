"""Differencing as a Forecaster transform, and the default Forecaster choosing its transform
and lookback by a backtest on the training data (issue 13 §3)."""

import numpy as np
import pandas as pd
import pytest

import deeprnn.estimators.forecaster as forecaster_module
from deeprnn.errors import InputError
from deeprnn.estimators import Forecaster, RNNEstimator
from deeprnn.forecast.selection import TRANSFORMS, transform_args
from deeprnn.forecast.transforms import difference, integrate, season_of

TINY = dict(hidden_size=8, num_layers=1, epochs=4, seed=0)


def growing(n=120, season=12):
    t = np.arange(n)
    return 50 * np.exp(t / 80) * (1 + 0.2 * np.sin(2 * np.pi * t / season))


@pytest.mark.parametrize("lag", [1, 3, 12])
def test_integrate_inverts_difference(lag):
    rng = np.random.default_rng(lag)
    m = rng.normal(size=(40, 2)).cumsum(axis=0)
    u = difference(m, lag)
    assert u.shape == (40 - lag, 2)
    # Integrate the last 10 differences from the 'lag' levels before them.
    levels = integrate(m[None, 30 - lag : 30], u[None, 30 - lag :], lag)[0]
    np.testing.assert_allclose(levels, m[30:])
    assert difference(m, 0) is m
    np.testing.assert_array_equal(integrate(m[None, :0], u[None], 0)[0], u)


def test_first_differences_extrapolate_a_trend_beyond_the_training_range():
    t = np.arange(150.0)
    y = 3.0 * t + np.random.default_rng(0).normal(0, 0.5, 150)
    train, test = y[:-12], y[-12:]
    common = dict(relative=False, log=False, select="off", hidden_size=16, num_layers=1,
                  epochs=60, lr=1e-2, seed=0)  # fmt: skip
    diffed = Forecaster(12, 12, difference=1, **common).fit(train)
    levels = Forecaster(12, 12, difference=0, **common).fit(train)
    err_diff = np.abs(diffed.predict() - test).mean()
    err_levels = np.abs(levels.predict() - test).mean()
    # The next 12 steps lie above every training value: levels cannot reach them, steps can.
    assert err_diff < 3.0 < err_levels


def test_validation_targets_are_integrated_back_to_the_series(monkeypatch):
    captured = []

    class Capture(forecaster_module._Validation):
        def __init__(self, *args):
            super().__init__(*args)
            captured.append(self)

    monkeypatch.setattr(forecaster_module, "_Validation", Capture)
    y = growing(100)
    est = Forecaster(12, 4, difference=12, log=True, relative=False, select="off",
                     validation_fraction=0.2, **TINY).fit(y)  # fmt: skip
    (val,) = captured
    n_val = round(100 * 0.2)
    # Window i forecasts steps 100 - n_val + i .. + 3 of y, in y's own units.
    want = np.stack([y[100 - n_val + i : 100 - n_val + i + 4] for i in range(n_val - 3)])
    np.testing.assert_allclose(val.truth.reshape(want.shape), want, rtol=1e-9)
    assert set(est.defaults_) == {"season"}  # every transform was given


def test_predict_after_other_history_needs_lookback_plus_lag_steps():
    y = growing(100)
    est = Forecaster(12, 4, difference=12, relative=False, log=False, select="off",
                     **TINY).fit(y)  # fmt: skip
    assert est.last_window_.shape == (24, 1)
    np.testing.assert_allclose(est.predict(y=y), est.predict())
    assert est.predict(horizon=10).shape == (10,)
    with pytest.raises(InputError, match=r"lookback \+ difference 12 = 24"):
        est.predict(y=y[:20])
    with pytest.raises(InputError, match="difference must be an int >= 0"):
        Forecaster(12, 4, difference=-1, select="off", **TINY).fit(y)


def test_the_default_forecaster_backtests_its_transform_and_lookback_and_reports_them():
    idx = pd.date_range("2000-01-01", periods=120, freq="MS")
    y = pd.Series(growing(120), index=idx)
    est = Forecaster(12, 6, **TINY).fit(y)
    d = est.defaults_
    assert d["season"]["value"] == 12  # monthly time stamps
    table = est.selection_
    scored = table[table["note"] == ""]
    # Every transform applies to this positive seasonal series, at the given lookback.
    assert set(scored.loc[scored["lookback"] == 12, "transform"]) == set(TRANSFORMS)
    top = table.iloc[0]
    assert top["mase"] == scored["mase"].min()
    args = transform_args(top["transform"], 12)
    for key in ("relative", "log", "difference"):
        assert d[key]["value"] == args[key] and "backtest" in d[key]["reason"]
    # Longer lookbacks were tried with the best transform at 12 only.
    longer = scored[scored["lookback"] > 12]
    assert len(longer) and longer["transform"].nunique() == 1
    assert d["lookback"]["value"] == int(top["lookback"])
    assert est.last_window_.shape[0] == d["lookback"]["value"] + args["difference"]
    assert est.get_params()["lookback"] == 12 and est.get_params()["relative"] is None
    assert est.predict().shape == (6,)


def test_fixed_transform_arguments_narrow_the_candidates_and_select_off_skips_them():
    y = growing(120)
    est = Forecaster(12, 6, relative=False, select="transform", season=12, **TINY).fit(y)
    assert (est.selection_["lookback"] == 12).all()
    assert set(est.selection_["transform"]) == {"none", "log", "difference",
                                                "seasonal_difference"}  # fmt: skip
    assert "relative" not in est.defaults_ and "lookback" not in est.defaults_
    off = Forecaster(12, 6, select="off", **TINY).fit(y)
    assert off.selection_ is None
    assert {k: off.defaults_[k]["value"] for k in ("relative", "log", "difference")} == {
        "relative": True, "log": False, "difference": 0}  # fmt: skip
    with_x = Forecaster(12, 6, **TINY).fit(y, X=np.sin(np.arange(120.0))[:, None])
    assert with_x.selection_ is None and "covariates" in with_x.defaults_["log"]["reason"]


def test_a_panel_chooses_between_relative_and_level_scaling():
    rng = np.random.default_rng(1)
    ys = [growing(90 + 10 * k) * (k + 1) + rng.normal(0, 1, 90 + 10 * k) for k in range(3)]
    est = Forecaster(12, 6, **TINY).fit(ys)
    scored = est.selection_[est.selection_["note"] == ""]
    assert set(scored["transform"]) == {"none", "relative"}
    assert est.defaults_["log"]["value"] is False and est.defaults_["difference"]["value"] == 0
    assert est.predict().shape == (3, 6)
    with pytest.raises(InputError, match="without log and differencing"):
        Forecaster(12, 6, difference=1, **TINY).fit(ys)


def test_save_and_load_keep_the_chosen_transform(tmp_path):
    y = growing(120)
    est = Forecaster(12, 6, season=12, **TINY).fit(y)
    back = RNNEstimator.load(est.save(tmp_path / "fc"))
    assert back.defaults_ == est.defaults_
    np.testing.assert_allclose(back.predict(), est.predict(), rtol=1e-6)


def test_season_is_read_from_time_stamps():
    def series(freq):
        return pd.Series(np.arange(30.0), index=pd.date_range("2001-01-01", periods=30, freq=freq))

    assert [season_of(series(f)) for f in ("MS", "QS", "D", "h", "W")] == [12, 4, 7, 24, 52]
    assert season_of(np.arange(30.0)) == 1
    assert season_of({"a": series("MS")}) == 12


def test_bad_selection_arguments_get_clear_errors():
    y = growing(120)
    with pytest.raises(InputError, match="select must be one of"):
        Forecaster(12, 6, select="maybe", **TINY).fit(y)
    with pytest.raises(InputError, match="season"):
        Forecaster(12, 6, season=0, **TINY).fit(y)
