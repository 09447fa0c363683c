"""Property-based tests of the data pipeline: validate_sequences, pad_batch, make_windows,
Tokenizer / Vocabulary and load_csv on generated files. Valid input never raises; invalid
input raises deeprnn's own errors (ValueError / TypeError subclasses), never a bare NumPy
or pandas error."""

from __future__ import annotations

import csv
import math
import tempfile
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
from hypothesis import given, settings

from deeprnn.data import (
    Tokenizer,
    Vocabulary,
    load_csv,
    make_windows,
    pad_batch,
    validate_sequences,
)
from tests.test_fuzz_model import FUZZ
from tests.test_fuzz_model import check_raises_ours as check

finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)
printable = st.characters(blacklist_categories=("Cs",))  # text a file can hold


@st.composite
def sequence_lists(draw) -> list[np.ndarray]:
    """1-5 sequences (T_i, F) or (T_i,), same F, float or int."""
    n, features = draw(st.integers(1, 5)), draw(st.sampled_from([None, 1, 2, 3]))
    integer = draw(st.booleans())
    seqs = []
    for _ in range(n):
        t = draw(st.integers(1, 8))
        shape = (t,) if features is None else (t, features)
        size = int(np.prod(shape))
        if integer:
            seqs.append(np.array(draw(st.lists(st.integers(-99, 99), min_size=size,
                                               max_size=size))).reshape(shape))  # fmt: skip
        else:
            seqs.append(np.array(draw(st.lists(finite, min_size=size, max_size=size)),
                                 dtype=np.float32).reshape(shape))  # fmt: skip
    return seqs


@settings(max_examples=40, **FUZZ)
@given(seqs=sequence_lists(), value=st.integers(-5, 5))
def test_valid_sequences_are_checked_and_padded(seqs, value):
    checked = validate_sequences(seqs)
    assert all(c.dtype == np.float64 and np.array_equal(c, s) for c, s in zip(checked, seqs))
    x, lengths = pad_batch(seqs, value=value)
    assert lengths.tolist() == [len(s) for s in seqs]
    assert x.shape == (len(seqs), max(lengths), *seqs[0].shape[1:])
    for row, s in zip(x, seqs):
        assert np.array_equal(row[: len(s)], s) and (row[len(s) :] == value).all()


@st.composite
def window_cases(draw):
    steps = draw(st.integers(2, 60))
    lookback = draw(st.integers(1, steps - 1))
    horizon = draw(st.integers(1, steps - lookback))
    channels = draw(st.sampled_from([None, 1, 2]))
    shape = (steps,) if channels is None else (steps, channels)
    values = np.array(draw(st.lists(finite, min_size=int(np.prod(shape)),
                                    max_size=int(np.prod(shape)))), dtype=np.float64)  # fmt: skip
    return values.reshape(shape), lookback, horizon, draw(st.integers(1, 3))


@settings(max_examples=40, **FUZZ)
@given(case=window_cases())
def test_valid_series_give_aligned_windows(case):
    series, lookback, horizon, stride = case
    X, Y = make_windows(series, lookback, horizon, stride=stride, dtype=np.float64)
    n = (len(series) - lookback - horizon) // stride + 1
    assert X.shape == (n, lookback, 1 if series.ndim == 1 else series.shape[1])
    assert Y.shape == (n, horizon, *series.shape[1:])
    for i in (0, n - 1):
        s = i * stride
        assert np.array_equal(X[i], series[s : s + lookback].reshape(lookback, -1))
        assert np.array_equal(Y[i], series[s + lookback : s + lookback + horizon])
    assert np.isfinite(X).all() and np.isfinite(Y).all()


@settings(max_examples=40, **FUZZ)
@given(texts=st.lists(st.text(printable, max_size=40), min_size=1, max_size=4),
       level=st.sampled_from(["word", "char"]), lower=st.booleans(),
       strip=st.booleans())  # fmt: skip
