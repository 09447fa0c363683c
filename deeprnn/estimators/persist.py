"""Saving a fitted estimator: a directory, never a pickle.

    model.safetensors   the weights (deeprnn.train.save_weights)
    estimator.json      format tag, class name, arguments, learned non-tensor attributes
                        (classes, vocabulary, scalers, history, ...), the model's shape
                        arguments and the sha256 of the weights file
Values JSON cannot hold directly are tagged: {"__array__": [...], "dtype": "<i8"},
{"__tuple__": [...]}, {"__timestamp__": "ISO 8601"}, {"__vocabulary__": {...}},
{"__scaler__": {...}}, {"__history__": {...}}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deeprnn.data.series import SeriesScaler
from deeprnn.data.text import Vocabulary
from deeprnn.errors import InputTypeError
from deeprnn.estimators.defaults import Defaults
from deeprnn.train import CheckpointError, History, load_weights, save_weights
from deeprnn.train.checkpoint import atomic_write, read_meta

FORMAT = "deeprnn-estimator"
VERSION = 1
WEIGHTS = "model.safetensors"
META = "estimator.json"
FOLD_WEIGHTS = "fold{}.safetensors"  # the fold models of a data-aware fit (fold_ensemble)

_OBJECTS = {
    "__vocabulary__": Vocabulary,
    "__scaler__": SeriesScaler,
    "__history__": History,
    "__defaults__": Defaults,
}


def encode(value: Any) -> Any:
    """A JSON-able form of `value` that `decode` turns back into an equal value."""
    if isinstance(value, History):  # its columns, and why training stopped
        return {"__history__": value.to_dict(), "stop": encode(value.stop)}
    for tag, kind in _OBJECTS.items():
        if isinstance(value, kind):
            return {tag: value.to_dict()}
    if isinstance(value, (pd.Timestamp, np.datetime64)):  # a series' last time stamp
        return {"__timestamp__": pd.Timestamp(value).isoformat()}
    if isinstance(value, np.ndarray):
        items = [encode(v) for v in value.tolist()] if value.dtype == object else value.tolist()
        return {"__array__": items, "dtype": value.dtype.str}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: encode(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise InputTypeError(
        f"cannot save a value of type {type(value).__name__} ({value!r:.60}) in estimator.json; "
        "labels and arguments must be numbers, strings, booleans, None or tuples of them"
    )


def decode(value: Any) -> Any:
    """Inverse of `encode`."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    for tag, kind in _OBJECTS.items():
        if tag in value:
            obj = kind.from_dict(value[tag])
            if tag == "__history__":
                obj.stop = decode(value.get("stop"))
            return obj
    if "__timestamp__" in value:
        return pd.Timestamp(value["__timestamp__"])
    if "__tuple__" in value:
        return tuple(decode(v) for v in value["__tuple__"])
    if "__array__" in value:
        dtype = np.dtype(value["dtype"])
        if dtype.kind != "O":
            return np.asarray(value["__array__"], dtype=dtype)
        items = [decode(v) for v in value["__array__"]]
        out = np.empty(len(items), dtype=object)
        for i, v in enumerate(items):  # one by one: a tuple must stay one element
            out[i] = v
        return out
    return {k: decode(v) for k, v in value.items()}


def write(path: Path, est) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    # Weights first: a crash between the two files leaves a checksum mismatch, not a mix-up.
    sha = save_weights(path / WEIGHTS, est.model_)
    folds = getattr(est, "fold_models_", [])
    fold_shas = [save_weights(path / FOLD_WEIGHTS.format(i), m) for i, m in enumerate(folds)]
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "class": type(est).__name__,
        "params": encode(est.get_params()),
        "learned": {k: encode(getattr(est, k)) for k in ("history_", *est._learned)},
        "model": encode(est._spec),
        "weights_sha256": sha,
        "folds_sha256": fold_shas,
    }
    atomic_write(path / META, json.dumps(meta, indent=1).encode("utf-8"))
    return path


def _subclasses(root: type) -> dict[str, type]:
    found, todo = {}, [root]
    while todo:
        c = todo.pop()
        found[c.__name__] = c
        todo.extend(c.__subclasses__())
    return found


def read(path: Path, cls: type, device: str | None, root: type) -> Any:
    meta_path = path / META
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such directory; save an estimator with est.save(path)")
    if not meta_path.is_file():
        raise CheckpointError(f"{path}: not a saved deeprnn estimator (it has no {META})")
    meta = read_meta(meta_path, "estimator", FORMAT, VERSION)
    name = meta.get("class")
    klass = _subclasses(root).get(name)
    if klass is None or klass is root:
        raise CheckpointError(f"{meta_path}: unknown estimator class {name!r}")
    if not issubclass(klass, cls):
        raise CheckpointError(
            f"{meta_path}: holds a {name}, not a {cls.__name__}; use {name}.load(path)"
        )
    try:
        est = klass(**decode(meta["params"]))
        if device is not None:
            est.set_params(device=device)
        allowed = {"history_", *klass._learned}
        for key, value in meta["learned"].items():
            if key not in allowed:  # only learned attributes, never methods or internals
                raise KeyError(f"learned attribute {key!r} is not one of {sorted(allowed)}")
            setattr(est, key, decode(value))
        spec = decode(meta["model"])
        model = est._build_model(**spec)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(
            f"{meta_path}: inconsistent estimator file ({type(err).__name__}: {err})"
        ) from err
    load_weights(path / WEIGHTS, model, meta.get("weights_sha256"))
    est.model_ = model.to(est._device()).eval()
    est._spec = spec
    shas = meta.get("folds_sha256", [])
    if not isinstance(shas, list) or not all(isinstance(h, str) for h in shas):
        raise CheckpointError(f"{meta_path}: folds_sha256 must be a list of sha256 strings")
    if shas and not hasattr(klass, "fold_ensemble"):
        raise CheckpointError(f"{meta_path}: a {name} has no fold models, but {len(shas)} listed")
    folds = []
    for i, sha in enumerate(shas):
        fold = est._build_model(**spec)
        load_weights(path / FOLD_WEIGHTS.format(i), fold, sha)
        folds.append(fold.to(est._device()).eval())
    if hasattr(klass, "fold_ensemble"):
        est.fold_models_ = folds
    return est
