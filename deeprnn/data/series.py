"""Time series for forecasting: sliding windows, a time-ordered split and a scaler.

The usual order: `time_split` the raw series, fit `SeriesScaler` on the train part only,
transform every part, then `make_windows` on each part. Nothing here shuffles time.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from deeprnn.errors import InputError, InputTypeError, NotFittedError


def _as_series(x: Any, name: str) -> np.ndarray:
    """A finite numeric array (T,) or (T, C) as float64."""
    try:
        a = np.asarray(x)
    except ValueError as err:
        raise InputError(f"{name} is ragged; expected an array (T,) or (T, C)") from err
    if a.dtype.kind not in "biuf":
        raise InputTypeError(f"{name} holds {a.dtype} values; expected numbers")
    if a.ndim not in (1, 2):
        raise InputError(f"{name} must have shape (T,) or (T, C), got {a.shape}")
    if len(a) == 0 or a.size == 0:
        raise InputError(f"{name} is empty (shape {a.shape}); expected at least one step")
    a = a.astype(np.float64, copy=False)
    if not np.isfinite(a).all():
        step = int(np.argwhere(~np.isfinite(a))[0][0])
        raise InputError(f"{name} contains NaN or inf at step {step}; fill or drop it first")
    return a


def _floats(x: Any, name: str) -> np.ndarray:
    """x as a float64 array, or InputError / InputTypeError naming `name`."""
    try:
        return np.asarray(x, dtype=np.float64)
    except (ValueError, TypeError) as err:
        kind = InputError if isinstance(err, ValueError) else InputTypeError
        raise kind(f"{name} must be a numeric array, got {type(x).__name__}: {err}") from None


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def make_windows(
    series: Any,
    lookback: int,
    horizon: int,
    stride: int = 1,
    covariates: Any = None,
    dtype: Any = np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a series into (past, future) training pairs.

    Window i starts at s = i * stride: its input is steps s .. s+lookback-1 and its target
    the next `horizon` steps.

    Args:
        series: (T,) or (T, C) values.
        lookback: steps of history per input.
        horizon: steps to predict.
        stride: steps between window starts.
        covariates: (T,) or (T, K) extra inputs aligned with the series (calendar, weather);
            appended to the input features, never predicted.
        dtype: dtype of the outputs (float32 matches torch's default).
    Returns:
        X (N, lookback, C [+ K]) and Y (N, horizon) for a (T,) series or (N, horizon, C).
    """
    try:
        if np.dtype(dtype).kind != "f":
            raise TypeError
    except TypeError:
        raise InputTypeError(f"dtype must be a float dtype, got {dtype!r}") from None
    values = _as_series(series, "series")
    lookback = _positive_int("lookback", lookback)
    horizon = _positive_int("horizon", horizon)
    stride = _positive_int("stride", stride)
    T = len(values)
    if T < lookback + horizon:
        raise InputError(
            f"series has {T} steps, shorter than lookback + horizon = {lookback} + {horizon} "
            f"= {lookback + horizon}; use a shorter lookback or horizon"
        )
    inputs = values.reshape(T, -1)
    if covariates is not None:
        cov = _as_series(covariates, "covariates")
        cov = cov.reshape(len(cov), -1)
        if len(cov) != T:
            raise InputError(f"covariates have {len(cov)} steps but the series has {T}")
        inputs = np.concatenate([inputs, cov], axis=1)
    starts = np.arange(0, T - lookback - horizon + 1, stride)
    past = starts[:, None] + np.arange(lookback)  # (N, lookback) step indices
    future = starts[:, None] + lookback + np.arange(horizon)  # (N, horizon)
    return inputs[past].astype(dtype), values[future].astype(dtype)


def _split_sizes(n: int, val: float, test: float) -> tuple[int, int, int]:
    for name, frac in (("val", val), ("test", test)):
        if isinstance(frac, bool) or not isinstance(frac, numbers.Real) or not 0 <= frac < 1:
            raise InputError(f"{name} must be a fraction in [0, 1), got {frac!r}")
    # A requested part is never rounded away to nothing.
    n_val = max(int(round(n * val)), 1 if val > 0 else 0)
    n_test = max(int(round(n * test)), 1 if test > 0 else 0)
    n_train = n - n_val - n_test
    if n_train < 1:
        raise InputError(
            f"{n} steps leave no training data with val={val} ({n_val} steps) and "
            f"test={test} ({n_test} steps)"
        )
    return n_train, n_val, n_test


