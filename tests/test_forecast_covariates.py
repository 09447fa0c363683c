"""Covariates of a panel: past, known future, static, calendar features (issue 13 §1)."""

import numpy as np
import pandas as pd
import pytest

from deeprnn.errors import InputError
from deeprnn.estimators import Forecaster, RNNEstimator
from deeprnn.forecast.covariates import calendar_cycles, calendar_features

FAST = dict(hidden_size=16, num_layers=1, seed=0, select="off", relative=True, lr=1e-2,
            validation_fraction=0)  # fmt: skip


def test_calendar_features_encode_the_position_in_each_cycle():
    months = pd.date_range("2001-01-01", periods=12, freq="MS")
    f = calendar_features(months, calendar_cycles("MS"))
    assert f.shape == (12, 2)
    np.testing.assert_allclose(f[0], [0, 1], atol=1e-12)  # January
    np.testing.assert_allclose(f[3], [1, 0], atol=1e-12)  # April: a quarter of the year on
    days = pd.date_range("2001-01-01", periods=14, freq="D")  # a Monday
    g = calendar_features(days, calendar_cycles("D"))
    assert g.shape == (14, 4)
    np.testing.assert_allclose(g[0], g[7][:2].tolist() + g[0][2:].tolist())  # weekly repeat
    assert calendar_cycles("h") == ("hour", "dayofweek") and calendar_cycles(None) == ()


def promo_panel(n=12, length=120, seed=0):
    """Series whose level jumps by 5 on random promotion days known in advance."""
    rng = np.random.default_rng(seed)
    promos = [rng.integers(0, 2, length).astype(float) for _ in range(n)]
    ys = [20 + 5 * p + rng.normal(0, 0.3, length) for p in promos]
    return ys, promos


@pytest.mark.parametrize("decoder", ["direct", "autoregressive"])
def test_known_future_covariates_are_used_for_the_forecast_steps(decoder):
    ys, promos = promo_panel()
    h = 4
    train = [y[:-h] for y in ys]
    known = [p[:-h] for p in promos]
    future = [p[-h:] for p in promos]
    truth = np.stack([y[-h:] for y in ys])
    kw = dict(epochs=20, decoder=decoder, likelihood="gaussian" if decoder != "direct" else None,
              n_samples=50, **FAST)  # fmt: skip
    with_cov = Forecaster(12, h, **kw).fit(train, X_known=known)
    without = Forecaster(12, h, **kw).fit(train)
    err_with = np.abs(with_cov.predict(X_future=future) - truth).mean()
    err_without = np.abs(without.predict() - truth).mean()
    assert err_with < 0.5 * err_without, (err_with, err_without)  # ~2.5 without: promo unknown
    assert with_cov.covariates_["widths"] == [0, 1, 0]


def test_past_covariates_carry_a_leading_indicator():
    rng = np.random.default_rng(1)
    xs = [rng.normal(0, 1, 150) for _ in range(10)]
    ys = [
        10 + np.r_[np.zeros(3), 3 * x[:-3]] + rng.normal(0, 0.1, 150) for x in xs
    ]  # y_t = 3 x_(t-3)
    h = 3
    truth = np.stack([y[-h:] for y in ys])
    with_cov = Forecaster(12, h, epochs=20, **FAST).fit([y[:-h] for y in ys],
                                                       X=[x[:-h] for x in xs])  # fmt: skip
    without = Forecaster(12, h, epochs=20, **FAST).fit([y[:-h] for y in ys])
    err_with = np.abs(with_cov.predict() - truth).mean()
    err_without = np.abs(without.predict() - truth).mean()
    assert err_with < 0.5 * err_without, (err_with, err_without)
    with pytest.raises(InputError, match="known only up to the forecast origin"):
        with_cov.predict(horizon=6)
    with pytest.raises(InputError, match="autoregressive decoder cannot feed them forward"):
        Forecaster(12, h, decoder="autoregressive", epochs=1, **FAST).fit(ys, X=xs)


