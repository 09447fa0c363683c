"""EnsembleClassifier / EnsembleRegressor: averaging, save / load, export as one graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deeprnn.errors import InputError
from deeprnn.estimators import (
    EnsembleClassifier,
    EnsembleRegressor,
    SequenceClassifier,
    SequenceRegressor,
)
from deeprnn.train import CheckpointError

KW = dict(hidden_size=6, epochs=2, batch_size=16, validation_fraction=0)


def _data(n=32, t=12):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, t, 2)).astype(np.float32)
    return X, (X[:, :, 0].sum(1) > 0).astype(int), X[:, :, 1].mean(1)


@pytest.fixture(scope="module")
def classifier():
    X, y, _ = _data()
    conv = {"channels": [4], "kernel_size": 3, "pool": 2}
    members = [
        SequenceClassifier(cell="gru", **KW),
        SequenceClassifier(cell="lstm", pooling="mean", seed=1, frontend=conv, **KW),
    ]
    return EnsembleClassifier(estimators=members).fit(X, y)


def test_classifier_averages_probabilities(classifier):
    X, y, _ = _data()
    probs = [m.predict_proba(X) for m in classifier.estimators_]
    assert not np.allclose(probs[0], probs[1])  # two different members
    np.testing.assert_allclose(classifier.predict_proba(X), (probs[0] + probs[1]) / 2)
    assert list(classifier.predict(X)) == list(classifier.classes_[(probs[0] + probs[1]).argmax(1)])
    assert 0 <= classifier.score(X, y) <= 1


def test_save_load_round_trip(classifier, tmp_path):
    X, _, _ = _data()
    classifier.save(tmp_path / "ens")
    assert not list((tmp_path / "ens").rglob("*.pkl"))
    loaded = EnsembleClassifier.load(tmp_path / "ens")
    np.testing.assert_allclose(loaded.predict_proba(X), classifier.predict_proba(X), atol=1e-6)
    assert [m.get_params() for m in loaded.estimators] == [
        m.get_params() for m in classifier.estimators
    ]
    with pytest.raises(CheckpointError, match="not a EnsembleRegressor"):
        EnsembleRegressor.load(tmp_path / "ens")
    with pytest.raises(CheckpointError, match="not a saved deeprnn ensemble"):
        EnsembleClassifier.load(tmp_path / "ens" / "members")


def _network_inputs(ens, X):
    seqs = ens.estimators_[0]._encode_inputs(X, fitting=False)  # the shared scaling
    return torch.from_numpy(np.stack(seqs))


def test_export_torchscript_is_one_averaging_graph(classifier, tmp_path):
    X, _, _ = _data()
    path = classifier.export(tmp_path / "ens.pt", "torchscript")
    module = torch.jit.load(str(path))
    x = _network_inputs(classifier, X)
    lengths = torch.full((len(X),), X.shape[1] - 3)  # shorter rows too
    got = module(x, lengths).detach().numpy()
    with torch.no_grad():
        outs = [m.model_.activate(m.model_(x, lengths=lengths)[0]).numpy()
                for m in classifier.estimators_]  # fmt: skip
    np.testing.assert_allclose(got, np.mean(outs, axis=0), atol=1e-5)
    full = module(x).detach().numpy()
    np.testing.assert_allclose(full, classifier.predict_proba(X), atol=1e-5)


def test_export_onnx(classifier, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    X, _, _ = _data()
    path = classifier.export(tmp_path / "ens.onnx", "onnx")
    session = ort.InferenceSession(str(path))
    x = _network_inputs(classifier, X).numpy()
    got = session.run(None, {"x": x, "lengths": np.full(len(X), X.shape[1], np.int64)})[0]
    np.testing.assert_allclose(got, classifier.predict_proba(X), atol=1e-5)


def test_regressor_averages_and_round_trips(tmp_path):
    X, _, target = _data()
    ens = EnsembleRegressor(
        estimators=[SequenceRegressor(**KW), SequenceRegressor(cell="gru", **KW)]
    ).fit(X, target)
    preds = [m.predict(X) for m in ens.estimators_]
    np.testing.assert_allclose(ens.predict(X), np.mean(preds, axis=0))
    loaded = EnsembleRegressor.load(ens.save(tmp_path / "reg"))
    np.testing.assert_allclose(loaded.predict(X), ens.predict(X), atol=1e-5)


def test_bad_members():
    X, y, _ = _data()
    with pytest.raises(InputError, match="at least one"):
        EnsembleClassifier(estimators=[]).fit(X, y)
    with pytest.raises(InputError, match="not a deeprnn estimator"):
        EnsembleClassifier(estimators=[object()]).fit(X, y)
    a = SequenceClassifier(**KW).fit(X, y)
    b = SequenceClassifier(standardize=False, **KW).fit(X, y)
    with pytest.raises(InputError, match="input_scaler_"):
        EnsembleClassifier.from_fitted([a, b]).export("unused.pt", "torchscript")
    c = SequenceClassifier(**KW).fit(X, np.where(y == 1, 2, y))
    with pytest.raises(InputError, match="other classes"):
        EnsembleClassifier.from_fitted([a, c])
