"""Differencing a series before the network reads it, and integrating forecasts back.

With lag d, the network models u_t = m_t - m_(t-d) (m: the series, or its log): d = 1 removes
a trend (first differences), d = season a seasonal pattern. A forecast of u is turned back
into levels step by step, m_t = m_(t-d) + u_t, starting from the last d known levels.
Inferring the seasonal period from time stamps lives here too: `season_of`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# pandas frequency prefix -> seasonal period (the cycle a practitioner would name first).
_PERIODS = {"M": 12, "MS": 12, "ME": 12, "BM": 12, "BMS": 12, "BME": 12, "Q": 4, "QS": 4,
            "QE": 4, "BQ": 4, "BQS": 4, "BQE": 4, "W": 52, "D": 7, "B": 5, "h": 24, "H": 24,
            "min": 60, "T": 60}  # fmt: skip


def difference(m: np.ndarray, lag: int) -> np.ndarray:
    """u = m[lag:] - m[:-lag] along the first axis (m itself for lag 0)."""
    if lag == 0:
        return m
    return m[lag:] - m[:-lag]


def integrate(base: np.ndarray, diffs: np.ndarray, lag: int) -> np.ndarray:
    """Levels (N, H, ...) from forecast differences diffs (N, H, ...) and the last `lag`
    known levels base (N, lag, ...) before them (diffs itself for lag 0)."""
    if lag == 0:
        return diffs
    horizon = diffs.shape[1]
    ext = np.concatenate([base, np.zeros_like(diffs)], axis=1)
    for k in range(horizon):
        ext[:, lag + k] = ext[:, k] + diffs[:, k]
    return ext[:, lag:]


def season_of(y: Any) -> int:
    """The seasonal period of y from its time stamps: 12 for monthly data, 4 quarterly, 52
    weekly, 7 daily, 24 hourly; 1 when y has no regular DatetimeIndex (a pandas Series with
    one, or a dict / list of such Series, whose first series decides)."""
    import pandas as pd

    first = y
    if isinstance(y, dict) and y:
        first = next(iter(y.values()))
    elif isinstance(y, (list, tuple)) and y:
        first = y[0]
    index = getattr(first, "index", None)
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 3:
        return 1
    try:
        freq = pd.infer_freq(index)
    except (TypeError, ValueError):
        return 1
    return _PERIODS.get(freq_base(freq), 1) if freq else 1


def freq_base(freq: str) -> str:
    """A pandas frequency without its multiple and anchor: "2MS" -> "MS", "W-SUN" -> "W"."""
    return freq.split("-")[0].lstrip("0123456789")
