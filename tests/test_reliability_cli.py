"""The CLI on bad configs and arguments: one line naming the key path or argument, exit code
2, no traceback (unless --debug); Ctrl-C inside fit writes a checkpoint and stops."""

from __future__ import annotations

import os
import re
import signal

import pytest
import torch

from deeprnn import DeepRNN, Head, SequenceModel, TensorBatches, TrainConfig, fit
from deeprnn.cli import main
from deeprnn.train import latest_checkpoint, load_checkpoint
from deeprnn.train.interrupt import TrainingInterrupted, graceful_interrupt

BASE = "task: forecast\ndata:\n  dataset: airline_passengers\n"


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("task: forecast\ndata: [\n", r"c.yaml: YAML syntax error at line 3, column 1"),
        ("task: forecast\n  data: x\n", r"c.yaml: YAML syntax error at line 2"),
        ("- a\n- b\n", r"c.yaml: the top level must be a mapping, got list"),
        ("task: forecast\n", r"config: missing required key\(s\) \['data'\]"),
        (BASE + "  colum: x\n", r"data.colum: unknown key; .*did you mean 'column'\?"),
        (BASE + "epochs: 3\n", r"epochs: unknown key; expected one of \["),
        (BASE + "  test_size: abc\n", r"data.test_size: expected float, got str 'abc'"),
        (BASE + "  test_size: .inf\n", r"data.test_size: expected a finite number > 0, got inf"),
        (BASE + "  season: 0\n", r"data.season: expected an int >= 1"),
        (BASE + "  encoding: utf-99\n", r"data.encoding: unknown text encoding 'utf-99'"),
        (BASE + "samples: -1\n", r"samples: expected an int >= 0, got -1"),
        (BASE + "samples: 2.5\n", r"samples: expected int, got float 2.5"),
        (BASE + "model: 5\n", r"model: expected a mapping, got int 5"),
        (BASE + "model:\n  hiden_size: 3\n", r"model.hiden_size: unknown key; .*'hidden_size'"),
        (BASE + "model:\n  hidden_size: abc\n", r"model.hidden_size: expected int or list"),
        (BASE + "model:\n  checkpoint_dir: /tmp/x\n", r"model.checkpoint_dir: set by deeprnn"),
        (BASE + "model:\n  lr: .nan\n", r"TrainConfig.lr must be finite, got nan"),
        (BASE + "model:\n  epochs: -1\n", r"TrainConfig.epochs = -1 is out of range"),
        ("task: foo\ndata:\n  dataset: airline_passengers\n", r"task must be one of \["),
        ("task: forecast\ndata:\n  dataset: x\n  path: y\n", r"data: give exactly one of"),
        ("task: forecast\ndata:\n  dataset: nope\n", r"unknown dataset 'nope'"),
        ("task: forecast\ndata:\n  dataset: waveforms\n", r"dataset 'waveforms' is not a series"),
        ("task: forecast\ndata:\n  path: missing.csv\n  column: a\n", r"no such CSV file"),
    ],
)
def test_bad_configs_exit_2_with_the_key_path(tmp_path, capsys, yaml_text, message):
    config = tmp_path / "c.yaml"
    config.write_text(yaml_text, encoding="utf-8")
    argv = ["train", str(config), "--run-dir", str(tmp_path / "run"), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("deeprnn train: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert re.search(message, err), err


def test_bad_data_files_exit_2(tmp_path, capsys):
    (tmp_path / "s.csv").write_text("a\n1\nx\n")
    (tmp_path / "t.csv").write_bytes("text,label\nh\xe9,a\nb,c\n".encode("latin-1"))
    cases = [
        (f"task: forecast\ndata:\n  path: {tmp_path / 's.csv'}\n  column: a\n",
         "s.csv: data row 2, column 'a' holds 'x', which is not a number"),
        (f"task: text_classification\ndata:\n  path: {tmp_path / 't.csv'}\n  column: text\n"
         "  target: label\n", "t.csv is not valid utf-8 text"),
    ]  # fmt: skip
    for text, message in cases:
        (tmp_path / "c.yaml").write_text(text, encoding="utf-8")
        assert main(["train", str(tmp_path / "c.yaml"), "--run-dir", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(BASE + "  colum: x\n", encoding="utf-8")
    with pytest.raises(Exception, match=r"data.colum: unknown key"):
        main(["--debug", "train", str(config)])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "run", "-n", "0"], r"argument -n: expected a positive integer, got 0"),
        (["generate", "run", "-n", "ten"], r"argument -n: expected a positive integer, got 'ten'"),
        (["generate", "run", "--temperature", "inf"], r"expected a finite positive number"),
        (["generate", "run", "--temperature", "-1"], r"expected a finite positive number"),
        (["generate", "run", "--top-k", "0"], r"argument --top-k: expected a positive integer"),
        (["generate", "run", "--seed", str(2**80)], r"argument --seed: expected a seed in"),
        (["generate", "run", "--seed", "x"], r"argument --seed: expected an integer seed"),
        (["train", "c.yaml", "--nproc", "0"], r"argument --nproc: expected a positive integer"),
        (["predict", "run"], r"the following arguments are required: --input"),
        (["frobnicate"], r"invalid choice: 'frobnicate'"),
    ],
)
def test_arguments_out_of_range_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(message, err), err


