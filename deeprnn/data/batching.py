"""Variable-length sequences into padded mini-batches.

Sequences are kept unpadded until a batch is drawn, so each batch is only as long as its
own longest sequence; bucketing by length makes that shorter still.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from deeprnn.errors import InputError, InputTypeError

_EXPECTED = "an array (N, T, F) or a list of arrays (T_i, F) or (T_i,)"


def _sequence_list(X: Any, name: str) -> list[np.ndarray]:
    """Check the structure of a batch of sequences; keep integer dtypes (token ids)."""
    if isinstance(X, Tensor):
        X = X.detach().cpu().numpy()
    if isinstance(X, np.ndarray) and X.dtype != object:
        if X.ndim not in (2, 3):
            hint = "; wrap a single sequence in a list: [x]" if X.ndim == 1 else ""
            raise InputError(f"{name} must be {_EXPECTED}, got an array with shape {X.shape}{hint}")
        seqs = list(X)
    elif isinstance(X, (list, tuple, np.ndarray)):
        seqs = list(X)
    else:
        raise InputTypeError(f"{name} must be {_EXPECTED}, got {type(X).__name__}")
    if not seqs:
        raise InputError(f"{name} is empty; expected at least one sequence")
    out = []
    for i, s in enumerate(seqs):
        try:
            a = np.asarray(s)
        except ValueError as err:
            raise InputError(
                f"{name}[{i}] is ragged: its steps have different feature counts"
            ) from err
        if a.dtype == object:
            raise InputError(f"{name}[{i}] is ragged: its steps have different feature counts")
        if a.dtype.kind not in "biuf":
            raise InputTypeError(f"{name}[{i}] holds {a.dtype} values; expected numbers")
        if a.ndim not in (1, 2):
            raise InputError(
                f"{name}[{i}] has shape {a.shape}; each sequence must be (T_i, F) or (T_i,)"
            )
        if len(a) == 0:
            raise InputError(f"{name}[{i}] is empty (0 steps); every sequence needs a step")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            step = int(np.argwhere(~np.isfinite(a))[0][0])
            kind = "NaN" if np.isnan(a[step]).any() else "inf"
            raise InputError(f"{name}[{i}] contains {kind} at step {step}")
        out.append(a)
    first = out[0].shape[1:]
    i = next((i for i, a in enumerate(out) if a.shape[1:] != first), None)
    if i is not None:
        raise InputError(
            f"{name} is ragged across sequences: {name}[0] has {_features(out[0])} but "
            f"{name}[{i}] has {_features(out[i])}; every sequence needs the same features"
        )
    return out


def _features(a: np.ndarray) -> str:
    return f"{a.shape[1]} features" if a.ndim == 2 else "no feature axis (shape (T_i,))"


def validate_sequences(X: Any, name: str = "X") -> list[np.ndarray]:
    """Check a batch of sequences and return it as a list of float64 arrays.

    Args:
        X: an array (N, T, F) or (N, T), or a list of arrays (T_i, F) or (T_i,).
        name: the argument name used in error messages.
    Raises InputError (a ValueError) or InputTypeError (a TypeError) naming the sequence
    and, for NaN / inf, the step.
    """
    return [a.astype(np.float64, copy=False) for a in _sequence_list(X, name)]


def pad_batch(seqs: Any, value: float = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pad sequences at the end to the longest one.

    Args:
        seqs: a list of arrays (T_i, F) or (T_i,) (or anything `validate_sequences` takes).
        value: the padding value.
    Returns:
        x (N, T_max, F) or (N, T_max), keeping the input dtype, and lengths (N,) int64.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"value must be a number, got {type(value).__name__} {value!r}")
    return _pad(_sequence_list(seqs, "seqs"), value)


def _pad(arrays: list[np.ndarray], value: float = 0) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    dtype = np.result_type(*arrays)
    out = np.full((len(arrays), int(lengths.max()), *arrays[0].shape[1:]), value, dtype=dtype)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
    return out, lengths


def _unpad(X: np.ndarray, lengths: Any) -> list[np.ndarray]:
    """Rows of a padded array cut to their lengths."""
    lengths = np.asarray(lengths)
    if lengths.dtype.kind not in "iu" or lengths.shape != (len(X),):
        raise InputError(
            f"lengths must be {len(X)} integers (one per row of X), got shape {lengths.shape} "
            f"and dtype {lengths.dtype}"
        )
    if lengths.min() < 1 or lengths.max() > X.shape[1]:
        raise InputError(
            f"lengths must lie in [1, {X.shape[1]}] (the time axis of X), got min "
            f"{lengths.min()} and max {lengths.max()}"
        )
    return [row[:n] for row, n in zip(X, lengths.tolist())]


def _batch_order(
    lengths: np.ndarray, batch_size: int, shuffle: bool, bucket: bool, seed: int
) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths)) if shuffle else np.arange(len(lengths))
    if bucket:
        # Sorting within chunks of ~50 batches groups similar lengths yet keeps randomness
        # between chunks; then the batch order is shuffled so no epoch runs short-to-long.
        chunk = 50 * batch_size
        order = np.concatenate(
            [
                c[np.argsort(lengths[c], kind="stable")]
                for c in np.split(order, range(chunk, len(order), chunk))
            ]
        )
    groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if bucket and shuffle:
        groups = [groups[i] for i in rng.permutation(len(groups))]
    return groups


def _to_tensor(a: np.ndarray) -> Tensor:
    if a.dtype.kind in "biu":
        return torch.from_numpy(a.astype(np.int64, copy=False))
    return torch.from_numpy(a.astype(np.float32, copy=False))


def batches(
    X: Any,
    y: Any = None,
    lengths: Any = None,
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int = 0,
    bucket: bool = False,
    drop_last: bool = False,
    per_step: bool = False,
) -> Iterator[tuple[Tensor, Tensor, Tensor | None]]:
    """Mini-batches `(x, lengths, y)` as torch tensors; inputs are checked at the call.

    Args:
        X: sequences as `validate_sequences` takes them; an array (N, T, ...) with `lengths`
            is cut to those lengths first. Integer X (token ids) gives int64 x, else float32.
        y: None, or one target per sequence, an array (N, ...) (int -> int64,
            float -> float32).
        lengths: true lengths of the rows of a padded array X (None: all rows are full).
        batch_size: rows per batch (the last one may be smaller unless `drop_last`).
        shuffle: draw rows in a random order fixed by `seed` (pass the epoch as seed to
            reshuffle each epoch).
        bucket: sort rows by length within chunks of 50 batches, so little padding is used.
        per_step: y holds one target per step of X (tagging, language models): a list of
            sequences (T_i, ...) or an array padded like X, cut with `lengths` and padded
            with 0 like x.
    Returns:
        An iterator of x (B, T_b, F) or (B, T_b) padded with 0 to the batch's longest row,
        lengths (B,) int64, and y for those rows (or None).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InputError(f"seed must be an int >= 0, got {seed!r}")
    X, y = (a.detach().cpu().numpy() if isinstance(a, Tensor) else a for a in (X, y))
    if lengths is not None:
        if not isinstance(X, np.ndarray) or X.ndim not in (2, 3):
            raise InputError("lengths is given, so X must be a padded array (N, T[, F])")
        if per_step and isinstance(y, np.ndarray):
            y = _unpad(y, lengths)
        X = _unpad(X, lengths)
    seqs = _sequence_list(X, "X")
    if y is None:
        targets = None
    elif per_step:
        targets = _sequence_list(y, "y")
        if len(targets) == len(seqs):
            bad = [i for i, (a, b) in enumerate(zip(seqs, targets)) if len(a) != len(b)]
            if bad:
                raise InputError(
                    f"per_step targets must be as long as their sequences: X[{bad[0]}] has "
                    f"{len(seqs[bad[0]])} steps but y[{bad[0]}] has {len(targets[bad[0]])}"
                )
    else:
        try:
            targets = np.asarray(y)
        except ValueError as err:
            raise InputError("y is ragged; pass per_step=True for per-step targets") from err
        if targets.dtype.kind not in "biuf":
            raise InputTypeError(f"y holds {targets.dtype} values; expected numbers")
        if targets.ndim == 0:
            raise InputError(f"y must hold one target per sequence, got a scalar {y!r}")
        if targets.dtype.kind == "f" and not np.isfinite(targets).all():
            row = int(np.argwhere(~np.isfinite(targets))[0][0])
            raise InputError(f"y contains NaN or inf at row {row}")
    if targets is not None and len(targets) != len(seqs):
        raise InputError(f"y has {len(targets)} entries but X has {len(seqs)} sequences")
    lens = np.array([len(a) for a in seqs], dtype=np.int64)
    order = _batch_order(lens, batch_size, shuffle, bucket, seed)
    return _iterate(seqs, targets, order, batch_size, drop_last)


def _iterate(
    seqs: list[np.ndarray],
    targets: list[np.ndarray] | np.ndarray | None,
    order: list[np.ndarray],
    batch_size: int,
    drop_last: bool,
) -> Iterator[tuple[Tensor, Tensor, Tensor | None]]:
    for idx in order:
        if drop_last and len(idx) < batch_size:
            continue
        x_b, len_b = _pad([seqs[i] for i in idx])
        if targets is None:
            y_b = None
        elif isinstance(targets, list):
            y_b = _to_tensor(_pad([targets[i] for i in idx])[0])
        else:
            y_b = _to_tensor(targets[idx])
        yield _to_tensor(x_b), torch.from_numpy(len_b), y_b