def test_any_text_tokenizes_and_round_trips_through_its_vocabulary(texts, level, lower, strip):
    tokenizer = Tokenizer(level, lower, strip)
    tokens = [tokenizer.tokenize(t) for t in texts]
    assert all(isinstance(tok, str) and tok for doc in tokens for tok in doc)
    vocab = Vocabulary.build(tokens)
    for doc in tokens:
        ids = vocab.encode(doc)
        assert all(0 <= i < len(vocab) for i in ids)
        assert vocab.decode(ids, skip_pad=False) == [t if t in vocab else "<unk>" for t in doc]
    assert Vocabulary.from_dict(vocab.to_dict()) == vocab


def write_csv(rows: list[list], encoding: str = "utf-8") -> Path:
    handle = tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, newline="",
                                         encoding=encoding)  # fmt: skip
    with handle:
        csv.writer(handle).writerows(rows)
    return Path(handle.name)


@st.composite
def tables(draw):
    cols, rows = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    values = [[draw(st.floats(-1e9, 1e9, allow_nan=False)) for _ in range(cols)]
              for _ in range(rows)]  # fmt: skip
    return [f"c{j}" for j in range(cols)], values


@settings(max_examples=30, **FUZZ)
@given(table=tables())
def test_numeric_csv_files_load_exactly(table):
    header, values = table
    path = write_csv([header, *[[repr(v) for v in row] for row in values]])
    try:
        X, y = load_csv(path)
    finally:
        path.unlink()
    assert y is None and np.array_equal(X, np.array(values))


# ---- invalid input -------------------------------------------------------------------------


