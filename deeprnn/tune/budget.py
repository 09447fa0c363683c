"""Wall-clock budgets: "90s", "5m", "1h30m", "2.5m" or a number of seconds."""

from __future__ import annotations

import math
import re

from deeprnn.errors import InputError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smh])")


def parse_budget(budget: str | float | int) -> float:
    """Seconds in `budget`; InputError unless it is a finite amount > 0."""
    if isinstance(budget, bool):
        raise InputError(f"budget must be seconds or a text like '5m', got {budget!r}")
    if isinstance(budget, (int, float)):
        seconds = float(budget)
    elif isinstance(budget, str):
        text = budget.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            parts = _PART.findall(text)
            if not parts or _PART.sub("", text).strip():
                raise InputError(
                    f"budget {budget!r}: expected seconds or a duration like '90s', '5m', '1h30m'"
                ) from None
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise InputError(f"budget must be seconds or a text like '5m', got {type(budget).__name__}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise InputError(f"budget must be a positive duration, got {budget!r}; e.g. '5m' or 300")
    return seconds
