"""Read user files: CSV tables, folders of labelled text, text files and NumPy arrays.

Every error names the file and, where it can, the row and column, so a bad cell is found
without opening a debugger.
"""

from __future__ import annotations

import codecs
import csv
import os
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deeprnn.errors import InputError, InputTypeError

try:  # pandas parses large files much faster, but deeprnn does not require it
    import pandas as pd
except ImportError:  # pragma: no cover - exercised by monkeypatching `pd` to None in tests
    pd = None

PathLike = str | os.PathLike


def _check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise InputError(
            f"encoding must name a text encoding (e.g. 'utf-8', 'latin-1'), got {encoding!r}"
        ) from None


def _read_rows(path: Path, delimiter: str, encoding: str) -> list[list[str]]:
    """All non-blank rows of a CSV file as strings, header first."""
    if pd is not None:
        try:
            frame = pd.read_csv(
                path,
                header=None,
                dtype=str,
                keep_default_na=False,
                index_col=False,
                sep=delimiter,
                encoding=encoding,
            )
        except pd.errors.EmptyDataError:
            return []
        except pd.errors.ParserError as err:
            raise InputError(f"{path}: cannot parse as CSV: {err}".strip()) from err
        return frame.values.tolist()
    with open(path, newline="", encoding=encoding) as f:
        rows = [row for row in csv.reader(f, delimiter=delimiter) if row]
    if rows:
        width = len(rows[0])
        for k, row in enumerate(rows[1:], start=1):
            if len(row) > width:
                raise InputError(
                    f"{path}: data row {k} has {len(row)} fields but the header has {width}"
                )
            row.extend([""] * (width - len(row)))  # short rows read as empty cells, as pandas
    return rows


