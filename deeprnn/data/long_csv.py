"""Long-format CSV: one row per time step, `seq_id, step, features..., label`, the usual
export of sensor and event data, grouped into ragged sequences with one label each."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from deeprnn.data.loaders import (
    PathLike,
    _check_encoding,
    _numeric_column,
    _read_rows,
    decode_error,
)
from deeprnn.errors import InputError


class LongSequences(NamedTuple):
    """What `load_long_csv` returns; unpacks as `X, y, ids = ...`."""

    X: list[np.ndarray]  # one (T_i, F) float array per sequence, rows in step order
    y: np.ndarray | None  # one label per sequence (int, float or str, as the file holds)
    ids: list[str]  # each sequence's id, in order of first appearance


def label_array(cells: Sequence[str]) -> np.ndarray:
    """Labels with the type the text shows: int64 when every cell is an integer, float64
    when every cell is a number, else str (so "1", "2" stay classes, not 1.0, 2.0)."""
    for kind in (int, float):
        try:
            return np.asarray([kind(c) for c in cells])
        except ValueError:
            continue
    return np.asarray(list(cells), dtype=str)


def load_long_csv(
    path: PathLike,
    id_column: str = "seq_id",
    step_column: str | None = "step",
    target: str | None = "label",
    features: Sequence[str] | None = None,
    ignore: Sequence[str] = (),
    delimiter: str = ",",
    encoding: str = "utf-8",
) -> LongSequences:
    """Group the rows of a long-format CSV into sequences.

    Args:
        path: a CSV file with a header row.
        id_column: the column naming each row's sequence; sequences keep the order in which
            their ids first appear.
        step_column: numbers ordering the rows of a sequence (None: the file's order).
        target: the label column, constant within a sequence (None: no labels).
        features: numeric feature columns (None: every other column but those in `ignore`).
    Returns:
        LongSequences(X, y, ids): X a list of (T_i, F) float64 arrays, y (N,) or None.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such CSV file: {path.absolute()}")
    _check_encoding(encoding)
    try:
        rows = _read_rows(path, delimiter, encoding)
    except UnicodeDecodeError as err:
        raise decode_error(path, encoding, err) from err
    if len(rows) < 2:
        raise InputError(f"{path}: expected a header row and data rows, got {len(rows)} row(s)")
    header = [h.strip().lstrip("\ufeff") for h in rows[0]]
    body = rows[1:]
    keys = [k for k in (id_column, step_column, target) if k is not None]
    skip = [*keys, *ignore]
    wanted = [h for h in header if h not in skip] if features is None else list(features)
    for name in [*keys, *wanted]:
        if name not in header:
            raise InputError(
                f"{path} has no column {name!r}; its columns are {header} (a long-format "
                "file needs id_column, step_column and target naming columns of it)"
            )
    if not wanted:
        raise InputError(f"{path}: no feature columns left besides {keys}")
    values = np.stack([_numeric_column(path, body, header.index(n), n, False) for n in wanted], 1)
    ids = [row[header.index(id_column)].strip() for row in body]
    steps = None
    if step_column is not None:
        steps = _numeric_column(path, body, header.index(step_column), step_column, False)
    groups: dict[str, list[int]] = {}
    for k, key in enumerate(ids):
        groups.setdefault(key, []).append(k)
    X, labels = [], []
    for key, members in groups.items():
        if steps is not None:
            members = sorted(members, key=lambda k: steps[k])
            order = steps[members]
            if len(np.unique(order)) < len(order):
                repeated = order[np.argmax(order[1:] == order[:-1]) + 1]
                raise InputError(
                    f"{path}: sequence {key!r} has step {repeated:g} twice; every "
                    f"(id, {step_column}) pair must be unique"
                )
        X.append(values[members])
        if target is not None:
            labels.append(_one_label(path, body, members, header.index(target), key, target))
    y = label_array(labels) if target is not None else None
    return LongSequences(X, y, list(groups))


def _one_label(path: Path, body, members: list[int], j: int, key: str, target: str) -> str:
    found = list(dict.fromkeys(body[k][j].strip() for k in members))
    if len(found) != 1 or found[0] == "":
        raise InputError(
            f"{path}: sequence {key!r} has {target} values {found[:5]} on its rows; expected "
            "one non-empty label per sequence (for a label per step use task "
            "sequence_labelling)"
        )
    return found[0]
