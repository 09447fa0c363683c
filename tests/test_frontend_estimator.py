"""The front end through the estimators: it learns a long-sequence task, survives save /
load, exports (ONNX == eager on ragged lengths) and runs from YAML through `deeprnn train`."""

import json

import numpy as np
import pytest
import torch

from deeprnn.cli import main
from deeprnn.config_io import ConfigError
from deeprnn.estimators import RNNEstimator, SequenceClassifier

FRONTEND = {"channels": [8], "kernel_size": 5, "pool": 4}


def burst_task(n: int, time: int = 240, seed: int = 0):
    """Noise with a 16-step burst at a random place: fast (class 1) or slow (class 0)
    oscillation of the same amplitude, so per-sequence summaries cannot tell them apart."""
    rng = np.random.default_rng(seed)
    X = 0.3 * rng.standard_normal((n, time, 1))
    y = rng.integers(0, 2, n)
    t = np.arange(16)
    for i in range(n):
        s = rng.integers(0, time - 16)
        X[i, s : s + 16, 0] += 1.5 * np.sin(np.pi * t / (2 if y[i] else 16))
    return X, y


@pytest.fixture(scope="module")
def fitted():
    X, y = burst_task(64)
    est = SequenceClassifier(
        frontend=FRONTEND,
        cell="gru",
        num_layers=1,
        hidden_size=16,
        pooling="mean",
        epochs=25,
        batch_size=16,
        validation_fraction=0,
    )
    return est.fit(X, y)  # fmt: skip


def test_learns_a_long_sequence_task_that_summaries_cannot(fitted):
    from sklearn.linear_model import LogisticRegression

    X, y = burst_task(64)
    X_test, y_test = burst_task(200, seed=1)

    def summary(X):
        return np.c_[X.mean(1), X.std(1), np.abs(X).max(1)]

    baseline = LogisticRegression().fit(summary(X), y).score(summary(X_test), y_test)
    score = fitted.score(X_test, y_test)
    assert score >= 0.9 and score > baseline + 0.2, (score, baseline)
    assert fitted.model_.frontend.output_length(240) == 60
    assert [r["part"] for r in fitted.model_.explain()] == ["frontend", "body"]


def test_save_load_round_trip_keeps_the_front_end_and_its_statistics(fitted, tmp_path):
    fitted.save(tmp_path / "est")
    loaded = RNNEstimator.load(tmp_path / "est")
    assert loaded.frontend == FRONTEND
    stats = {k: v for k, v in loaded.model_.state_dict().items() if "running" in k}
    assert stats and all(torch.equal(v, fitted.model_.state_dict()[k]) for k, v in stats.items())
    assert not torch.equal(stats["frontend.blocks.0.norm.running_var"], torch.ones(8))
    X, _ = burst_task(20, seed=2)
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))


def test_export_includes_the_front_end_with_lengths(fitted, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    onnx_path = fitted.export(tmp_path / "m.onnx")
    script_path = fitted.export(tmp_path / "m.pt", "torchscript")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 50, 1, generator=g)
    lengths = torch.tensor([50, 37, 4, 21])  # 4 steps: the shortest that a pool of 4 keeps
    with torch.no_grad():
        eager = fitted.model_.activate(fitted.model_(x, lengths=lengths)[0]).numpy()
    session = ort.InferenceSession(str(onnx_path))
    got = session.run(None, {"x": x.numpy(), "lengths": lengths.numpy()})[0]
    np.testing.assert_allclose(got, eager, rtol=1e-4, atol=1e-5)
    scripted = torch.jit.load(str(script_path))(x, lengths).numpy()
    np.testing.assert_allclose(scripted, eager, rtol=1e-5, atol=1e-6)
    meta = json.loads(session.get_modelmeta().custom_metadata_map["deeprnn.json"])
    assert meta["config"]["frontend"]["length"] == "floor(T / 4)"
    assert meta["inputs"][0]["shape"] == ["batch", "time", 1]


def test_bad_front_end_arguments_fail_before_training():
    X, y = burst_task(8)
    with pytest.raises(ConfigError, match="frontend.kernal_size: unknown key.*'kernel_size'"):
        SequenceClassifier(frontend={"kernal_size": 5}).fit(X, y)
    with pytest.raises(ConfigError, match="frontend: expected dict"):
        SequenceClassifier(frontend=[8]).fit(X, y)


def test_yaml_front_end_runs_through_deeprnn_train(tmp_path, capsys):
    cfg = tmp_path / "fe.yaml"
    cfg.write_text(
        "task: sequence_classification\ndata:\n  dataset: waveforms\nmodel:\n"
        "  frontend: {channels: [8, 8], kernel_size: 5, pool: [2, 1]}\n"
        "  hidden_size: 8\n  num_layers: 1\n  epochs: 1\n",
        encoding="utf-8",
    )
    assert main(["train", str(cfg), "--run-dir", str(tmp_path / "run"), "--quiet"]) == 0
    est = RNNEstimator.load(tmp_path / "run" / "model")
    assert est.frontend == {"channels": [8, 8], "kernel_size": 5, "pool": [2, 1]}
    assert len(est.model_.frontend.blocks) == 2
    assert "frontend" in (tmp_path / "run" / "config.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(cfg.read_text().replace("kernel_size", "kernal_size"), encoding="utf-8")
    assert main(["train", str(bad), "--run-dir", str(tmp_path / "bad"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "model.frontend.kernal_size: unknown key" in err and "did you mean 'kernel_size'" in err


def test_per_step_estimators_refuse_a_front_end_that_cannot_serve_them():
    from deeprnn.errors import InputError
    from deeprnn.estimators import CharLanguageModel, SequenceTagger

    X = [np.random.default_rng(0).standard_normal((12, 2)) for _ in range(4)]
    tags = [np.arange(12) % 2 for _ in X]
    with pytest.raises(ConfigError, match="tagger gives one label per input step"):
        SequenceTagger(frontend={"pool": 2}).fit(X, tags)
    tagger = SequenceTagger(frontend={"channels": [4]}, hidden_size=4, epochs=1).fit(X, tags)
    assert [p.shape for p in tagger.predict_proba(X)] == [(12, 2)] * 4
    with pytest.raises(InputError, match="language model.*frontend must be None"):
        CharLanguageModel(frontend={"channels": [4]}).fit("abcabcabc" * 10)


def test_text_classifier_convolves_the_embeddings_and_exports(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from deeprnn.estimators import TextClassifier

    texts = ["good fine great movie", "bad awful film", "great great fun", "awful bad bad"] * 4
    labels = [1, 0, 1, 0] * 4
    frontend = {"channels": [6], "kernel_size": 3, "norm": "layer"}
    est = TextClassifier(frontend=frontend, hidden_size=6, epochs=2, validation_fraction=0)
    est.fit(texts, labels)
    assert est.model_.frontend.in_features == est.embedding_dim
    path = est.export(tmp_path / "text.onnx")
    ids = torch.tensor([[3, 4, 5, 6], [4, 5, 0, 0]])
    lengths = torch.tensor([4, 2])
    with torch.no_grad():
        eager = est.model_.activate(est.model_(ids, lengths=lengths)[0]).numpy()
    got = ort.InferenceSession(str(path)).run(None, {"x": ids.numpy(), "lengths": lengths.numpy()})
    np.testing.assert_allclose(got[0], eager, rtol=1e-4, atol=1e-6)
