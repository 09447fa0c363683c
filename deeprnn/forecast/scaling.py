"""Per-window scaling of a panel's series: the network sees (y - loc) / scale, where loc and
scale come from the lookback window alone, so every series (and every forecast origin) is
scaled the same way and forecasts are mapped back with y = z * scale + loc.

- "mean": loc 0, scale = mean |y| of the window (DeepAR's scaling; keeps counts positive).
- "last": loc = the window's last value, scale = its standard deviation (level shifts and
  trends are modelled as changes from the last value).
- None: loc 0, scale 1.
A zero scale (a constant or all-zero window) is replaced by 1.
"""

from __future__ import annotations

import numpy as np

from deeprnn.errors import check_choice

SCALINGS = ("mean", "last", None)


def window_scale(past: np.ndarray, kind: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(loc, scale), each (B, 1), of windows past (B, L)."""
    check_choice("scaling", kind, SCALINGS)
    zeros = np.zeros((len(past), 1))
    if kind is None:
        return zeros, np.ones((len(past), 1))
    if kind == "mean":
        loc, scale = zeros, np.abs(past).mean(axis=1, keepdims=True)
    else:
        loc, scale = past[:, -1:].copy(), past.std(axis=1, keepdims=True)
    tiny = 1e-8 * np.maximum(np.abs(past).max(axis=1, keepdims=True), 1e-300)
    return loc, np.where(scale > tiny, scale, 1.0)


def scale(past: np.ndarray, values: np.ndarray, kind: str | None) -> np.ndarray:
    """values (B, ...) in the scaled units of windows past (B, L)."""
    loc, s = window_scale(past, kind)
    shape = (len(past),) + (1,) * (values.ndim - 1)
    return (values - loc.reshape(shape)) / s.reshape(shape)


def unscale(past: np.ndarray, z: np.ndarray, kind: str | None) -> np.ndarray:
    """Inverse of `scale`: z (B, ...) back in the units of the series."""
    loc, s = window_scale(past, kind)
    shape = (len(past),) + (1,) * (z.ndim - 1)
    return z * s.reshape(shape) + loc.reshape(shape)