def time_split(data: Any, val: float = 0.15, test: float = 0.15) -> tuple[Any, Any, Any]:
    """Split in time order into train, validation and test parts (never shuffled).

    Args:
        data: a length n (int), giving index arrays, or an array split along axis 0.
        val, test: fractions of the steps for the last two parts (0 for none).
    Returns:
        (train, val, test): consecutive index arrays or array slices, earliest first.
    """
    if isinstance(data, (int, np.integer)) and not isinstance(data, bool):
        n = int(data)
        n_train, n_val, _ = _split_sizes(n, val, test)
        idx = np.arange(n)
    else:
        idx = np.asarray(data)
        if idx.ndim == 0:
            raise InputError(f"data must be a length or an array, got {data!r}")
        n_train, n_val, _ = _split_sizes(len(idx), val, test)
    return idx[:n_train], idx[n_train : n_train + n_val], idx[n_train + n_val :]


class SeriesScaler:
    """Standardise each channel with the mean and std of the training part.

    Channels are the last axis of (T, C) or windows (N, T, C); a (T,) series has one
    channel, so a univariate scaler also transforms targets (N, horizon).

    Args:
        with_mean: subtract the mean.
        with_std: divide by the standard deviation (a constant channel is left unscaled).
    """

    def __init__(self, with_mean: bool = True, with_std: bool = True):
        self.with_mean = with_mean
        self.with_std = with_std

    def fit(self, x: Any) -> SeriesScaler:
        """Learn `mean_` and `scale_` (C,) from training data only; returns self."""
        a = _floats(x, "SeriesScaler.fit")
        if a.size == 0:
            raise InputError("cannot fit SeriesScaler on an empty array")
        if not np.isfinite(a).all():
            raise InputError("SeriesScaler.fit got NaN or inf; fill or drop them first")
        flat = a.reshape(-1, 1) if a.ndim <= 1 else a.reshape(-1, a.shape[-1])
        with np.errstate(over="ignore", invalid="ignore"):
            self.mean_ = flat.mean(axis=0) if self.with_mean else np.zeros(flat.shape[1])
            std = flat.std(axis=0)
        if not (np.isfinite(self.mean_).all() and np.isfinite(std).all()):
            raise InputError(
                "SeriesScaler.fit: the values are too large for their mean and standard "
                f"deviation to be finite (largest |value| {np.abs(flat).max():.3g})"
            )
        self.scale_ = np.where(std > 0, std, 1.0) if self.with_std else np.ones(flat.shape[1])
        return self

    def _stats(self, x: np.ndarray, channel: int | None) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(self, "mean_"):
            raise NotFittedError("SeriesScaler is not fitted; call fit(train) first")
        if channel is not None:
            return self.mean_[channel], self.scale_[channel]
        channels = len(self.mean_)
        if channels > 1 and (x.ndim == 0 or x.shape[-1] != channels):
            raise InputError(
                f"the scaler was fitted on {channels} channels (last axis) but got shape "
                f"{x.shape}; pass channel=k to use one channel's statistics"
            )
        return self.mean_, self.scale_

    def transform(self, x: Any, channel: int | None = None) -> np.ndarray:
        """(x - mean_) / scale_, per channel (or with channel `channel`'s statistics)."""
        a = _floats(x, "x")
        mean, scale = self._stats(a, channel)
        return (a - mean) / scale

    def inverse_transform(self, x: Any, channel: int | None = None) -> np.ndarray:
        """x * scale_ + mean_; `channel=k` undoes the scaling of a forecast of channel k."""
        a = _floats(x, "x")
        mean, scale = self._stats(a, channel)
        return a * scale + mean

    def fit_transform(self, x: Any) -> np.ndarray:
        """`fit(x)` then `transform(x)`."""
        return self.fit(x).transform(x)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the settings and learned statistics."""
        d: dict[str, Any] = {"with_mean": self.with_mean, "with_std": self.with_std}
        if hasattr(self, "mean_"):
            d["mean"] = self.mean_.tolist()
            d["scale"] = self.scale_.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SeriesScaler:
        """Restore a scaler saved with `to_dict`."""
        scaler = cls(with_mean=d.get("with_mean", True), with_std=d.get("with_std", True))
        if "mean" in d:
            scaler.mean_ = np.asarray(d["mean"], dtype=np.float64)
            scaler.scale_ = np.asarray(d["scale"], dtype=np.float64)
        return scaler

    def __repr__(self) -> str:
        return f"SeriesScaler(with_mean={self.with_mean}, with_std={self.with_std})"
