"""Forecast metrics: MASE, sMAPE, pinball and weighted quantile loss, CRPS, interval coverage.

Point metrics take y_true and y_pred of one shape; quantile metrics take forecasts q_pred
(..., Q) at `levels` (Q,) for y_true (...).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from deeprnn.errors import InputError
from deeprnn.train.metrics import smape  # noqa: F401  (re-exported: 100 * mean 2|e| / (|y| + |f|))


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    if y.shape != p.shape:
        raise InputError(f"y_true {y.shape} and y_pred {p.shape} must have the same shape")
    return y, p


def mase(y_true, y_pred, y_train, season: int = 1) -> float:
    """Mean absolute scaled error: mean |y - f| / mean |y_train[t] - y_train[t - season]|
    (the in-sample error of the seasonal naive forecast); < 1 beats it."""
    y, p = _pair(y_true, y_pred)
    train = np.asarray(y_train, np.float64)
    if len(train) <= season:
        raise InputError(f"y_train has {len(train)} steps; MASE with season={season} needs more")
    scale = np.mean(np.abs(train[season:] - train[:-season]))
    if scale == 0:
        raise InputError("y_train is constant at lag season: the MASE scale is 0")
    return float(np.mean(np.abs(y - p)) / scale)


def pinball_loss(y_true, q_pred, levels) -> np.ndarray:
    """Mean pinball loss per level (Q,): mean of max(q (y - f_q), (q - 1) (y - f_q))."""
    y = np.asarray(y_true, np.float64)[..., None]
    q = np.asarray(levels, np.float64)
    f = np.asarray(q_pred, np.float64)
    if f.shape != y.shape[:-1] + (len(q),):
        raise InputError(f"q_pred must be {y.shape[:-1] + (len(q),)}, got {f.shape}")
    d = y - f
    return np.maximum(q * d, (q - 1) * d).reshape(-1, len(q)).mean(axis=0)


def weighted_quantile_loss(y_true, q_pred, levels) -> float:
    """Mean over levels of 2 * sum pinball / sum |y| (GluonTS's mean_wQuantileLoss)."""
    y = np.asarray(y_true, np.float64)
    total = np.abs(y).sum()
    if total == 0:
        raise InputError("weighted quantile loss: y_true is all zeros")
    return float(np.mean(2 * pinball_loss(y, q_pred, levels) * y.size / total))


def crps(y_true, q_pred, levels) -> float:
    """CRPS approximated from quantiles: 2 * mean over levels of the mean pinball loss
    (exact as the levels fill (0, 1) evenly); in the units of y."""
    return float(2 * np.mean(pinball_loss(y_true, q_pred, levels)))


def crps_gaussian(y_true, mu, sigma) -> float:
    """Closed-form mean CRPS of N(mu, sigma^2) forecasts (Gneiting & Raftery 2007)."""
    y, mu, sigma = (np.asarray(a, np.float64) for a in (y_true, mu, sigma))
    z = (y - mu) / sigma
    terms = sigma * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / np.sqrt(np.pi))
    return float(np.mean(terms))


def coverage(y_true, lower, upper) -> float:
    """Fraction of y_true inside [lower, upper]."""
    y, lo = _pair(y_true, lower)
    _, hi = _pair(y_true, upper)
    return float(np.mean((lo <= y) & (y <= hi)))
