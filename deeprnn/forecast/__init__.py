"""Forecasting many series with one model: panels and lazy windows, per-window scaling,
likelihood heads, forecast metrics and backtests (used by `deeprnn.estimators.Forecaster`)."""

from deeprnn.forecast.likelihoods import LIKELIHOODS, Likelihood
from deeprnn.forecast.panel import Panel, Windows, is_panel, to_panel
from deeprnn.forecast.scaling import SCALINGS, scale, unscale, window_scale

__all__ = [
    "LIKELIHOODS",
    "SCALINGS",
    "Likelihood",
    "Panel",
    "Windows",
    "is_panel",
    "scale",
    "to_panel",
    "unscale",
    "window_scale",
]