def test_commands_on_missing_runs_exit_2(tmp_path, capsys):
    for argv in (["evaluate", str(tmp_path)], ["generate", str(tmp_path)],
                 ["predict", str(tmp_path), "--input", "x.csv"]):  # fmt: skip
        assert main(argv) == 2
        assert "is not a finished run directory" in capsys.readouterr().err


def test_ctrl_c_inside_fit_checkpoints_then_raises(tmp_path):
    torch.manual_seed(0)
    net = SequenceModel(DeepRNN(3, 4), Head(4, 2))
    x = torch.randn(16, 4, 3)
    data = TensorBatches(x, (x.sum((1, 2)) > 0).long(), batch_size=4)

    def press_ctrl_c(event, state):
        if event == "batch_end" and state["epoch"] == 2 and state["batch"] == 1:
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    with graceful_interrupt(), pytest.raises(TrainingInterrupted) as info:
        fit(net, data, config=TrainConfig(epochs=5, verbose=0), run_dir=tmp_path,
            callbacks=[press_ctrl_c])  # fmt: skip
    assert signal.getsignal(signal.SIGINT) is before  # the handler is restored
    assert isinstance(info.value, KeyboardInterrupt)
    latest = latest_checkpoint(tmp_path)
    assert latest.name == "ckpt-000002" and f"checkpoint {latest} written" in str(info.value)
    saved = load_checkpoint(tmp_path, SequenceModel(DeepRNN(3, 4), Head(4, 2)))
    assert saved["trainer"]["epoch"] == 2 and len(saved["trainer"]["history"]["epoch"]) == 2
    history = fit(net, data, config=TrainConfig(epochs=5, verbose=0), run_dir=tmp_path,
                  resume=True)  # fmt: skip
    assert history["epoch"] == [1, 2, 3, 4, 5]


def test_a_diverging_run_stops_with_advice_and_exit_2(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(BASE + "  test_size: 12\nmodel:\n  lookback: 12\n  hidden_size: 4\n"
                      "  num_layers: 1\n  epochs: 30\n  validation_fraction: 0\n",
                      encoding="utf-8")  # fmt: skip
    bad = ["--set", "model.lr=1.0e+9", "--set", "model.optimizer=sgd", "--set",
           "model.clip_norm=null", "--set", "model.max_bad_steps=3"]  # fmt: skip
    with pytest.warns(UserWarning):
        code = main(["train", str(config), "--run-dir", str(tmp_path / "run"), "--quiet", *bad])
    assert code == 2
    err = capsys.readouterr().err
    assert re.search(r"error: epoch \d+, batch \d+: 3 updates in a row had a non-finite", err)
    assert "Try gradient clipping (clip_norm" in err and "Traceback" not in err


def test_run_files_are_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    """metrics.json, report.md and history.csv go through a temp file and a rename: a crash
    while a second run writes them leaves the first run's files complete."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(BASE + "model:\n  epochs: 1\n  hidden_size: 4\n  num_layers: 1\n")
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--run-dir", str(run), "--quiet"]) == 0
    before = {name: (run / name).read_bytes() for name in ("metrics.json", "report.md")}
    real_replace = os.replace

    def crash_on_report(src, dst):
        if str(dst).endswith("report.md"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_report)
    with pytest.raises(OSError, match="No space"):
        main(["--debug", "train", str(cfg), "--run-dir", str(run), "--quiet", "--resume",
              "--set", "model.epochs=2"])  # fmt: skip
    assert (run / "report.md").read_bytes() == before["report.md"]
    assert (run / "metrics.json").read_bytes() != before["metrics.json"]  # written before it
    assert not list(run.glob(".*.tmp"))  # no temporary file left behind