def load_csv(
    path: PathLike,
    columns: Sequence[str] | None = None,
    target: str | None = None,
    delimiter: str = ",",
    encoding: str = "utf-8",
    allow_missing: bool = False,
    dtype: type = np.float64,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read numeric columns of a CSV file with a header row.

    Args:
        path: the file.
        columns: names of the feature columns (None: every column except `target`).
        target: name of a target column returned separately as `y` (None: no target).
        delimiter, encoding: passed to the parser.
        allow_missing: read empty cells as NaN instead of raising.
        dtype: dtype of the returned arrays.
    Returns:
        X (rows, len(columns)) and y (rows,) or None. Rows count from 1 after the header,
        blank lines skipped, in error messages.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such CSV file: {path.absolute()}")
    _check_encoding(encoding)
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise InputError(f"delimiter must be one character, got {delimiter!r}")
    if isinstance(columns, str):
        raise InputTypeError(f"columns must be a list of column names, got one str {columns!r}")
    try:
        if np.dtype(dtype).kind != "f":
            raise TypeError
    except TypeError:
        raise InputTypeError(f"dtype must be a float dtype, got {dtype!r}") from None
    try:
        rows = _read_rows(path, delimiter, encoding)
    except UnicodeDecodeError as err:
        raise decode_error(path, encoding, err) from err
    if not rows:
        raise InputError(f"{path} is empty; expected a header row and data rows")
    # Spreadsheet exports often start with a byte-order mark, which would hide the first name.
    header = [h.strip().lstrip("\ufeff") for h in rows[0]]
    body = rows[1:]
    if not body:
        raise InputError(f"{path} has a header but no data rows")
    seen = set()
    for h in header:
        if h in seen:
            raise InputError(f"{path}: column name {h!r} appears twice in the header")
        seen.add(h)
    wanted = [h for h in header if h != target] if columns is None else list(columns)
    for name in [*wanted, *([target] if target is not None else [])]:
        if name not in header:
            raise InputError(f"{path} has no column {name!r}; its columns are {header}")
    X = np.empty((len(body), len(wanted)), dtype=dtype)
    for j, name in enumerate(wanted):
        X[:, j] = _numeric_column(path, body, header.index(name), name, allow_missing)
    y = None
    if target is not None:
        y = _numeric_column(path, body, header.index(target), target, allow_missing).astype(dtype)
    return X, y


def _numeric_column(
    path: Path, body: list[list[str]], j: int, name: str, allow_missing: bool
) -> np.ndarray:
    out = np.empty(len(body), dtype=np.float64)
    for k, row in enumerate(body):
        cell = row[j].strip()
        if cell == "":
            if not allow_missing:
                raise InputError(
                    f"{path}: data row {k + 1}, column {name!r} is empty; fill it or pass "
                    "allow_missing=True to read it as NaN"
                )
            out[k] = np.nan
            continue
        try:
            out[k] = float(cell)
        except ValueError:
            hint = " (a date or label column? leave it out with columns=[...])" if k == 0 else ""
            raise InputError(
                f"{path}: data row {k + 1}, column {name!r} holds {cell!r}, which is not a "
                f"number{hint}"
            ) from None
        if not np.isfinite(out[k]) and not (allow_missing and np.isnan(out[k])):
            raise InputError(
                f"{path}: data row {k + 1}, column {name!r} holds {cell!r}, which is not a "
                "finite number"
                + ("" if allow_missing else "; pass allow_missing=True to read NaN as missing")
            )
    return out


def decode_error(path: Path, encoding: str, err: UnicodeDecodeError) -> InputError:
    """The InputError for a file that is not valid `encoding` text."""
    return InputError(
        f"{path} is not valid {encoding} text (byte {err.object[err.start : err.start + 1]!r} "
        f"at position {err.start}); pass the file's real encoding, e.g. encoding='latin-1' "
        "or encoding='cp1252'"
    )


def load_text_file(path: PathLike, encoding: str = "utf-8") -> str:
    """The whole text of one file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such text file: {path.absolute()}")
    _check_encoding(encoding)
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError as err:
        raise decode_error(path, encoding, err) from err


def load_text_folder(
    path: PathLike, encoding: str = "utf-8", suffix: str = ".txt"
) -> tuple[list[str], list[str]]:
    """Texts and labels from a folder with one subfolder per label.

    `path/positive/a.txt` gives the text of `a.txt` with label "positive". Subfolders and
    files are read in sorted order, so the result is the same on every machine.
    Returns:
        texts, labels: two lists of the same length; map labels to ids with
        `sorted(set(labels))`.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no such folder: {path.absolute()}")
    _check_encoding(encoding)
    folders = sorted(p for p in path.iterdir() if p.is_dir())
    if not folders:
        raise InputError(f"{path} has no subfolders; expected one subfolder per label")
    texts: list[str] = []
    labels: list[str] = []
    for folder in folders:
        for file in sorted(folder.glob(f"*{suffix}")):
            texts.append(load_text_file(file, encoding))
            labels.append(folder.name)
    if not texts:
        names = [f.name for f in folders]
        raise InputError(f"{path}: no *{suffix} files in its subfolders {names}")
    return texts, labels


def load_numpy(
    path: PathLike, x_key: str = "X", y_key: str | None = "y"
) -> tuple[np.ndarray, np.ndarray | None]:
    """Arrays from a .npy file (X only) or a .npz archive (X and, if present, y).

    Pickled objects are never loaded (`allow_pickle=False`): a file can run code when
    unpickled. Returns (X, y) with y None when there is no `y_key` array.
    """
    path = Path(path)
    if path.suffix not in (".npy", ".npz"):
        raise InputError(f"{path}: expected a .npy or .npz file, got suffix {path.suffix!r}")
    if not path.is_file():
        raise FileNotFoundError(f"no such NumPy file: {path.absolute()}")
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False), None
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            if x_key not in keys:
                raise InputError(f"{path} has no array {x_key!r}; its arrays are {keys}")
            X = archive[x_key]
            y = archive[y_key] if y_key is not None and y_key in keys else None
    except InputError:
        raise
    except ValueError as err:
        if "pickle" not in str(err):
            raise InputError(f"{path}: not a valid NumPy {path.suffix} file ({err})") from err
        raise InputTypeError(
            f"{path} holds Python objects (e.g. a ragged object array), which are not loaded "
            "for safety; save numeric arrays instead, e.g. padded X plus a lengths array"
        ) from err
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise InputError(f"{path}: not a valid NumPy {path.suffix} file ({err})") from err
    return X, y
