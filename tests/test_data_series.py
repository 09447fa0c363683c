"""make_windows, time_split and SeriesScaler."""

import json

import numpy as np
import pytest

from deeprnn.data import SeriesScaler, make_windows, time_split


def test_make_windows_univariate_values():
    X, Y = make_windows(np.arange(10), lookback=3, horizon=2)
    assert X.shape == (6, 3, 1) and Y.shape == (6, 2)
    assert X.dtype == np.float32 and Y.dtype == np.float32
    np.testing.assert_array_equal(X[0, :, 0], [0, 1, 2])
    np.testing.assert_array_equal(Y[0], [3, 4])
    np.testing.assert_array_equal(X[-1, :, 0], [5, 6, 7])
    np.testing.assert_array_equal(Y[-1], [8, 9])


def test_make_windows_stride_multivariate_and_covariates():
    series = np.stack([np.arange(12), 100 + np.arange(12)], axis=1)  # (12, 2)
    cov = -np.arange(12.0)
    X, Y = make_windows(series, lookback=4, horizon=3, stride=2, covariates=cov, dtype=np.float64)
    assert X.shape == (3, 4, 3) and Y.shape == (3, 3, 2)
    np.testing.assert_array_equal(X[1], [[2, 102, -2], [3, 103, -3], [4, 104, -4], [5, 105, -5]])
    np.testing.assert_array_equal(Y[1], [[6, 106], [7, 107], [8, 108]])
    np.testing.assert_array_equal(X[:, 0, 0], [0, 2, 4])


def test_make_windows_exact_fit_gives_one_window():
    X, Y = make_windows([1.0, 2.0, 3.0], lookback=2, horizon=1)
    assert X.shape == (1, 2, 1) and Y.tolist() == [[3.0]]


def test_make_windows_errors():
    with pytest.raises(
        ValueError, match=r"series has 20 steps, shorter than lookback \+ horizon = 24 \+ 12 = 36"
    ):
        make_windows(np.zeros(20), lookback=24, horizon=12)
    with pytest.raises(ValueError, match="lookback must be an int >= 1, got 0"):
        make_windows(np.zeros(20), lookback=0, horizon=1)
    with pytest.raises(ValueError, match="stride must be an int >= 1, got 1.5"):
        make_windows(np.zeros(20), lookback=2, horizon=1, stride=1.5)
    with pytest.raises(ValueError, match="series contains NaN or inf at step 4"):
        make_windows([0, 1, 2, 3, np.nan, 5], lookback=2, horizon=1)
    with pytest.raises(ValueError, match="covariates have 5 steps but the series has 6"):
        make_windows(np.zeros(6), lookback=2, horizon=1, covariates=np.zeros(5))
    with pytest.raises(ValueError, match=r"series must have shape \(T,\) or \(T, C\)"):
        make_windows(np.zeros((2, 3, 4)), lookback=1, horizon=1)
    with pytest.raises(TypeError, match="series holds <U1 values"):
        make_windows(list("abcdef"), lookback=2, horizon=1)


def test_time_split_indices_in_time_order():
    train, val, test = time_split(100, val=0.15, test=0.15)
    assert (len(train), len(val), len(test)) == (70, 15, 15)
    np.testing.assert_array_equal(np.concatenate([train, val, test]), np.arange(100))
    assert train[-1] < val[0] and val[-1] < test[0]


def test_time_split_arrays_and_zero_parts():
    data = np.arange(40).reshape(20, 2)
    train, val, test = time_split(data, val=0.25, test=0.0)
    assert train.shape == (15, 2) and val.shape == (5, 2) and test.shape == (0, 2)
    np.testing.assert_array_equal(val[0], [30, 31])
    # A requested part is never rounded away.
    assert [len(p) for p in time_split(5, val=0.05, test=0.05)] == [3, 1, 1]


def test_time_split_errors():
    with pytest.raises(ValueError, match=r"val must be a fraction in \[0, 1\), got 1.2"):
        time_split(10, val=1.2)
    with pytest.raises(ValueError, match="2 steps leave no training data"):
        time_split(2, val=0.5, test=0.5 - 1e-9)
    with pytest.raises(ValueError, match="data must be a length or an array"):
        time_split(np.float64(3.0))


def test_series_scaler_per_channel_and_inverse():
    rng = np.random.default_rng(0)
    train = rng.normal([1.0, -5.0], [2.0, 0.5], size=(500, 2))
    scaler = SeriesScaler().fit(train)
    np.testing.assert_allclose(scaler.mean_, train.mean(axis=0))
    np.testing.assert_allclose(scaler.scale_, train.std(axis=0))
    z = scaler.transform(train)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-12)
    np.testing.assert_allclose(scaler.inverse_transform(z), train)
    windows = np.stack([train[:10], train[10:20]])  # (2, 10, 2): last axis is channels
    np.testing.assert_allclose(scaler.transform(windows)[1], z[10:20])
    forecast = z[:4, 1]  # a forecast of channel 1 alone
    np.testing.assert_allclose(scaler.inverse_transform(forecast, channel=1), train[:4, 1])


def test_series_scaler_univariate_targets_constant_channel_and_options():
    series = np.array([1.0, 2.0, 3.0, 4.0])
    scaler = SeriesScaler().fit(series)
    Y = np.array([[3.0, 4.0], [5.0, 6.0]])  # (N, horizon) targets of the same series
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(Y)), Y)
    np.testing.assert_allclose(scaler.transform(series), (series - 2.5) / np.sqrt(1.25))
    const = SeriesScaler().fit(np.full((5, 1), 7.0))
    np.testing.assert_array_equal(const.scale_, [1.0])
    np.testing.assert_array_equal(const.transform([[7.0], [8.0]]), [[0.0], [1.0]])
    no_mean = SeriesScaler(with_mean=False).fit(series)
    np.testing.assert_allclose(no_mean.transform(series), series / np.sqrt(1.25))
    assert SeriesScaler(with_std=False).fit_transform(series).tolist() == [-1.5, -0.5, 0.5, 1.5]


def test_series_scaler_json_round_trip():
    scaler = SeriesScaler().fit(np.array([[1.0, 10.0], [3.0, 30.0]]))
    restored = SeriesScaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    x = np.array([[2.0, 20.0], [5.0, 0.0]])
    np.testing.assert_array_equal(restored.transform(x), scaler.transform(x))
    assert SeriesScaler.from_dict(SeriesScaler(with_std=False).to_dict()).with_std is False


def test_series_scaler_errors():
    with pytest.raises(RuntimeError, match=r"not fitted; call fit\(train\) first"):
        SeriesScaler().transform([1.0])
    with pytest.raises(ValueError, match="fitted on 2 channels"):
        SeriesScaler().fit(np.ones((4, 2))).transform(np.ones((4, 3)))
    with pytest.raises(ValueError, match="got NaN or inf"):
        SeriesScaler().fit([1.0, np.inf])
    with pytest.raises(ValueError, match="empty array"):
        SeriesScaler().fit([])
