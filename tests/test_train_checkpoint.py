"""Checkpoints: exact resume, round trips, crash safety, and clear errors for bad files."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from deeprnn import DeepRNN, Head, SequenceModel
from deeprnn.errors import DeepRNNError
from deeprnn.train import (
    CheckpointError,
    TensorBatches,
    TrainConfig,
    fit,
    latest_checkpoint,
    load_checkpoint,
    load_weights,
    make_optimizer,
    save_checkpoint,
    save_weights,
)
from deeprnn.train import checkpoint as ckpt


@pytest.fixture(autouse=True)
def one_thread():
    """Two OpenMP threads on two busy cores are ~50x slower for these tiny models."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def model(seed: int = 0, hidden: int = 6) -> SequenceModel:
    torch.manual_seed(seed)
    return SequenceModel(
        DeepRNN(3, hidden, num_layers=2, cell="lstm", dropout=0.2), Head(hidden, 2)
    )


def data(n: int = 24, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, 3, generator=g)
    y = (x[:, :, 0].sum(1) > 0).long()
    return TensorBatches(x, y, batch_size=8, shuffle=True, seed=1), TensorBatches(
        x, y, batch_size=12
    )


CONFIG = TrainConfig(
    epochs=4, lr=0.02, optimizer="adamw", weight_decay=0.01, schedule="cosine", warmup_steps=4,
    clip_norm=1.0, patience=10, monitor="val_accuracy", seed=7, verbose=0,
)  # fmt: skip


def without_seconds(history) -> dict:
    return {k: v for k, v in history.to_dict().items() if k != "seconds"}


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    torch.testing.assert_close(a.state_dict(), b.state_dict(), rtol=0, atol=0)


def test_resume_gives_the_same_weights_and_history(tmp_path):
    train, val = data()
    straight = model()
    full = fit(straight, train, val, CONFIG, run_dir=tmp_path / "a")

    def crash_after_two(event, state):
        if event == "epoch_end" and state["epoch"] == 2:
            state["stop"] = True  # like a preemption right after the checkpoint

    train, val = data()
    first = fit(model(), train, val, CONFIG, callbacks=[crash_after_two], run_dir=tmp_path / "b")
    assert len(first) == 2
    resumed = model(seed=99)  # a fresh model: every weight must come from the checkpoint
    train, val = data()
    history = fit(resumed, train, val, CONFIG, run_dir=tmp_path / "b", resume=True)
    assert_same_weights(straight, resumed)
    assert without_seconds(history) == without_seconds(full)
    last = [latest_checkpoint(tmp_path / d) / "model.safetensors" for d in "ab"]
    assert last[0].read_bytes() == last[1].read_bytes()  # the last (not best) weights too


def test_resume_to_more_epochs_equals_a_longer_run(tmp_path):
    config = TrainConfig(epochs=4, lr=0.02, schedule="step", step_size=1, gamma=0.7, verbose=0)
    straight = model()
    full = fit(straight, *data(), config, run_dir=tmp_path / "a")
    short = TrainConfig(**{**config.__dict__, "epochs": 2})
    fit(model(), *data(), short, run_dir=tmp_path / "b")
    resumed = model(seed=5)
    history = fit(resumed, *data(), config, run_dir=tmp_path / "b", resume=True)
    assert_same_weights(straight, resumed)
    assert without_seconds(history) == without_seconds(full)
    names = sorted(p.name for p in latest_checkpoint(tmp_path / "b").iterdir())
    assert names == ["model.safetensors", "state.safetensors", "trainer.json"]  # no pickle


def test_resume_without_a_checkpoint_starts_afresh(tmp_path):
    config = TrainConfig(epochs=2, verbose=0)
    history = fit(model(), *data(), config, run_dir=tmp_path, resume=True)
    assert history["epoch"] == [1, 2]


def test_checkpoint_round_trip(tmp_path):
    net = model()
    opt = make_optimizer(net, TrainConfig(optimizer="adam"))
    net(torch.randn(2, 5, 3))[0].sum().backward()
    opt.step()
    trainer = {"epoch": 3, "pairs": {1: (2.0, None)}, "history": {"loss": [0.5, 0.25]}}
    save_checkpoint(tmp_path, net, trainer, opt, best_weights=net.state_dict())
    other = model(seed=1)
    other_opt = make_optimizer(other, TrainConfig(optimizer="adam"))
    saved = load_checkpoint(tmp_path, other, other_opt)
    assert_same_weights(net, other)
    assert saved["trainer"] == trainer
    assert other_opt.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
    for k, state in opt.state_dict()["state"].items():
        for name, value in state.items():
            torch.testing.assert_close(other_opt.state_dict()["state"][k][name], value)
    torch.testing.assert_close(saved["best_weights"], net.state_dict())


def _checkpoint(tmp_path):
    net = model()
    save_checkpoint(tmp_path, net, {"epoch": 1}, make_optimizer(net, TrainConfig()))
    return net, latest_checkpoint(tmp_path)


@pytest.mark.parametrize(
    "name, damage, message",
    [
        ("model.safetensors", lambda b: b[:-7], "checksum"),
        ("state.safetensors", lambda b: b[:10] + bytes([b[10] ^ 1]) + b[11:], "checksum"),
        ("trainer.json", lambda b: b[: len(b) // 2], "unreadable"),
        ("trainer.json", lambda b: b.replace(b"deeprnn-checkpoint", b"other-format"), "not a"),
    ],
)
def test_damaged_checkpoints_are_rejected_by_name(tmp_path, name, damage, message):
    net, path = _checkpoint(tmp_path)
    target = path / name
    target.write_bytes(damage(target.read_bytes()))
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(tmp_path, net)
    assert name in str(info.value)
    assert isinstance(info.value, DeepRNNError)


def test_foreign_checkpoint_is_rejected(tmp_path):
    _checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="different model"):
        load_checkpoint(tmp_path, model(hidden=4))
    (tmp_path / "LATEST").write_text("../elsewhere\n")
    with pytest.raises(CheckpointError, match="LATEST"):
        load_checkpoint(tmp_path, model())


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    net, first = _checkpoint(tmp_path)
    real = ckpt.atomic_write

    def crash_on_metadata(path, data):
        if path.name == "trainer.json":
            raise OSError("disk full")
        real(path, data)

    monkeypatch.setattr(ckpt, "atomic_write", crash_on_metadata)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, model(seed=3), {"epoch": 2})
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path) == first
    other = model(seed=4)
    assert load_checkpoint(tmp_path, other)["trainer"] == {"epoch": 1}
    assert_same_weights(net, other)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LATEST", first.name]


def test_weights_file_round_trip_and_errors(tmp_path):
    net = model()
    sha = save_weights(tmp_path / "w.safetensors", net)
    other = model(seed=2)
    load_weights(tmp_path / "w.safetensors", other, sha256=sha)
    assert_same_weights(net, other)
    with pytest.raises(CheckpointError, match="different model"):
        load_weights(tmp_path / "w.safetensors", model(hidden=4))
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_weights(tmp_path / "bad.safetensors", net)


def test_metadata_is_plain_json(tmp_path):
    _, path = _checkpoint(tmp_path)
    meta = json.loads((path / "trainer.json").read_text())
    assert meta["format"] == "deeprnn-checkpoint"
    assert set(meta["files"]) == {"model.safetensors", "state.safetensors"}
