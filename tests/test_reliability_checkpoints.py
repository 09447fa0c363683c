"""Nothing lost: the newest K checkpoints are kept, and a full disk or an unwritable run
directory gives a clear error while the previous checkpoint stays intact."""

from __future__ import annotations

import errno
import os

import pytest
import torch

from deeprnn import DeepRNN, Head, SequenceModel, TensorBatches, TrainConfig, fit
from deeprnn.cli import main
from deeprnn.train import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from deeprnn.train import checkpoint as ckpt
from deeprnn.train.checkpoint import CheckpointWriteError


def model(seed: int = 0) -> SequenceModel:
    torch.manual_seed(seed)
    return SequenceModel(DeepRNN(3, 4), Head(4, 2))


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 4, 3, generator=g)
    return TensorBatches(x, (x.sum((1, 2)) > 0).long(), batch_size=4)


def names(run) -> list[str]:
    return sorted(p.name for p in run.iterdir())


@pytest.mark.parametrize("keep, kept", [(1, [5]), (3, [3, 4, 5])])
def test_the_newest_checkpoints_are_kept(tmp_path, keep, kept):
    config = TrainConfig(epochs=5, keep_checkpoints=keep, verbose=0)
    fit(model(), data(), config=config, run_dir=tmp_path)
    assert names(tmp_path) == ["LATEST", *[f"ckpt-{e:06d}" for e in kept]]
    assert latest_checkpoint(tmp_path).name == "ckpt-000005"
    for e in kept:  # every kept checkpoint is complete on its own
        (tmp_path / "LATEST").write_text(f"ckpt-{e:06d}\n")
        assert load_checkpoint(tmp_path, model(seed=1))["trainer"]["epoch"] == e


def test_keep_must_be_positive(tmp_path):
    with pytest.raises(CheckpointError, match=r"keep must be an int >= 1, got 0"):
        save_checkpoint(tmp_path, model(), {"epoch": 1}, keep=0)


def first_checkpoint(run):
    net = model()
    first = save_checkpoint(run, net, {"epoch": 1})
    return net, first


def assert_untouched(run, first, net):
    assert names(run) == ["LATEST", first.name]  # no new directory, no temporary leftovers
    assert latest_checkpoint(run) == first
    other = model(seed=9)
    assert load_checkpoint(run, other)["trainer"] == {"epoch": 1}
    torch.testing.assert_close(other.state_dict(), net.state_dict(), rtol=0, atol=0)


def test_a_full_disk_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    net, first = first_checkpoint(tmp_path)

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt.os, "replace", full)
    with pytest.raises(CheckpointWriteError) as info:
        save_checkpoint(tmp_path, model(seed=3), {"epoch": 2})
    monkeypatch.undo()
    assert isinstance(info.value, OSError) and isinstance(info.value, CheckpointError)
    message = str(info.value)
    assert "No space left on device (ENOSPC)" in message
    assert f"the previous checkpoint {first} is intact" in message
    assert_untouched(tmp_path, first, net)


def test_a_failure_to_publish_removes_the_unpublished_checkpoint(tmp_path, monkeypatch):
    net, first = first_checkpoint(tmp_path)
    real = ckpt.atomic_write

    def no_pointer(path, data):
        if path.name == "LATEST":
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        real(path, data)

    monkeypatch.setattr(ckpt, "atomic_write", no_pointer)
    with pytest.raises(CheckpointWriteError, match=r"Read-only file system \(EROFS\)"):
        save_checkpoint(tmp_path, model(seed=3), {"epoch": 2})
    monkeypatch.undo()
    assert_untouched(tmp_path, first, net)


def test_an_unwritable_directory_gives_a_clear_error(tmp_path, monkeypatch):
    net, first = first_checkpoint(tmp_path)

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(ckpt.tempfile, "mkdtemp", denied)
    with pytest.raises(CheckpointWriteError, match=r"cannot write a checkpoint in .*Permission"):
        save_checkpoint(tmp_path, model(seed=3), {"epoch": 2})
    monkeypatch.undo()
    assert_untouched(tmp_path, first, net)


def test_fit_stops_on_a_full_disk_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    real = ckpt.os.replace
    epochs = []

    def full_from_epoch_two(src, dst):
        if epochs and epochs[-1] >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(src, dst)

    def track(event, state):
        if event == "batch_end":
            epochs.append(state["epoch"])

    monkeypatch.setattr(ckpt.os, "replace", full_from_epoch_two)
    net = model()
    with pytest.raises(CheckpointWriteError, match=r"ckpt-000001 is intact"):
        fit(net, data(), config=TrainConfig(epochs=3, verbose=0), run_dir=tmp_path,
            callbacks=[track])  # fmt: skip
    monkeypatch.undo()
    assert names(tmp_path) == ["LATEST", "ckpt-000001"]
    assert load_checkpoint(tmp_path, model(seed=2))["trainer"]["epoch"] == 1


TINY = ["--set", "model.epochs=1", "--set", "model.hidden_size=4", "--set", "model.num_layers=1"]


def config_file(tmp_path):
    path = tmp_path / "fc.yaml"
    path.write_text("task: forecast\ndata:\n  dataset: airline_passengers\n  test_size: 12\n"
                    "model:\n  lookback: 12\n  validation_fraction: 0\n")  # fmt: skip
    return str(path)


def test_cli_reports_an_unwritable_run_directory(tmp_path, capsys):
    (tmp_path / "file").write_text("not a directory")
    run = tmp_path / "file" / "run"
    assert main(["train", config_file(tmp_path), "--run-dir", str(run), "--quiet", *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deeprnn train: error: cannot write the run directory")
    assert "Traceback" not in err


def test_cli_reports_a_full_disk_without_a_traceback(tmp_path, capsys, monkeypatch):
    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt.os, "replace", full)
    run = tmp_path / "run"
    assert main(["train", config_file(tmp_path), "--run-dir", str(run), "--quiet", *TINY]) == 2
    err = capsys.readouterr().err
    assert "error: cannot write a checkpoint in" in err and "(ENOSPC)" in err
    assert "Traceback" not in err


def test_cli_keeps_as_many_checkpoints_as_configured(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", config_file(tmp_path), "--run-dir", str(run), "--quiet", *TINY,
            "--set", "model.epochs=3", "--set", "model.keep_checkpoints=2"]  # fmt: skip
    assert main(argv) == 0
    assert names(run / "checkpoints") == ["LATEST", "ckpt-000002", "ckpt-000003"]
    header = (run / "history.csv").read_text().splitlines()[0].split(",")
    assert {"skipped_steps", "max_grad_norm", "grad_norm"} <= set(header)
