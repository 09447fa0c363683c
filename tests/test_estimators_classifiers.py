"""SequenceClassifier and TextClassifier learn real tasks, survive save / load, and reject
bad input with errors that name the cause."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from deeprnn.data import load_dataset
from deeprnn.errors import InputError, InputTypeError
from deeprnn.estimators import SequenceClassifier, TextClassifier
from deeprnn.estimators.classifiers import UnknownTokensWarning

# Small and fast: one layer, no held-out part, a fixed number of epochs.
FAST = {"num_layers": 1, "batch_size": 16, "patience": None, "validation_fraction": 0}


@pytest.fixture(scope="module")
def vowels():
    ds = load_dataset("japanese_vowels")
    names = np.array(ds.label_names)  # string labels, to exercise label handling
    return ds.X_train, names[ds.y_train], ds.X_test, names[ds.y_test]


@pytest.fixture(scope="module")
def speaker(vowels):
    X, y, _, _ = vowels
    return SequenceClassifier(hidden_size=16, epochs=10, **FAST).fit(X, y)


def keyword_texts(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Filler words around one keyword: good / great -> "pos", bad / awful -> "neg"."""
    rng = np.random.default_rng(seed)
    filler = "the a movie film plot actor scene was is it this and but very quite story".split()
    texts, labels = [], []
    for i in range(n):
        label = ("pos", "neg")[i % 2]
        words = list(rng.choice(filler, rng.integers(4, 10)))
        keyword = rng.choice(["good", "great"] if label == "pos" else ["bad", "awful"])
        words.insert(int(rng.integers(0, len(words) + 1)), str(keyword))
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


@pytest.fixture(scope="module")
def reviews():
    X, y = keyword_texts(200, seed=0)
    clf = TextClassifier(hidden_size=16, embedding_dim=16, epochs=10, **FAST).fit(X, y)
    return clf, keyword_texts(100, seed=1)


def test_sequence_classifier_beats_majority_on_japanese_vowels(speaker, vowels):
    _, _, X_test, y_test = vowels
    majority = max(np.mean(y_test == c) for c in set(y_test))  # 0.24
    assert speaker.score(X_test, y_test) > majority + 0.5
    proba = speaker.predict_proba(X_test[:5])
    assert proba.shape == (5, 9)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert list(speaker.classes_) == sorted(set(y_test))
    assert set(speaker.predict(X_test)) <= set(speaker.classes_)
    assert speaker.n_features_in_ == 12


def test_text_classifier_beats_majority_on_keywords(reviews):
    clf, (X_test, y_test) = reviews
    assert clf.score(X_test, y_test) > 0.8  # majority: 0.5
    assert clf.predict(["a great film", "an awful film"]).tolist() == ["pos", "neg"]


def test_text_with_only_unknown_words_still_predicts(reviews):
    clf, _ = reviews
    with pytest.warns(UnknownTokensWarning, match="3 of 3 texts have no token"):
        pred = clf.predict(["zzz qqq xyzzy", "", "!!!"])
    assert len(pred) == 3 and set(pred) <= {"pos", "neg"}


@pytest.mark.parametrize("which", ["sequence", "text"])
def test_save_load_round_trip_gives_same_predictions(which, speaker, vowels, reviews, tmp_path):
    clf, X = (speaker, vowels[2][:40]) if which == "sequence" else (reviews[0], reviews[1][0])
    clf.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "estimator.json",
        "model.safetensors",
    ]
    loaded = type(clf).load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    assert loaded.get_params() == clf.get_params()
    assert loaded.history_["train_loss"] == clf.history_["train_loss"]


def test_labels_of_any_hashable_type():
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(int(rng.integers(3, 6)), 2)) for _ in range(12)]
    y = [("a", 1), ("b", 2), 7] * 4  # tuples and an int: no order, kept as first seen
    clf = SequenceClassifier(hidden_size=4, epochs=1, **FAST).fit(X, y)
    assert clf.classes_.tolist() == [("a", 1), ("b", 2), 7]
    assert all(p in clf.classes_.tolist() for p in clf.predict(X))


def test_score_names_a_label_unseen_at_fit_time(speaker, vowels):
    X = vowels[2][:2]
    with pytest.raises(InputError, match=r"unseen at fit time: \['nobody'\]"):
        speaker.score(X, ["speaker 1", "nobody"])


def test_bad_sequences_give_clear_errors(speaker, vowels):
    X, y = list(vowels[0][:4]), vowels[1][:4]
    nan = [x.copy() for x in X]
    nan[2][3, 1] = np.nan
    with pytest.raises(InputError, match=r"X\[2\] contains NaN at step 3"):
        SequenceClassifier(**FAST).fit(nan, y)
    with pytest.raises(InputError, match="X is empty"):
        SequenceClassifier(**FAST).fit([], [])
    with pytest.raises(InputError, match="ragged across sequences"):
        SequenceClassifier(**FAST).fit([np.zeros((5, 12)), np.zeros((4, 11))], ["a", "b"])
    with pytest.raises(InputError, match="y has 3 labels but X has 4 sequences"):
        SequenceClassifier(**FAST).fit(X, y[:3])
    with pytest.raises(InputError, match="single class"):
        SequenceClassifier(**FAST).fit(X, ["a"] * 4)
    with pytest.raises(InputError, match="11 features per step but the estimator was fitted on 12"):
        speaker.predict([np.zeros((5, 11))])


def test_bad_arguments_surface_at_fit_not_init():
    clf = SequenceClassifier(cell="transformer", validation_fraction=2.0)  # stores only
    assert clf.get_params()["cell"] == "transformer"
    X, y = [np.zeros((3, 1)), np.ones((3, 1))], [0, 1]
    with pytest.raises(InputError, match="validation_fraction must be a float in"):
        clf.fit(X, y)
    with pytest.raises(InputError, match="cell must be one of"):
        clf.set_params(validation_fraction=0).fit(X, y)


def test_text_input_errors(reviews):
    clf, _ = reviews
    with pytest.raises(InputTypeError, match="got one str"):
        clf.predict("a great film")
    with pytest.raises(InputTypeError, match=r"X\[1\] must be a str"):
        clf.predict(["fine", 3])
    with pytest.raises(NotFittedError):
        TextClassifier().predict(["a text"])
