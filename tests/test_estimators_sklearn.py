"""The estimators follow scikit-learn's conventions: get_params / set_params / clone, and
cross_val_score and GridSearchCV run on them for real (tiny data, few epochs)."""

import numpy as np
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit, cross_val_score

from deeprnn.data import load_dataset
from deeprnn.estimators import (
    CharLanguageModel,
    Forecaster,
    SequenceClassifier,
    SequenceRegressor,
    SequenceTagger,
    TextClassifier,
)

TINY = {"num_layers": 1, "hidden_size": 8, "epochs": 3, "patience": None, "validation_fraction": 0}


@pytest.fixture(scope="module")
def vowels():
    """Three speakers of japanese_vowels, 20 utterances each."""
    ds = load_dataset("japanese_vowels")
    keep = np.flatnonzero(ds.y_train < 3)
    keep = np.concatenate([keep[ds.y_train[keep] == k][:20] for k in range(3)])
    return [ds.X_train[i] for i in keep], ds.y_train[keep]


ALL = [
    SequenceClassifier(hidden_size=8),
    TextClassifier(min_freq=2),
    SequenceRegressor(pooling="mean"),
    SequenceTagger(embedding_dim=8),
    Forecaster(12, 3, relative=False),
    CharLanguageModel(bptt_steps=16),
]


@pytest.mark.parametrize("est", ALL, ids=lambda e: type(e).__name__)
def test_get_params_set_params_clone(est):
    params = est.get_params()
    assert {"cell", "num_layers", "hidden_size", "wiring", "residual", "layer_norm", "dropout",
            "bidirectional", "between", "outputs", "epochs", "batch_size", "lr", "optimizer",
            "seed", "verbose", "device", "validation_fraction", "patience",
            "clip_norm"} <= set(params)  # fmt: skip
    twin = clone(est)
    assert type(twin) is type(est) and twin is not est and twin.get_params() == params
    twin.set_params(hidden_size=5, cell="gru")
    assert twin.hidden_size == 5 and twin.cell == "gru" and est.get_params() == params
    assert not hasattr(twin, "model_")


def test_estimator_kinds():
    assert is_classifier(SequenceClassifier()) and is_classifier(TextClassifier())
    assert is_regressor(SequenceRegressor())
    defaults = SequenceClassifier().get_params()
    assert (defaults["cell"], defaults["num_layers"]) == ("lstm", 2)
    # Left to the data (deeprnn.estimators.defaults): decided at fit, recorded in defaults_.
    auto = ("hidden_size", "bidirectional", "epochs", "batch_size", "validation_fraction")
    assert all(defaults[k] is None for k in auto)
    assert (defaults["frontend"], defaults["pooling"]) == ("auto", "auto")
    assert (defaults["optimizer"], defaults["lr"], defaults["clip_norm"]) == ("adam", 3e-3, 1.0)


def test_cross_val_score_sequence_classifier(vowels):
    X, y = vowels
    scores = cross_val_score(SequenceClassifier(**TINY, batch_size=8), X, y, cv=3)
    assert scores.shape == (3,) and np.all((0 <= scores) & (scores <= 1))


def test_cross_val_score_text_classifier_and_regressor():
    texts = ["good fun", "bad day", "good day", "bad fun", "so good", "so bad"] * 2
    labels = ["pos", "neg"] * 6
    scores = cross_val_score(TextClassifier(**TINY, batch_size=4), texts, labels, cv=2)
    assert scores.shape == (2,)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 5, 2))
    r2 = cross_val_score(SequenceRegressor(**TINY), X, X[:, :, 0].sum(1), cv=2)
    assert r2.shape == (2,) and np.all(np.isfinite(r2))


def test_grid_search_over_hidden_size(vowels):
    X, y = vowels
    search = GridSearchCV(SequenceClassifier(**TINY, batch_size=8), {"hidden_size": [4, 8]}, cv=2)
    search.fit(X, y)
    assert search.best_params_["hidden_size"] in (4, 8)
    assert len(search.cv_results_["mean_test_score"]) == 2
    assert search.best_estimator_.hidden_size == search.best_params_["hidden_size"]
    assert search.predict(X[:3]).shape == (3,)


def test_grid_search_forecaster_with_time_series_split():
    rng = np.random.default_rng(0)
    series = np.sin(np.arange(150) / 3) + rng.normal(0, 0.1, 150)
    search = GridSearchCV(Forecaster(12, 3, **TINY), {"lookback": [6, 12]}, cv=TimeSeriesSplit(2))
    search.fit(series)  # each fold: fit on the past, score (-MAE) on the steps that follow
    assert np.all(search.cv_results_["mean_test_score"] < 0)
    assert search.best_estimator_.predict().shape == (3,)


def test_same_seed_same_model(vowels):
    X, y = vowels
    a = SequenceClassifier(**TINY, seed=3).fit(X, y).predict_proba(X[:5])
    b = SequenceClassifier(**TINY, seed=3).fit(X, y).predict_proba(X[:5])
    np.testing.assert_array_equal(a, b)
