"""Untrusted files: loading weights, estimators and checkpoints never unpickles, and every
damaged, foreign or malicious file gives a clear error and runs nothing. Paths built from
config values cannot leave the run directory."""

from __future__ import annotations

import io
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from deeprnn import DeepRNN, Head, SequenceModel, TensorBatches, TrainConfig, fit, runs
from deeprnn.config import DataConfig, RunConfig
from deeprnn.config_io import ConfigError
from deeprnn.data import load_numpy
from deeprnn.errors import DeepRNNError, InputError, InputTypeError
from deeprnn.estimators import RNNEstimator, SequenceClassifier
from deeprnn.tasks import Outcome
from deeprnn.train import CheckpointError, load_checkpoint, load_weights, save_weights


class Payload:
    """Unpickling this creates `marker` (open(marker, "w")): proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "a file was unpickled"


def payloads(marker: Path) -> dict[str, bytes]:
    """Malicious or wrong-format contents to plant under a trusted file name."""
    buffer = io.BytesIO()
    torch.save({"weights": Payload(marker)}, buffer)  # torch's zip format, pickled inside
    return {
        "pickle": pickle.dumps(Payload(marker)),
        "torch.save": buffer.getvalue(),
        "json": b'{"format": "deeprnn-estimator"}',
        "text": b"just some text\n" * 10,
        "empty": b"",
    }


def small_model(hidden: int = 4, seed: int = 0) -> SequenceModel:
    torch.manual_seed(seed)
    return SequenceModel(DeepRNN(3, hidden), Head(hidden, 2))


def damaged(good: bytes) -> dict[str, bytes]:
    mid = len(good) // 2
    return {
        "truncated": good[:mid],
        "flipped-header": good[:12] + bytes([good[12] ^ 0xFF]) + good[13:],
        "flipped-data": good[:-3] + bytes([good[-3] ^ 0xFF]) + good[-2:],
    }


def test_weights_files(tmp_path, marker):
    path = tmp_path / "w.safetensors"
    sha = save_weights(path, small_model())
    good = path.read_bytes()
    for name, data in {**damaged(good), **payloads(marker)}.items():
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match=r"w.safetensors: (sha256|not a valid)"):
            load_weights(path, small_model(), sha256=sha)
        if name != "flipped-data":  # without the checksum only the format can be checked
            with pytest.raises(CheckpointError, match=r"w.safetensors: not a valid safetensors"):
                load_weights(path, small_model())
    path.write_bytes(good)
    with pytest.raises(CheckpointError, match=r"weights of a different model .*shape mism"):
        load_weights(path, small_model(hidden=5))


@pytest.fixture(scope="module")
def saved_estimator(tmp_path_factory):
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(4, 2)) for _ in range(8)]
    est = SequenceClassifier(epochs=1, hidden_size=4, num_layers=1, validation_fraction=0)
    path = tmp_path_factory.mktemp("est") / "model"
    est.fit(X, [0, 1] * 4).save(path)
    return path


def planted(src: Path, dst: Path, name: str, data: bytes) -> Path:
    shutil.copytree(src, dst)
    (dst / name).write_bytes(data)
    return dst


def test_estimator_directories(saved_estimator, tmp_path, marker):
    weights = (saved_estimator / "model.safetensors").read_bytes()
    meta = (saved_estimator / "estimator.json").read_bytes()
    bad_weights = {**damaged(weights), **payloads(marker)}
    cases = [("model.safetensors", n, d) for n, d in bad_weights.items()]
    cases += [("estimator.json", n, d) for n, d in payloads(marker).items() if n != "json"]
    cases += [("estimator.json", "truncated", meta[: len(meta) // 2]),
              ("estimator.json", "safetensors", weights),
              ("estimator.json", "deeply nested", b"[" * 100_000 + b"]" * 100_000)]  # fmt: skip
    for i, (file, name, data) in enumerate(cases):
        path = planted(saved_estimator, tmp_path / f"case{i}", file, data)
        with pytest.raises(CheckpointError, match=rf"{file}|estimator.json") as info:
            RNNEstimator.load(path)
        assert "Traceback" not in str(info.value), (file, name)


def edit_meta(src: Path, dst: Path, change) -> Path:
    shutil.copytree(src, dst)
    meta = json.loads((dst / "estimator.json").read_text())
    change(meta)
    (dst / "estimator.json").write_text(json.dumps(meta))
    return dst


def test_estimator_metadata_cannot_reach_beyond_data(saved_estimator, tmp_path):
    def other_shape(meta):
        meta["params"]["hidden_size"] = 5

    with pytest.raises(CheckpointError, match=r"weights of a different model"):
        RNNEstimator.load(edit_meta(saved_estimator, tmp_path / "a", other_shape))

    def set_method(meta):
        meta["learned"]["predict"] = 1

    with pytest.raises(CheckpointError, match=r"learned attribute 'predict' is not one of"):
        RNNEstimator.load(edit_meta(saved_estimator, tmp_path / "b", set_method))

    def other_class(meta):
        meta["class"] = "Popen"

    with pytest.raises(CheckpointError, match=r"unknown estimator class 'Popen'"):
        RNNEstimator.load(edit_meta(saved_estimator, tmp_path / "c", other_class))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 4, 3, generator=g)
    run = tmp_path_factory.mktemp("ckpt")
    config = TrainConfig(epochs=1, patience=3, monitor="train_loss", verbose=0)
    fit(small_model(), TensorBatches(x, (x.sum((1, 2)) > 0).long()), config=config, run_dir=run)
    return run


def test_checkpoint_files(run_dir, tmp_path, marker):
    latest = (run_dir / "LATEST").read_text().strip()
    files = ["model.safetensors", "state.safetensors", "best.safetensors", "trainer.json"]
    i = 0
    for file in files:
        good = (run_dir / latest / file).read_bytes()
        for name, data in {**damaged(good), **payloads(marker)}.items():
            copy = tmp_path / f"run{i}"
            i += 1
            shutil.copytree(run_dir, copy)
            (copy / latest / file).write_bytes(data)
            with pytest.raises(CheckpointError, match=file) as info:
                load_checkpoint(copy, small_model(), restore_rng=True)
            assert isinstance(info.value, DeepRNNError), (file, name)
    with pytest.raises(CheckpointError, match=r"weights of a different model"):
        load_checkpoint(run_dir, small_model(hidden=5))


def test_latest_cannot_point_outside_the_run(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    for pointer in ["../run", "/etc", "..", ""]:
        (copy / "LATEST").write_text(pointer)
        with pytest.raises(CheckpointError, match=r"LATEST: names no checkpoint directory"):
            load_checkpoint(copy, small_model())


def test_numpy_files_never_unpickle(tmp_path, marker):
    (tmp_path / "p.npy").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(InputTypeError, match=r"p.npy holds Python objects .* not loaded"):
        load_numpy(tmp_path / "p.npy")
    np.save(tmp_path / "o.npy", np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(InputTypeError, match=r"o.npy holds Python objects"):
        load_numpy(tmp_path / "o.npy")
    np.savez(tmp_path / "o.npz", X=np.array([Payload(marker)], dtype=object))
    with pytest.raises(InputTypeError, match=r"o.npz holds Python objects"):
        load_numpy(tmp_path / "o.npz")


def test_loading_never_calls_an_unpickler(saved_estimator, run_dir, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("deeprnn unpickled something")

    for target, name in [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"),
                         (torch, "load")]:  # fmt: skip
        monkeypatch.setattr(target, name, forbidden)
    RNNEstimator.load(saved_estimator).predict([np.zeros((3, 2))])
    load_checkpoint(run_dir, small_model(), restore_rng=True)


# ---- paths built from config values stay inside the run directory ---------------------------


@pytest.mark.parametrize("name", ["..", "../x", "a/../../b", "/etc/passwd", "", "sub\\..\\x"])
def test_file_names_from_config_values_cannot_escape(tmp_path, name):
    with pytest.raises(InputError, match=r"is not a plain file name inside"):
        runs.inside(tmp_path, name)
    assert runs.inside(tmp_path, "plots", "training.png") == tmp_path / "plots" / "training.png"


def test_a_picture_outside_the_run_directory_is_refused(tmp_path):
    cfg = RunConfig(task="forecast", data=DataConfig(dataset="airline_passengers"))
    outside = Outcome(metrics={"mae": 1.0}, baselines={}, plots=[tmp_path / ".." / "x.png"])
    with pytest.raises(InputError, match=r"x.png lies outside the run directory"):
        runs.report(cfg, outside, tmp_path / "run", {})
    picture = tmp_path / "run" / "plots" / "a.png"
    inside = Outcome(metrics={"mae": 1.0}, baselines={}, plots=[picture])
    assert "](plots/a.png)" in runs.report(cfg, inside, tmp_path / "run", {})


@pytest.mark.parametrize("key", ["checkpoint_dir", "resume", "verbose"])
def test_a_config_cannot_redirect_what_train_writes(key):
    data = {"task": "forecast", "data": {"dataset": "airline_passengers"},
            "model": {key: "/tmp/elsewhere" if key == "checkpoint_dir" else True}}  # fmt: skip
    with pytest.raises(ConfigError, match=rf"model.{key}: set by deeprnn train"):
        runs.load_config(None, data=data)