@st.composite
def bad_sequences(draw):
    seqs = [s.astype(np.float64) for s in draw(sequence_lists())]
    i = draw(st.integers(0, len(seqs) - 1))
    wrong = draw(st.sampled_from(["nan", "empty", "strings", "none", "ndim", "features",
                                  "ragged-steps", "nothing", "not-a-list"]))  # fmt: skip
    if wrong == "nan":
        flat = seqs[i].reshape(-1)
        flat[draw(st.integers(0, flat.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    elif wrong == "empty":
        seqs[i] = seqs[i][:0]
    elif wrong == "strings":
        seqs[i] = np.array(draw(st.lists(st.text(printable, max_size=3), min_size=1, max_size=4)))
    elif wrong == "none":
        seqs[i] = None
    elif wrong == "ndim":
        seqs[i] = np.zeros((2, 2, draw(st.integers(1, 3))))
    elif wrong == "features":
        width = 1 if seqs[0].ndim == 1 else seqs[0].shape[1]
        seqs.append(np.zeros((3, width + draw(st.integers(1, 3)))))
    elif wrong == "ragged-steps":
        seqs[i] = [[1.0, 2.0], [3.0]]
    elif wrong == "nothing":
        seqs = []
    else:
        seqs = draw(st.sampled_from([None, 3, "abc", {"x": 1}, 2.5]))
    call = draw(st.sampled_from([validate_sequences, pad_batch]))
    return lambda: call(seqs)


@st.composite
def bad_windows(draw):
    series, lookback, horizon, stride = draw(window_cases())
    wrong = draw(st.sampled_from(["short", "lookback", "horizon", "stride", "nan", "ndim",
                                  "text", "dtype"]))  # fmt: skip
    dtype = np.float32
    if wrong == "short":
        lookback = len(series) + draw(st.integers(0, 5))
    elif wrong in ("lookback", "horizon", "stride"):
        value = draw(st.one_of(st.integers(-5, 0), st.floats(0.5, 4), st.text(max_size=2),
                               st.none(), st.booleans()))  # fmt: skip
        lookback, horizon, stride = [value if wrong == name else v for name, v in
                                     (("lookback", lookback), ("horizon", horizon),
                                      ("stride", stride))]  # fmt: skip
    elif wrong == "nan":
        series = series.copy()
        series.reshape(-1)[draw(st.integers(0, series.size - 1))] = np.nan
    elif wrong == "ndim":
        series = series.reshape(1, 1, *series.shape)
    elif wrong == "text":
        series = draw(st.lists(st.text(printable, min_size=1, max_size=3), min_size=1))
    else:
        dtype = draw(st.sampled_from(["foo", np.int64, object, "U3"]))
    return lambda: make_windows(series, lookback, horizon, stride=stride, dtype=dtype)


@st.composite
def bad_text(draw):
    wrong = draw(st.sampled_from(["level", "tokenize", "build", "encode", "decode", "init"]))
    vocab = Vocabulary.build([["a", "b"]])
    junk = draw(
        st.one_of(st.integers(), st.none(), st.floats(), st.lists(st.integers(), min_size=1))
    )
    if wrong == "level":
        level = draw(st.text(max_size=5).filter(lambda s: s not in ("word", "char")))
        return lambda: Tokenizer(level)
    if wrong == "tokenize":
        return lambda: Tokenizer().tokenize(junk)
    if wrong == "build":
        lists = [["a", junk]] if draw(st.booleans()) else junk
        return lambda: Vocabulary.build(lists)
    if wrong == "encode":
        tokens = draw(st.sampled_from([None, 5, [["a"]], [{"a"}], "ab"]))
        return lambda: vocab.encode(tokens)
    if wrong == "decode":
        ids = draw(st.one_of(st.lists(st.integers(4, 2**40), min_size=1, max_size=3),
                             st.lists(st.integers(-2**40, -1), min_size=1, max_size=3),
                             st.lists(st.floats(0.1, 3), min_size=1, max_size=3),
                             st.text(min_size=1, max_size=3)))  # fmt: skip
        return lambda: vocab.decode(ids)
    tokens = draw(st.sampled_from([[], ["a"], ["<pad>", "<unk>", 3], 7, None]))
    return lambda: Vocabulary(tokens)


@st.composite
def bad_csv(draw):
    """A numeric table with one cell that is not a finite number, or garbage bytes."""
    header, values = draw(tables())
    if draw(st.integers(0, 3)) == 0:
        data = draw(st.binary(max_size=200))
        encoding = draw(st.sampled_from(["utf-8", "latin-1"]))

        def garbage():
            handle = tempfile.NamedTemporaryFile(suffix=".csv", delete=False)
            with handle:
                handle.write(data)
            try:
                load_csv(handle.name, encoding=encoding)  # may even be a valid table
            finally:
                Path(handle.name).unlink()

        return garbage, True

    def not_a_number(cell: str) -> bool:
        try:
            return not math.isfinite(float(cell.strip()))
        except ValueError:
            return True

    cell = draw(st.text(printable, max_size=6).filter(not_a_number))
    rows = [header, *[[repr(v) for v in row] for row in values]]
    r, c = draw(st.integers(1, len(rows) - 1)), draw(st.integers(0, len(header) - 1))
    rows[r][c] = cell

    def one_bad_cell():
        path = write_csv(rows)
        try:
            load_csv(path)
        finally:
            path.unlink()

    return one_bad_cell, False


def run_corpus(strategy, examples: int) -> None:
    seen = []

    @settings(max_examples=examples, **FUZZ)
    @given(case=strategy)
    def check_case(case):
        seen.append(1)
        call, success_allowed = case if isinstance(case, tuple) else (case, False)
        check(call, success_allowed)

    check_case()
    assert len(seen) >= examples


def test_invalid_sequences_raise_our_errors():
    run_corpus(bad_sequences(), 60)


def test_invalid_windows_raise_our_errors():
    run_corpus(bad_windows(), 40)


def test_invalid_text_and_vocabularies_raise_our_errors():
    run_corpus(bad_text(), 40)


def test_invalid_csv_files_raise_our_errors():
    run_corpus(bad_csv(), 60)
