"""Index splits shared by the estimators' validation and the tuner's trials: a stratified
holdout and (stratified) k folds, both falling back to plain shuffling where a class is
too small to appear on every side."""

from __future__ import annotations

import numpy as np


def stratified_split(y: np.ndarray, n_test: int, seed: int = 0):
    """Train / test indices with every class on both sides where it has 2+ members."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    _, counts = np.unique(y, return_counts=True)
    stratify = y if counts.min() >= 2 and n_test >= len(counts) else None
    train, test = train_test_split(idx, test_size=n_test, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(test)


def kfold(n: int, k: int, seed: int = 0, y: np.ndarray | None = None):
    """k (train, validation) index pairs covering every index once as validation;
    stratified by the class codes `y` when every class has at least k members."""
    from sklearn.model_selection import KFold, StratifiedKFold

    codes = np.zeros(n, dtype=np.int64) if y is None else np.asarray(y)
    stratify = y is not None and len(np.unique(codes)) > 1 and np.bincount(codes).min() >= k
    kind = StratifiedKFold if stratify else KFold
    splits = kind(k, shuffle=True, random_state=seed).split(np.zeros(n), codes)
    return [(np.sort(tr), np.sort(va)) for tr, va in splits]
