"""fold_ensemble: a data-aware fit that picked its updates by folds keeps the fold models and
predicts with them and the refit model averaged; save / load, export and resume carry them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deeprnn.estimators import RNNEstimator, SequenceClassifier, SequenceRegressor, defaults
from deeprnn.train import CheckpointError

TINY = dict(num_layers=1, hidden_size=4, seed=3)


@pytest.fixture(autouse=True)
def _few_updates(monkeypatch):
    monkeypatch.setattr(defaults, "UPDATES", 30)
    monkeypatch.setattr(defaults, "MIN_EPOCHS", 2)


def _data(n=24, t=20, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, t, 2)).astype(np.float32)
    y = (X[:, :, 0].mean(1) > 0).astype(int)
    return X, y


def _alone(est, model, X, method):
    """What `method` gives with `model` as the only network of `est`."""
    keep = est.model_, est.fold_models_
    est.model_, est.fold_models_ = model, []
    try:
        return getattr(est, method)(X)
    finally:
        est.model_, est.fold_models_ = keep


@pytest.fixture(scope="module")
def fitted():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(defaults, "UPDATES", 30)
        mp.setattr(defaults, "MIN_EPOCHS", 2)
        X, y = _data()
        return SequenceClassifier(**TINY).fit(X, y)


def test_the_fold_models_predict_with_the_refit_one(fitted):
    X, _ = _data(seed=1)
    assert fitted.defaults_.value("validation") == "cv 3" and len(fitted.fold_models_) == 3
    members = [fitted.model_, *fitted.fold_models_]
    probs = [_alone(fitted, m, X, "predict_proba") for m in members]
    np.testing.assert_allclose(fitted.predict_proba(X), np.mean(probs, axis=0), atol=1e-6)
    assert not np.allclose(probs[0], probs[1])  # other weights: the average is not one model
    # Off: the refit model alone, trained exactly as with the ensemble on.
    X_train, y_train = _data()
    single = SequenceClassifier(**TINY, fold_ensemble=False).fit(X_train, y_train)
    assert single.fold_models_ == []
    np.testing.assert_allclose(single.predict_proba(X), probs[0], atol=1e-6)


def test_no_fold_models_without_folds():
    X, y = _data()
    given = SequenceClassifier(**TINY, validation_fraction=0, epochs=2).fit(X, y)
    assert given.fold_models_ == []


def test_a_regressor_averages_its_predictions():
    X, _ = _data()
    target = X[:, :, 1].sum(1)
    reg = SequenceRegressor(**TINY).fit(X, target)
    assert len(reg.fold_models_) == 3
    preds = [_alone(reg, m, X, "predict") for m in [reg.model_, *reg.fold_models_]]
    np.testing.assert_allclose(reg.predict(X), np.mean(preds, axis=0), rtol=1e-5, atol=1e-5)


def test_save_and_load_carry_the_fold_models(fitted, tmp_path):
    X, _ = _data(seed=1)
    path = fitted.save(tmp_path / "m")
    assert sorted(p.name for p in path.glob("fold*.safetensors")) == [
        "fold0.safetensors", "fold1.safetensors", "fold2.safetensors"]  # fmt: skip
    loaded = RNNEstimator.load(path)
    assert len(loaded.fold_models_) == 3
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    (path / "fold1.safetensors").write_bytes(b"not weights")
    with pytest.raises(CheckpointError, match="fold1.safetensors"):
        RNNEstimator.load(path)
    fitted.save(path)
    meta = json.loads((path / "estimator.json").read_text())
    meta["folds_sha256"] = "abc"
    (path / "estimator.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="folds_sha256 must be a list"):
        RNNEstimator.load(path)


def _network_inputs(est, X):
    return torch.from_numpy(np.stack(est._encode_inputs(X, fitting=False)))


def test_export_is_one_graph_of_every_member(fitted, tmp_path):
    X, _ = _data(seed=1)
    module = torch.jit.load(str(fitted.export(tmp_path / "m.pt", "torchscript")))
    got = module(_network_inputs(fitted, X)).detach().numpy()
    np.testing.assert_allclose(got, fitted.predict_proba(X), atol=1e-5)
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(fitted.export(tmp_path / "m.onnx")))
    x = _network_inputs(fitted, X).numpy()
    got = session.run(None, {"x": x, "lengths": np.full(len(X), X.shape[1], np.int64)})[0]
    np.testing.assert_allclose(got, fitted.predict_proba(X), atol=1e-5)


def test_a_resumed_fit_restores_the_fold_models(tmp_path):
    X, y = _data()
    run = tmp_path / "ckpt"
    first = SequenceClassifier(**TINY, checkpoint_dir=str(run)).fit(X, y)
    assert json.loads((run / "validation.json").read_text())["folds_sha256"]
    resumed = SequenceClassifier(**TINY, checkpoint_dir=str(run), resume=True)
    calls = []
    original = resumed._validate
    resumed._validate = lambda *a, **k: calls.append(1) or original(*a, **k)
    resumed.fit(X, y)
    assert calls == [] and len(resumed.fold_models_) == 3  # the folds did not run again
    np.testing.assert_allclose(resumed.predict_proba(X), first.predict_proba(X), atol=1e-6)
