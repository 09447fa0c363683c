"""Bad input at every public entry point: a deeprnn error (a ValueError or TypeError) that
names the argument, what it got and what it expected, before any deep torch error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deeprnn import DeepRNN, Head, SequenceModel, TensorBatches, TrainConfig, fit
from deeprnn.config_io import ConfigError
from deeprnn.data import (
    SeriesScaler,
    Tokenizer,
    Vocabulary,
    batches,
    load_csv,
    load_dataset,
    load_numpy,
    load_text_file,
    load_text_folder,
    make_windows,
    pad_batch,
    pad_sequences,
    time_split,
    validate_sequences,
)
from deeprnn.errors import DeepRNNError, InputError, InputTypeError, NotFittedError
from deeprnn.estimators import (
    CharLanguageModel,
    Forecaster,
    SequenceClassifier,
    SequenceRegressor,
    SequenceTagger,
    TextClassifier,
)
from deeprnn.estimators.classifiers import UnknownTokensWarning

TINY = dict(epochs=1, hidden_size=4, num_layers=1, batch_size=4, validation_fraction=0)
QUIET = TrainConfig(epochs=1, verbose=0)


def raises(kind, match):
    """pytest.raises for one of our error types (never a bare torch / NumPy exception)."""
    assert issubclass(kind, DeepRNNError) and issubclass(kind, (ValueError, TypeError))
    return pytest.raises(kind, match=match)


# ---- DeepRNN, Head, SequenceModel ----------------------------------------------------------


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return DeepRNN(3, 4, num_layers=2)


@pytest.mark.parametrize(
    "x, kind, match",
    [
        (torch.zeros(5, 3), InputError, r"x must have shape \(batch, time, features\), got 2"),
        (torch.zeros(1, 2, 5, 3), InputError, r"got 4 dimensions"),
        (torch.zeros(2, 5, 7), InputError, r"x has 7 features .* model expects 3"),
        (torch.zeros(2, 5, 3, dtype=torch.long), InputTypeError, r"floating-point.*int64"),
        (torch.zeros(2, 5, 3, dtype=torch.float64), InputTypeError, r"dtype torch.float64 but"),
        (torch.zeros(2, 5, 3).half(), InputTypeError, r"float16 but the model's weights"),
        (torch.zeros(2, 0, 3), InputError, r"x has 0 time steps"),
        (torch.tensor([[[0.0, float("nan"), 0.0]]]), InputError, r"NaN or inf.*\(0, 0, 1\)"),
        (torch.full((1, 2, 3), float("inf")), InputError, r"x contains NaN or inf"),
        (np.zeros((2, 5, 3), np.float32), InputTypeError, r"x must be a torch.Tensor.*ndarray"),
    ],
)
def test_deeprnn_rejects_bad_x(net, x, kind, match):
    with raises(kind, match):
        net(x)


@pytest.mark.parametrize(
    "lengths, kind, match",
    [
        ([6, 1], InputError, r"lengths must lie in \[0, 5\].*max 6"),
        ([-1, 2], InputError, r"lengths must lie in \[0, 5\].*min -1"),
        ([1.5, 2.0], InputTypeError, r"lengths must hold integers, got dtype torch.float32"),
        ([1, 2, 3], InputError, r"lengths must have shape \(2,\)"),
        ("ab", InputTypeError, r"lengths must be a sequence of ints"),
    ],
)
def test_deeprnn_rejects_bad_lengths(net, lengths, kind, match):
    with raises(kind, match):
        net(torch.zeros(2, 5, 3), lengths=lengths)


def test_deeprnn_rejects_bad_state(net):
    good = [(torch.zeros(2, 4), torch.zeros(2, 4))] * 2
    with raises(InputError, r"state\[0\] .* dtype torch.float32 .*int64"):
        net(torch.zeros(2, 5, 3), state=[(good[0][0].long(), good[0][1]), good[1]])
    with raises(InputError, r"state\[1\] contains NaN or inf"):
        net(torch.zeros(2, 5, 3), state=[good[0], (torch.full((2, 4), np.nan), good[1][1])])
    with raises(InputTypeError, r"state must be a list with one entry per layer \(2\), got str"):
        net(torch.zeros(2, 5, 3), state="h")


@pytest.mark.parametrize(
    "kwargs, kind, match",
    [
        (dict(residual="yes"), InputTypeError, r"residual must be True or False, got 'yes'"),
        (dict(bidirectional=1), InputTypeError, r"bidirectional must be True or False, got 1"),
        (dict(dropout=float("nan")), InputError, r"dropout must be a float in \[0, 1\), got nan"),
        (dict(num_layers=2.0), InputError, r"num_layers must be a positive int or None, got 2.0"),
        (dict(cell=["lstm"], hidden_size=[4, 4]), InputError, r"cell has 1 entries but num_l"),
    ],
)
def test_deeprnn_rejects_bad_arguments(kwargs, kind, match):
    args = dict(input_size=3, hidden_size=4)
    args.update(kwargs)
    with raises(kind, match):
        DeepRNN(**args)


def test_head_and_model_reject_bad_input():
    head = Head(4, 2)
    with raises(InputError, r"head input must be \(batch, time, 4\), got list"):
        head([[1.0]])
    with raises(InputTypeError, r"head input has dtype torch.int64; the head's weights are"):
        head(torch.ones(2, 3, 4, dtype=torch.long))
    with raises(InputError, r"lengths must lie in \[0, 3\]"):
        head(torch.zeros(2, 3, 4), lengths=[5, 1])
    with raises(InputError, r"attention_size must be a positive int, got -1"):
        Head(4, 2, pooling="attention", attention_size=-1)
    with raises(InputTypeError, r"body must be an nn.Module .*got str"):
        SequenceModel("lstm", head)
    model = SequenceModel(DeepRNN(3, 4), head, torch.nn.Embedding(5, 3))
    with raises(InputError, r"token ids must lie in \[0, 5\), got \[1, 7\]"):
        model(torch.tensor([[1, 7]]))
    with raises(InputTypeError, r"x must be integer token ids"):
        model(torch.zeros(1, 2, 3))


# ---- fit: batches, configs --------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SequenceModel(DeepRNN(3, 4), Head(4, 2))


def xy(n=4, t=3):
    return torch.randn(n, t, 3), torch.tensor([0, 1] * (n // 2))


def test_fit_rejects_bad_batches(model):
    x, y = xy()
    with raises(InputError, r"training batch 0: lengths must lie in \[0, 3\].*max 5"):
        fit(model, [(x[:2], torch.tensor([5, 1]), y[:2])], config=QUIET)
    with raises(InputError, r"training batch 0 holds only padding \(every length is 0\)"):
        fit(model, [(x[:2], torch.tensor([0, 0]), y[:2])], config=QUIET)
    with raises(InputError, r"yielded no batches"):
        fit(model, TensorBatches(x[:0], y[:0]), config=QUIET)
    with raises(InputTypeError, r"train must be an iterable of batches, got int"):
        fit(model, 5, config=QUIET)
    with raises(InputError, r"x contains NaN or inf"):
        fit(model, TensorBatches(torch.full_like(x, np.nan), y), config=QUIET)
    with raises(InputError, r"X is ragged or not an array"):
        TensorBatches([[1.0, 2.0], [1.0]])
    with raises(InputError, r"X must be an array with one row per sequence, got 3.0"):
        TensorBatches(3.0)


@pytest.mark.parametrize(
    "config, kind, match",
    [
        (dict(epochs="3"), InputTypeError, r"TrainConfig.epochs must be int, got str '3'"),
        (dict(lr=float("inf")), InputError, r"TrainConfig.lr must be finite, got inf"),
        (dict(lr=float("nan")), InputError, r"TrainConfig.lr must be finite, got nan"),
        (dict(seed=2**80), InputError, r"TrainConfig.seed must be an int in \[0, 2\*\*63\)"),
        (dict(momentum=-1.0), InputError, r"TrainConfig.momentum must be >= 0, got -1.0"),
        (dict(class_weights=(-1.0, 1.0)), InputError, r"TrainConfig.class_weights must be"),
        (dict(max_bad_steps=0), InputError, r"TrainConfig.max_bad_steps must be None or an int"),
        (dict(keep_checkpoints=0), InputError, r"TrainConfig.keep_checkpoints must be an int >="),
        (dict(bad_step_lr_factor=0.0), InputError, r"bad_step_lr_factor must be a float in"),
        (dict(verbose="loud"), InputTypeError, r"TrainConfig.verbose must be int, got str"),
    ],
)
def test_fit_rejects_bad_train_configs(model, config, kind, match):
    x, y = xy()
    with raises(kind, match):
        fit(model, TensorBatches(x, y), config=TrainConfig(**config))


# ---- data pipeline ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, kind, match",
    [
        (lambda: validate_sequences([]), InputError, r"X is empty; expected at least one sequence"),
        (lambda: validate_sequences([np.zeros((0, 2))]), InputError, r"X\[0\] is empty \(0 st"),
        (lambda: validate_sequences([[[1, 2], [3]]]), InputError, r"X\[0\] is ragged"),
        (
            lambda: validate_sequences([np.zeros((2, 2)), np.zeros((2, 3))]),
            InputError,
            r"ragged across sequences: X\[0\] has 2 features but X\[1\] has 3",
        ),
        (lambda: validate_sequences([np.array([1.0, np.inf])]), InputError, r"X\[0\] .*inf at"),
        (lambda: validate_sequences(["abc"]), InputTypeError, r"X\[0\] holds <U3 values"),
        (lambda: validate_sequences(np.zeros((2, 3, 4, 5))), InputError, r"shape \(2, 3, 4, 5\)"),
        (lambda: validate_sequences(None), InputTypeError, r"X must be .*, got NoneType"),
        (lambda: pad_batch([np.zeros(3)], value="x"), InputTypeError, r"value must be a number"),
        (lambda: list(batches([np.zeros(3)], y=[np.nan])), InputError, r"y contains NaN or inf"),
        (lambda: list(batches([np.zeros(3)], seed=-1)), InputError, r"seed must be an int >= 0"),
        (
            lambda: list(batches(np.zeros((2, 3)), lengths=[0, 2])),
            InputError,
            r"lengths must lie in \[1, 3\]",
        ),
        (
            lambda: list(batches(np.zeros((2, 3)), lengths=[4, 2])),
            InputError,
            r"lengths must lie in \[1, 3\].*max 4",
        ),
        (
            lambda: make_windows(np.zeros(5), 4, 3),
            InputError,
            r"series has 5 steps, shorter than lookback \+ horizon = 4 \+ 3 = 7",
        ),
        (lambda: make_windows([], 1, 1), InputError, r"series is empty"),
        (lambda: make_windows(np.zeros(9), 2, 1, dtype="foo"), InputTypeError, r"dtype must be"),
        (lambda: make_windows(np.r_[1.0, np.nan], 1, 1), InputError, r"NaN or inf at step 1"),
        (lambda: time_split(10, val="a"), InputError, r"val must be a fraction in \[0, 1\)"),
        (lambda: SeriesScaler().fit(["a"]), InputError, r"SeriesScaler.fit must be a numeric"),
        (lambda: SeriesScaler().fit(np.full(3, 1e308)), InputError, r"values are too large"),
        (lambda: SeriesScaler().transform([1.0]), NotFittedError, r"not fitted"),
        (lambda: Tokenizer().tokenize(None), InputTypeError, r"text must be a str, got NoneType"),
        (lambda: Vocabulary.build([[1, 2]]), InputTypeError, r"token_lists\[0\] holds int 1"),
        (lambda: Vocabulary.build(None), InputTypeError, r"token_lists must be a list of token"),
        (lambda: Vocabulary(["<pad>", "<unk>", 5]), InputTypeError, r"tokens must be str, got"),
        (lambda: Vocabulary.build([["a"]]).encode([["a"]]), InputTypeError, r"list of str tok"),
        (lambda: Vocabulary.build([["a"]]).decode([1.5]), InputTypeError, r"ids must be integ"),
        (lambda: Vocabulary.build([["a"]]).decode([7]), InputError, r"id 7 is outside the voc"),
        (lambda: pad_sequences(None), InputTypeError, r"seqs must be a list of sequences"),
        (lambda: pad_sequences([[1]], dtype="foo"), InputTypeError, r"dtype must be a NumPy"),
        (lambda: load_dataset(["a"]), InputTypeError, r"name must be a str, got list"),
        (lambda: load_dataset("waveforms", n_train=0), InputError, r"n_train must be an int >="),
    ],
)
def test_data_pipeline_rejects_bad_input(call, kind, match):
    with raises(kind, match):
        call()


def test_loaders_reject_bad_files(tmp_path):
    (tmp_path / "cells.csv").write_text("a,b\n1,2\n3,x\n")
    with raises(InputError, r"cells.csv: data row 2, column 'b' holds 'x', which is not a num"):
        load_csv(tmp_path / "cells.csv")
    (tmp_path / "inf.csv").write_text("a\n1\ninf\n")
    with raises(InputError, r"data row 2, column 'a' holds 'inf', which is not a finite"):
        load_csv(tmp_path / "inf.csv")
    with raises(InputError, r"encoding must name a text encoding .*'utf-99'"):
        load_csv(tmp_path / "cells.csv", encoding="utf-99")
    with raises(InputError, r"delimiter must be one character, got ''"):
        load_csv(tmp_path / "cells.csv", delimiter="")
    with raises(InputTypeError, r"columns must be a list of column names, got one str 'a'"):
        load_csv(tmp_path / "cells.csv", columns="a")
    (tmp_path / "latin.csv").write_bytes("a,b\n1,\xe9\n".encode("latin-1"))
    with raises(InputError, r"latin.csv is not valid utf-8 text .*encoding='latin-1'"):
        load_csv(tmp_path / "latin.csv")
    (tmp_path / "t.txt").write_bytes("h\xe9llo".encode("latin-1"))
    with raises(InputError, r"t.txt is not valid utf-8 text \(byte b'\\xe9' at position 1\)"):
        load_text_file(tmp_path / "t.txt")
    (tmp_path / "docs" / "pos").mkdir(parents=True)
    (tmp_path / "docs" / "pos" / "a.txt").write_bytes(b"\xff\xfebad")
    with raises(InputError, r"a.txt is not valid utf-8 text"):
        load_text_folder(tmp_path / "docs")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not a zip")
    with raises(InputError, r"bad.npz: not a valid NumPy .npz file"):
        load_numpy(tmp_path / "bad.npz")
    np.save(tmp_path / "ok.npy", np.zeros((2, 3)))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "ok.npy").read_bytes()[:100])
    with raises(InputError, r"cut.npy: not a valid NumPy .npy file"):
        load_numpy(tmp_path / "cut.npy")


# ---- estimators -----------------------------------------------------------------------------


def sequences(n=8, features=2, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(int(rng.integers(3, 7)), features)) for _ in range(n)]


@pytest.fixture(scope="module")
def classifier():
    return SequenceClassifier(**TINY).fit(sequences(), [0, 1] * 4)


@pytest.fixture(scope="module")
def text_classifier():
    return TextClassifier(**TINY).fit(["good film", "bad plot"] * 4, ["p", "n"] * 4)


def test_classifiers_reject_bad_input(classifier, text_classifier):
    with raises(InputError, r"X has 5 features per step but the estimator was fitted on 2"):
        classifier.predict([np.zeros((3, 5))])
    with raises(InputError, r"X\[0\] contains NaN at step 0"):
        classifier.predict([np.full((3, 2), np.nan)])
    with raises(InputError, r"X is empty; expected at least one sequence"):
        classifier.predict([])
    with raises(InputError, r"y holds labels unseen at fit time: \[5\]"):
        classifier.score(sequences(), [5] * 8)
    with raises(InputError, r"y\[1\] is nan, a missing label"):
        SequenceClassifier(**TINY).fit(sequences(), [0.0, np.nan] * 4)
    with raises(InputError, r"y\[1\] is None, a missing label"):
        SequenceClassifier(**TINY).fit(sequences(), [0, None] * 4)
    with raises(InputError, r"y holds a single class \[0\]"):
        SequenceClassifier(**TINY).fit(sequences(), [0] * 8)
    with raises(InputError, r"X holds values up to 1e\+300 .* beyond float32's range"):
        SequenceClassifier(**TINY, standardize=False).fit([np.full((3, 2), 1e300)] * 8, [0, 1] * 4)
    with raises(InputError, r"X holds no tokens at all"):
        TextClassifier(**TINY).fit(["", " "] * 4, [0, 1] * 4)
    with raises(InputError, r"no token is seen min_freq = 50 times"):
        TextClassifier(**TINY, min_freq=50).fit(["good film", "bad plot"] * 4, [0, 1] * 4)
    with pytest.warns(UnknownTokensWarning, match=r"1 of 2 texts have no token the vocabulary"):
        text_classifier.predict(["zzz qqq", "good"])


@pytest.mark.parametrize(
    "params, kind, match",
    [
        (dict(epochs="2"), ConfigError, r"epochs: expected int or None, got str '2'"),
        (dict(batch_size=0), ConfigError, r"batch_size: expected an int >= 1, got 0"),
        (dict(seed=-1), ConfigError, r"seed: expected an int in \[0, 2\*\*32\), got -1"),
        (dict(lr="fast"), ConfigError, r"lr: expected float, got str 'fast'"),
        (dict(lr=-1.0), InputError, r"TrainConfig.lr = -1.0 is out of range"),
        (dict(hidden_size=0), InputError, r"hidden_size must hold positive ints, got 0"),
        (dict(validation_fraction=1.0), InputError, r"validation_fraction must be a float in"),
        (dict(pooling="max"), InputError, r"pooling must be one of"),
    ],
)
def test_estimator_arguments_are_checked_at_fit(params, kind, match):
    with raises(kind, match):
        SequenceClassifier(**{**TINY, **params}).fit(sequences(), [0, 1] * 4)


def test_regressor_forecaster_tagger_and_language_model_reject_bad_input():
    with raises(InputError, r"y contains NaN or inf at row 0"):
        SequenceRegressor(**TINY).fit(sequences(), [np.nan] * 8)
    reg = SequenceRegressor(**TINY).fit(sequences(), np.arange(8.0))
    with raises(InputError, r"y contains NaN or inf at row 0"):
        reg.score(sequences(), [np.nan] * 8)
    series = np.sin(np.arange(40) / 3)
    with raises(InputError, r"y has 40 steps, shorter than lookback \+ horizon = 30 \+ 20"):
        Forecaster(lookback=30, horizon=20, **TINY).fit(series)
    with raises(InputError, r"y contains NaN or inf at step 40"):
        Forecaster(lookback=6, **TINY).fit(np.r_[series, np.nan])
    fc = Forecaster(lookback=6, select="off", **TINY).fit(series)
    with raises(InputError, r"y is empty"):
        fc.score([])
    with raises(InputError, r"y has 3 steps; a forecast needs the last lookback = 6"):
        fc.predict(y=series[:3])
    with raises(InputError, r"y\[0\] has 1 labels but X\[0\] has 2 steps"):
        SequenceTagger(**TINY).fit([["a", "b"]], [["x"]])
    lm = CharLanguageModel(**TINY, bptt_steps=4).fit("abcab " * 10)
    with raises(InputError, r"prompt contains characters unseen at fit time: \['q', 'z'\]"):
        lm.generate("zq", 3)
    with raises(InputError, r"temperature must be a float > 0 and finite, got inf"):
        lm.generate("ab", 3, temperature=float("inf"))
    with raises(InputError, r"random_state must be None or an int in \[0, 2\*\*63\)"):
        lm.generate("ab", 3, random_state=2**80)
