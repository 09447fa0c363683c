"""SequenceTagger (a label per step) and CharLanguageModel (next character) learn small
real tasks, survive save / load, and reject bad input with errors that name the cause."""

import math
from collections import Counter

import numpy as np
import pytest

from deeprnn.errors import InputError, InputTypeError
from deeprnn.estimators import CharLanguageModel, SequenceTagger

FAST = {"num_layers": 1, "hidden_size": 16, "patience": None, "validation_fraction": 0}
TEXT = "the cat sat on the mat. the dog sat on the log. " * 40


def tagged(n: int, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """Letters a..e; a step is "same" when it repeats the letter before it, else "vowel"
    (a, e) or "cons": a per-step rule that needs the previous step."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for _ in range(n):
        tokens = [str(c) for c in rng.choice(list("abcde"), int(rng.integers(5, 15)))]
        X.append(tokens)
        y.append(
            [
                "same" if t and tokens[t] == tokens[t - 1] else "vowel" if c in "ae" else "cons"
                for t, c in enumerate(tokens)
            ]
        )
    return X, y


@pytest.fixture(scope="module")
def tagger():
    X, y = tagged(300, seed=0)
    return SequenceTagger(embedding_dim=8, epochs=10, batch_size=16, **FAST).fit(X, y)


@pytest.fixture(scope="module")
def lm():
    return CharLanguageModel(
        embedding_dim=16, epochs=30, batch_size=8, bptt_steps=32, **{**FAST, "hidden_size": 32}
    ).fit(TEXT)


def test_tagger_learns_a_per_step_rule(tagger):
    X, y = tagged(100, seed=1)
    majority = max(Counter(t for seq in y for t in seq).values()) / sum(map(len, y))  # ~0.5
    assert tagger.score(X, y) > majority + 0.3
    pred = tagger.predict(X[:3])
    assert [len(p) for p in pred] == [len(x) for x in X[:3]]
    assert set(np.concatenate(pred)) <= {"same", "vowel", "cons"}
    proba = tagger.predict_proba(X[:2])
    assert proba[0].shape == (len(X[0]), 3)
    np.testing.assert_allclose(proba[1].sum(axis=1), 1.0, rtol=1e-5)


def test_tagger_on_float_features():
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(int(rng.integers(4, 9)), 2)) for _ in range(20)]
    y = [np.where(x[:, 0] > 0, "up", "down") for x in X]
    tagger = SequenceTagger(epochs=2, **FAST).fit(X, y)
    assert tagger.input_kind_ == "features" and tagger.n_features_in_ == 2
    assert [len(p) for p in tagger.predict(X[:4])] == [len(x) for x in X[:4]]
    with pytest.raises(InputError, match="X holds tokens but the tagger was fitted on features"):
        tagger.predict([["a", "b"]])


def test_tagger_errors(tagger):
    X, y = tagged(4, seed=2)
    y[2] = y[2][:-1]
    with pytest.raises(InputError, match=r"y\[2\] has \d+ labels but X\[2\] has \d+ steps"):
        SequenceTagger(**FAST).fit(X, y)
    X, y = tagged(2, seed=3)
    y[1][0] = "adverb"
    with pytest.raises(InputError, match=r"unseen at fit time: \['adverb'\]"):
        tagger.score(X, y)
    with pytest.raises(InputTypeError, match="pass one list of tokens per sequence"):
        tagger.predict(["a b c"])
    with pytest.raises(InputError, match=r"X\[1\] is empty"):
        tagger.predict([["a"], []])


def test_language_model_beats_the_unigram_entropy(lm):
    counts = np.array(list(Counter(TEXT).values()), dtype=float)
    p = counts / counts.sum()
    unigram_bits = float(-(p * np.log2(p)).sum())  # ~3.3 bits
    bpc = lm.bits_per_char(TEXT[:400])
    assert bpc < 0.5 * unigram_bits
    assert lm.score(TEXT[:400]) == pytest.approx(-bpc)
    assert lm.history_["train_loss"][-1] < lm.history_["train_loss"][0]
    assert math.isfinite(lm.bits_per_char(["the cat sat"]))  # a list: texts joined by "\n"


def test_generate_is_seeded_and_stays_in_the_alphabet(lm):
    text = lm.generate("the ", 80, include_prompt=False)
    assert len(text) == 80 and set(text) <= set(TEXT)
    assert lm.generate("the ", 80) == "the " + text  # the prompt first, as the CLI prints
    assert text == lm.generate("the ", 80, include_prompt=False)  # seed = lm.seed
    assert lm.generate("the ", 80, random_state=1) == lm.generate("the ", 80, random_state=1)
    assert lm.generate("", 30, temperature=0.5, top_k=3) != ""
    assert lm.generate("the", 0) == "the"
    assert lm.generate("the cat sat on the ", 4, top_k=1, include_prompt=False) in ("mat.", "log.")


def test_language_model_errors(lm):
    with pytest.raises(InputError, match=r"prompt contains characters unseen at fit time: \['Z'"):
        lm.generate("Zebra", 5)
    with pytest.raises(InputError, match="unseen at fit time"):
        lm.score("the cat sat on the rug")
    with pytest.raises(InputError, match="temperature must be a float > 0"):
        lm.generate("the", 5, temperature=0)
    with pytest.raises(InputError, match="bidirectional must be False"):
        CharLanguageModel(bidirectional=True).fit(TEXT)
    with pytest.raises(InputError, match="too few to learn from"):
        CharLanguageModel().fit("ab")


@pytest.mark.parametrize("which", ["tagger", "lm"])
def test_save_load_round_trip(which, tagger, lm, tmp_path):
    est = tagger if which == "tagger" else lm
    est.save(tmp_path)
    loaded = type(est).load(tmp_path)
    if which == "tagger":
        X, _ = tagged(10, seed=4)
        for a, b in zip(loaded.predict_proba(X), est.predict_proba(X)):
            np.testing.assert_array_equal(a, b)
        assert loaded.vocab_ == est.vocab_
    else:
        assert loaded.bits_per_char(TEXT[:200]) == est.bits_per_char(TEXT[:200])
        assert loaded.generate("the ", 40) == est.generate("the ", 40)