def test_static_covariates_and_calendar_features_reach_the_network(tmp_path):
    idx = pd.date_range("2000-01-01", periods=60, freq="MS")
    rng = np.random.default_rng(2)
    panel = {f"s{k}": pd.Series(50 + 10 * np.sin(np.arange(60) / 2) + rng.normal(0, 1, 60),
                                index=idx) for k in range(4)}  # fmt: skip
    static = {f"s{k}": [k % 2, float(k)] for k in range(4)}
    fc = Forecaster(12, 3, epochs=3, **FAST).fit(panel, static=static)
    assert fc.covariates_["cycles"] == ["month"] and fc.covariates_["widths"] == [0, 2, 2]
    # value, log scale, future flag, 2 calendar channels, 2 static: 7 inputs over L + H steps
    assert fc._spec["n_inputs"] == 7
    first = fc.predict()
    assert first.shape == (4, 3)
    # Calendar features are generated for any horizon: iterated forecasts need no X_future.
    assert fc.predict(horizon=7).shape == (4, 7)
    frame = fc.predict_frame()
    assert list(frame["time"][:3]) == list(pd.date_range("2005-01-01", periods=3, freq="MS"))
    # A new series after its own history: its static covariates come with it.
    other = {"new": panel["s1"]}
    a = fc.predict(y=other, static={"new": [1, 1.0]})
    b = fc.predict(y=other, static={"new": [0, 3.0]})
    assert not np.allclose(a, b)
    np.testing.assert_allclose(fc.predict(y={"s1": panel["s1"]}), first[1:2], rtol=1e-5)
    back = RNNEstimator.load(fc.save(tmp_path / "fc"))
    np.testing.assert_allclose(back.predict(), first, rtol=1e-5)
    with pytest.raises(InputError, match="were not in the training panel: pass static"):
        fc.predict(y=other)
    off = Forecaster(12, 3, epochs=1, calendar=False, **FAST).fit(panel)
    assert off.covariates_ is None


def test_bad_covariates_get_errors_naming_the_series():
    ys, promos = promo_panel(n=3, length=60)
    ids = {f"s{k}": y for k, y in enumerate(ys)}
    known = {f"s{k}": p for k, p in enumerate(promos)}
    with pytest.raises(InputError, match=r"X_known has no covariates for series \['s2'\]"):
        Forecaster(8, 2, epochs=1, **FAST).fit(ids, X_known={k: known[k] for k in ("s0", "s1")})
    bad = dict(known, s1=np.r_[known["s1"][:-1], np.nan])
    with pytest.raises(InputError, match="X_known of series 's1' has NaN or inf at step 59"):
        Forecaster(8, 2, epochs=1, **FAST).fit(ids, X_known=bad)
    with pytest.raises(InputError, match=r"X of series 's0' has shape \(10, 1\)"):
        Forecaster(8, 2, epochs=1, **FAST).fit(ids, X={k: v[:10] for k, v in known.items()})
    fc = Forecaster(8, 2, epochs=1, **FAST).fit(ids, X_known=known)
    with pytest.raises(InputError, match="pass X_future"):
        fc.predict()
    with pytest.raises(InputError, match=r"X_future has no rows for series \['s1', 's2'\]"):
        fc.predict(X_future={"s0": [1, 0]})
    with pytest.raises(InputError, match=r"X_future of series 's0' has shape \(1, 1\)"):
        fc.predict(X_future={k: [[1]] for k in ids})
    assert fc.predict(X_future={k: [1, 0] for k in ids}).shape == (3, 2)
    plain = Forecaster(8, 2, epochs=1, **FAST).fit(ids)
    with pytest.raises(InputError, match="fitted without covariates; X_future must be None"):
        plain.predict(X_future={k: [1, 0] for k in ids})
    with pytest.raises(InputError, match="X_known and static covariates are read on the panel"):
        Forecaster(8, 2, epochs=1, **FAST).fit(ys[0], X_known=promos[0])


def test_long_dataframes_carry_covariate_columns():
    ys, promos = promo_panel(n=3, length=48)
    times = pd.date_range("2010-01-01", periods=48, freq="MS")
    frame = pd.concat([pd.DataFrame({"id": f"s{k}", "time": times, "value": y})
                       for k, y in enumerate(ys)])  # fmt: skip
    # Rows in any order: they are aligned by id and time.
    known = pd.concat([pd.DataFrame({"id": f"s{k}", "time": times, "promo": p})
                       for k, p in enumerate(promos)]).sample(frac=1, random_state=0)  # fmt: skip
    fc = Forecaster(12, 2, epochs=2, **FAST).fit(frame, X_known=known)
    assert fc.covariates_["widths"] == [0, 3, 0]  # promo, then sin / cos of the month
    np.testing.assert_allclose(
        fc.last_known_[1, -1, 0],
        (promos[1][-1] - fc.covariates_["scalers"]["known"].mean_[0])
        / fc.covariates_["scalers"]["known"].scale_[0],
    )
    out = fc.predict_frame(X_future={f"s{k}": [0, 1] for k in range(3)})
    assert len(out) == 6 and out["time"].iloc[0] == pd.Timestamp("2014-01-01")
