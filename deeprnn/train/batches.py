"""TensorBatches: re-iterable mini-batches `(x, lengths, y)` over in-memory arrays."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from deeprnn.errors import InputError


def as_tensor(a, name: str) -> Tensor:
    """Floats become float32, integers int64 (class / token ids); tensors keep their dtype."""
    if isinstance(a, Tensor):
        return a
    try:
        arr = np.asarray(a)
    except ValueError as err:
        raise InputError(f"{name} is ragged or not an array: {err}") from None
    if arr.ndim == 0:
        raise InputError(f"{name} must be an array with one row per sequence, got {a!r:.60}")
    if arr.dtype.kind in "iub":
        return torch.as_tensor(arr, dtype=torch.int64)
    if arr.dtype.kind == "f":
        return torch.as_tensor(arr, dtype=torch.float32)
    raise InputError(f"{name} must hold numbers, got dtype {arr.dtype}")


class TensorBatches:
    """Mini-batches over rows of X (and y, lengths), in order or shuffled.

    Args:
        X: (N, T, F) floats or (N, T) token ids.
        y: (N, ...) targets, or None (batches then carry y = None).
        lengths: (N,) true lengths of right-padded rows, or None.
        batch_size: rows per batch (the last batch may be smaller unless drop_last).
        shuffle: a new order every epoch, drawn from seed + epoch only, so a resumed run sees
            the same order as an uninterrupted one.
    `fit` calls `set_epoch(epoch)` before every epoch; iterating without it advances the
    epoch by one per pass.
    """

    def __init__(
        self,
        X,
        y=None,
        lengths=None,
        batch_size: int = 32,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
    ):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
        self.X = as_tensor(X, "X")
        self.y = None if y is None else as_tensor(y, "y")
        self.lengths = None if lengths is None else as_tensor(lengths, "lengths")
        n = self.X.shape[0]
        for name, a in (("y", self.y), ("lengths", self.lengths)):
            if a is not None and a.shape[0] != n:
                raise InputError(f"{name} has {a.shape[0]} rows but X has {n}")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = self.X.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor | None, Tensor | None]]:
        n = self.X.shape[0]
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        self.epoch += 1
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield (
                self.X[idx],
                None if self.lengths is None else self.lengths[idx],
                None if self.y is None else self.y[idx],
            )
