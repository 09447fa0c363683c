"""SequenceRegressor and Forecaster learn real tasks, beat their baselines, survive save /
load, and reject bad input with errors that name the cause."""

import numpy as np
import pytest

from deeprnn.errors import InputError
from deeprnn.estimators import Forecaster, SequenceRegressor

FAST = {"num_layers": 1, "hidden_size": 16, "patience": None, "validation_fraction": 0}
PERIOD = 20


def noisy_waves(n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Sine waves (T_i,) of random length, amplitude and frequency; targets (N, 2):
    amplitude and frequency."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for _ in range(n):
        steps, amp, freq = int(rng.integers(20, 40)), rng.uniform(0.5, 2), rng.uniform(0.05, 0.2)
        t = np.arange(steps)
        X.append(amp * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6)) + rng.normal(0, 0.1, steps))
        y.append((amp, freq))
    return X, np.array(y)


@pytest.fixture(scope="module")
def amplitude():
    X, y = noisy_waves(200, seed=0)
    reg = SequenceRegressor(epochs=10, batch_size=16, **FAST).fit(X, y[:, 0] * 100)
    return reg, noisy_waves(100, seed=1)


@pytest.fixture(scope="module")
def sine():
    rng = np.random.default_rng(0)
    return np.sin(2 * np.pi * np.arange(400) / PERIOD) + rng.normal(0, 0.2, 400)


@pytest.fixture(scope="module")
def forecaster(sine):
    return Forecaster(40, PERIOD, relative=False, epochs=30, **FAST).fit(sine[:360])


def test_regressor_learns_the_amplitude(amplitude):
    reg, (X_test, y_test) = amplitude
    assert reg.score(X_test, y_test[:, 0] * 100) > 0.8  # R^2; predicting the mean gives 0
    pred = reg.predict(X_test)
    assert pred.shape == (100,)
    assert 40 < pred.mean() < 160  # back in the units of y (amplitudes 0.5 .. 2, times 100)


def test_regressor_with_several_targets():
    X, y = noisy_waves(40, seed=2)
    reg = SequenceRegressor(epochs=2, **FAST).fit(X, y)
    assert reg.predict(X[:3]).shape == (3, 2) and reg.n_outputs_ == 2
    assert np.isfinite(reg.score(X, y))


def test_forecaster_beats_seasonal_naive_on_a_noisy_sine(forecaster, sine):
    model, naive = [], []
    for origin in range(360, 381, 5):  # forecasts from five origins after the training data
        truth = sine[origin : origin + PERIOD]
        model.append(np.abs(forecaster.predict(y=sine[:origin]) - truth).mean())
        naive.append(np.abs(sine[origin - PERIOD : origin] - truth).mean())
    assert np.mean(model) < 0.9 * np.mean(naive)


def test_forecast_after_the_training_data_and_iterated_horizons(forecaster, sine):
    direct = forecaster.predict()
    np.testing.assert_array_equal(direct, forecaster.predict(y=sine[:360]))
    assert direct.shape == (PERIOD,)
    longer = forecaster.predict(horizon=50)  # 3 blocks of 20, fed back, cut to 50
    assert longer.shape == (50,)
    np.testing.assert_allclose(longer[:PERIOD], direct, rtol=1e-6)
    assert forecaster.score(sine[360:380]) == pytest.approx(-np.abs(direct - sine[360:380]).mean())


def test_forecaster_with_several_series_and_covariates():
    rng = np.random.default_rng(0)
    t = np.arange(120)
    y = np.stack([np.sin(t / 4), np.cos(t / 4)], axis=1) + rng.normal(0, 0.1, (120, 2))
    X = np.stack([t % 7, np.sin(t / 4)], axis=1).astype(float)
    f = Forecaster(10, 4, epochs=2, **FAST).fit(y, X)
    assert (f.n_series_, f.n_covariates_) == (2, 2)
    assert f.predict().shape == (4, 2)
    assert f.predict(horizon=6, X_future=X[:4]).shape == (6, 2)
    assert f.predict(y=y[:50], X=X[:50]).shape == (4, 2)
    with pytest.raises(InputError, match="first 4 forecast steps: pass X_future"):
        f.predict(horizon=6)
    with pytest.raises(InputError, match="fitted with 2 covariates; pass X"):
        f.predict(y=y[:50])
    with pytest.raises(InputError, match="X has 49 steps but y has 50"):
        f.predict(y=y[:50], X=X[:49])


def test_forecaster_takes_a_pandas_series():
    import pandas as pd

    series = pd.Series(np.sin(np.arange(60) / 3))
    f = Forecaster(8, 2, epochs=1, **FAST).fit(series)
    assert f.predict().shape == (2,)


def test_forecaster_bad_input(forecaster, sine):
    with pytest.raises(InputError, match=r"y has 30 steps, shorter than lookback \+ horizon"):
        Forecaster(24, 12, **FAST).fit(sine[:30])
    bad = sine[:100].copy()
    bad[37] = np.inf
    with pytest.raises(InputError, match="y contains NaN or inf at step 37"):
        Forecaster(10, 2, **FAST).fit(bad)
    with pytest.raises(InputError, match="leaving 33 for training"):
        Forecaster(24, 12, validation_fraction=0.2).fit(sine[:45])
    with pytest.raises(InputError, match="a forecast needs the last lookback = 40"):
        forecaster.predict(y=sine[:39])
    with pytest.raises(InputError, match="fitted without covariates"):
        forecaster.predict(y=sine[:50], X=np.zeros((50, 1)))


@pytest.mark.parametrize("which", ["regressor", "forecaster"])
def test_save_load_round_trip(which, amplitude, forecaster, sine, tmp_path):
    est = amplitude[0] if which == "regressor" else forecaster
    est.save(tmp_path)
    loaded = type(est).load(tmp_path)
    if which == "regressor":
        X = amplitude[1][0]
        np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    else:
        np.testing.assert_array_equal(loaded.predict(horizon=30), est.predict(horizon=30))
        np.testing.assert_array_equal(loaded.last_window_, est.last_window_)
        assert loaded.scaler_.to_dict() == est.scaler_.to_dict()
