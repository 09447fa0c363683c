"""save(path) / load(path): a directory of safetensors + JSON; foreign, corrupt or
mismatched directories give a clear CheckpointError."""

import json

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from deeprnn.estimators import (
    RNNEstimator,
    SequenceClassifier,
    SequenceRegressor,
    TextClassifier,
)
from deeprnn.train import CheckpointError

TINY = {"num_layers": 1, "hidden_size": 4, "epochs": 1, "patience": None, "validation_fraction": 0}


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(int(rng.integers(3, 7)), 2)) for _ in range(10)]
    return SequenceRegressor(**TINY).fit(X, rng.normal(size=10)), X


@pytest.fixture
def saved(fitted, tmp_path):
    fitted[0].save(tmp_path / "est")
    return tmp_path / "est"


def test_the_directory_holds_weights_and_json(saved, fitted):
    meta = json.loads((saved / "estimator.json").read_text())
    assert meta["format"] == "deeprnn-estimator" and meta["class"] == "SequenceRegressor"
    assert meta["params"]["hidden_size"] == 4
    assert {"target_scaler_", "input_scaler_", "history_"} <= set(meta["learned"])
    assert not list(saved.glob("*.pkl")) and not list(saved.glob("*.pt"))


def test_base_class_load_returns_the_saved_kind(saved, fitted):
    est, X = fitted
    loaded = RNNEstimator.load(saved)
    assert type(loaded) is SequenceRegressor
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    assert RNNEstimator.load(saved, device="cpu").device == "cpu"


def test_loading_as_another_class_is_refused(saved):
    with pytest.raises(CheckpointError, match="holds a SequenceRegressor, not a TextClassifier"):
        TextClassifier.load(saved)


def test_missing_and_foreign_directories(tmp_path):
    with pytest.raises(CheckpointError, match="no such directory"):
        SequenceRegressor.load(tmp_path / "nothing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a saved deeprnn estimator"):
        SequenceRegressor.load(tmp_path)
    (tmp_path / "estimator.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match="not a deeprnn estimator file"):
        SequenceRegressor.load(tmp_path)


def test_corrupt_json_and_weights(saved):
    meta_path = saved / "estimator.json"
    good = meta_path.read_text()
    meta_path.write_text(good[:200])
    with pytest.raises(CheckpointError, match="unreadable estimator file"):
        SequenceRegressor.load(saved)
    meta = json.loads(good)
    meta["class"] = "NoSuchEstimator"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="unknown estimator class 'NoSuchEstimator'"):
        RNNEstimator.load(saved)
    meta = json.loads(good)
    meta["params"]["hidden_size"] = 5  # weights of a 4-unit model no longer fit
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="weights of a different model"):
        SequenceRegressor.load(saved)
    meta_path.write_text(good)
    weights = saved / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 checksum mismatch"):
        SequenceRegressor.load(saved)
    weights.unlink()
    with pytest.raises(CheckpointError, match="cannot read the file"):
        SequenceRegressor.load(saved)


def test_unfitted_estimators_cannot_be_saved(tmp_path):
    with pytest.raises(NotFittedError):
        SequenceClassifier().save(tmp_path)


def test_loaded_model_is_in_eval_mode_on_the_requested_device(saved):
    loaded = SequenceRegressor.load(saved)
    assert not loaded.model_.training
    assert next(loaded.model_.parameters()).device == torch.device("cpu")
