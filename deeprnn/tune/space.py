"""The search space of `deeprnn.tune`: which estimator arguments are tried, and how.

The default space (`SEARCH_SPACE`), each key an estimator argument:

    cell           choice   "lstm", "gru"
    num_layers     int      1 .. 3                  (depth)
    hidden_size    choice   32, 64, 128             (width)
    bidirectional  choice   False, True
    pooling        choice   "last", "mean", "attention"   (estimators with a pooling)
    frontend       choice   None, {"channels": [32, 32], "kernel_size": 5, "pool": [2, 2]}
    lr             float    1e-3 .. 1e-2, log scale
    dropout        float    0.0 .. 0.3              (between layers, so only with depth > 1)

A user space (`space=`) restricts or overrides it key by key; any estimator argument may
be a key: a list is a choice, `Range(low, high, log=...)` an interval (ints stay ints), a
single value fixes the argument, None for a key drops it from the search; in YAML an
interval is `{low: 0.001, high: 0.01, log: true}`. Keys the
estimator does not have raise ConfigError with the nearest name.

The first trial of a new search is the estimator as given (`starting_point`): its own value
of every searched key, data-aware ones included (hidden_size=None, frontend="auto" and
pooling="auto" are added to the default space's choices for that), so the search starts
from the default `fit` and ranks every other trial against it.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

from deeprnn.config_io import ConfigError

# The front end that helps long sequences most on the development sets.
CONV = {"channels": [32, 32], "kernel_size": 5, "pool": [2, 2]}


@dataclass(frozen=True)
class Range:
    """An interval of numbers: ints when both ends are ints, else floats; `log`: sampled
    uniformly in log space (for learning rates)."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        ok = all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in (self.low, self.high)
        )
        if not ok or not self.low <= self.high or (self.log and self.low <= 0):
            raise ConfigError(
                f"Range({self.low!r}, {self.high!r}, log={self.log}): expected numbers with "
                "low <= high (and low > 0 for log=True)"
            )

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)


SEARCH_SPACE: dict[str, Any] = {
    "cell": ["lstm", "gru"],
    "num_layers": Range(1, 3),
    "hidden_size": [32, 64, 128],
    "bidirectional": [False, True],
    "pooling": ["last", "mean", "attention"],
    "frontend": [None, CONV],
    "lr": Range(1e-3, 1e-2, log=True),
    "dropout": Range(0.0, 0.3),
}


def _label(value: Any) -> Any:
    """What Optuna stores for a choice: the value itself when it is a plain scalar, else its
    JSON text (a front-end dict), turned back by `_unlabel`."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True)


def _unlabel(label: Any, choices: list) -> Any:
    for c in choices:
        if _label(c) == label:
            return c
    raise ConfigError(f"{label!r} is not one of the choices {choices}")


def resolve(est, space: dict | None = None) -> dict[str, Any]:
    """The space searched for `est`: the default's keys the estimator has, updated by `space`.

    Raises ConfigError for a key that is no argument of the estimator (with a did-you-mean)
    and for an empty choice list.
    """
    params = est.get_params(deep=False)
    out = {k: v for k, v in SEARCH_SPACE.items() if k in params}
    if space is None:
        return out
    if not isinstance(space, dict):
        raise ConfigError(
            f"space: expected a dict of argument -> choices, got {type(space).__name__}"
        )
    for key, value in space.items():
        if key not in params:
            close = difflib.get_close_matches(str(key), list(params), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"space.{key}: {type(est).__name__} has no argument {key!r}{hint} "
                f"(the default space searches {list(out)})"
            )
        if value is None:
            out.pop(key, None)
        elif isinstance(value, (list, tuple)) and not value:
            raise ConfigError(f"space.{key}: an empty list of choices; give at least one value")
        elif isinstance(value, dict) and {"low", "high"} <= set(value) <= {"low", "high", "log"}:
            out[key] = Range(value["low"], value["high"], bool(value.get("log", False)))
        else:
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


def _data_aware(value: Any) -> bool:
    return value is None or value == "auto"


def starting_point(
    est, space: dict[str, Any], given: set[str] = frozenset()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(space, params of the first trial): the estimator's own value of every searched key.

    A choice of the default space (a key not in `given`, the user's own keys) gains the
    estimator's value when it lacks it, so a data-aware setting (None / "auto") is one of
    the choices; a value outside a user's choices or outside a range is left to the
    sampler. The params are in Optuna's stored form (`study.enqueue_trial`).
    """
    own = est.get_params(deep=False)
    out, start = dict(space), {}
    for key, dim in space.items():
        value = own.get(key)
        if isinstance(dim, list):
            labels = [_label(c) for c in dim]
            if _label(value) not in labels and key not in given and _data_aware(value):
                out[key] = dim = [*dim, value]
                labels.append(_label(value))
            if _label(value) in labels:
                start[key] = _label(value)
        elif isinstance(dim, Range) and isinstance(value, (int, float)):
            if not isinstance(value, bool) and dim.low <= value <= dim.high:
                start[key] = value
    return out, start


def suggest(trial, space: dict[str, Any]) -> dict[str, Any]:
    """One point of `space` drawn by an Optuna trial: {argument: value}."""
    params = {}
    for key, dim in space.items():
        if isinstance(dim, Range):
            if dim.integer:
                params[key] = trial.suggest_int(key, dim.low, dim.high, log=dim.log)
            else:
                params[key] = trial.suggest_float(key, dim.low, dim.high, log=dim.log)
        elif isinstance(dim, list):
            label = trial.suggest_categorical(key, [_label(c) for c in dim])
            params[key] = _unlabel(label, dim)
        else:  # a fixed value
            params[key] = dim
    return params


def decode(space: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """Estimator arguments from a finished trial's stored params (choices decoded, fixed
    values of the space added)."""
    out = {}
    for key, dim in space.items():
        if isinstance(dim, list):
            out[key] = _unlabel(stored[key], dim)
        elif isinstance(dim, Range):
            out[key] = stored[key]
        else:
            out[key] = dim
    return out


def describe(space: dict[str, Any]) -> dict[str, Any]:
    """A JSON-able form of the space (recorded with the study, compared on resume)."""
    out = {}
    for key, dim in space.items():
        if isinstance(dim, Range):
            out[key] = {"range": [dim.low, dim.high], "log": dim.log}
        else:
            out[key] = dim
    return json.loads(json.dumps(out, sort_keys=True))
