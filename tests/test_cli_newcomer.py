"""The frictions of a newcomer's first hour (issue 17): help, version, run directories that
are not overwritten silently, config paths, resolved configs, generate's prompt."""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from deeprnn.cli import build_parser, main
from deeprnn.config import RUN_TASKS, TASK_DATA_KEYS

ROOT = Path(__file__).resolve().parents[1]

TINY = ["--set", "model.epochs=1", "--set", "model.hidden_size=4", "--set", "model.num_layers=1"]
FORECAST = "task: forecast\ndata:\n  dataset: airline_passengers\n  test_size: 12\n"


def test_plain_deeprnn_prints_the_help_and_version_works(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: deeprnn") and "train" in out and "evaluate" in out
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert re.fullmatch(r"deeprnn \S+\n", capsys.readouterr().out)


def test_every_option_has_help_with_its_default():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        formatter = command._get_formatter()
        for action in command._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            text = formatter._get_help_string(action)
            assert action.help, f"{name} {action.option_strings}: no help text"
            assert "(default: " in text or "(None: " in text, f"{name} {action.option_strings}"


def test_train_help_lists_every_task_and_its_data_keys(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for task in RUN_TASKS:
        assert re.search(rf"^  {task} +dataset, path", out, re.M), task
    assert "season" in out and "id_column" in out and "(default: off)" in out


def test_debug_after_the_subcommand_shows_the_traceback(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "is not a finished run directory" in capsys.readouterr().err
    with pytest.raises(Exception, match="is not a finished run directory"):
        main(["evaluate", str(tmp_path), "--debug"])


def test_rerunning_train_asks_for_force_and_resume_of_a_finished_run_says_so(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(FORECAST, encoding="utf-8")
    run = ["train", str(cfg), "--run-dir", str(tmp_path / "run"), "--quiet", *TINY]
    assert main(run) == 0
    report = (tmp_path / "run" / "report.md").read_bytes()
    text = report.decode("utf-8")
    assert "Training: trained all 1 epochs; best epoch 1 (val_loss " in text
    assert "## Model" in text and "SequenceModel(" in text and "Parameters: " in text
    assert (
        "| part | layer | cell | path | reason |" in text and "| body | 0 | lstm | native |" in text
    )
    capsys.readouterr()
    assert main(run) == 2
    err = capsys.readouterr().err
    assert "run already holds a run (config.yaml, metrics.json)" in err
    assert "pass --force to replace it, --resume to continue it" in err
    assert main([*run, "--resume"]) == 0
    err = capsys.readouterr().err
    assert "already finished (1 epochs trained" in err and "nothing to resume" in err
    assert (tmp_path / "run" / "report.md").read_bytes() == report  # not rewritten
    (tmp_path / "run" / "plots" / "stale.png").write_bytes(b"old")
    assert main([*run, "--force"]) == 0
    assert not (tmp_path / "run" / "plots" / "stale.png").exists()
    assert (tmp_path / "run" / "report.md").is_file()


def test_relative_data_paths_are_read_from_the_config_folder(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "series.csv").write_text(
        "value\n" + "\n".join(str(100 + (i % 12) * 3 + i) for i in range(60)), encoding="utf-8"
    )
    cfg = folder / "c.yaml"
    cfg.write_text("task: forecast\ndata:\n  path: series.csv\n  column: value\n"
                   "  test_size: 6\nmodel:\n  lookback: 6\n", encoding="utf-8")  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["train", str(cfg), "--run-dir", "run", "--quiet", *TINY]) == 0
    saved = yaml.safe_load((elsewhere / "run" / "config.yaml").read_text())
    assert saved["data"]["path"] == str(folder / "series.csv")
    cfg.write_text("task: forecast\ndata:\n  path: gone.csv\n  column: value\n")
    assert main(["train", str(cfg), "--run-dir", "run2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"no such CSV file: {folder / 'gone.csv'}" in err
    assert main(["train", "missing.yaml"]) == 2
    assert f"config file {elsewhere / 'missing.yaml'} does not exist" in capsys.readouterr().err


def test_resolved_configs_hold_the_task_keys_only(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("abcabd " * 60, encoding="utf-8")
    cfg = tmp_path / "lm.yaml"
    cfg.write_text(f"task: char_lm\ndata:\n  path: {corpus}\n  test_size: 0.1\nsamples: 1\n"
                   "model:\n  bptt_steps: 8\n  batch_size: 2\n", encoding="utf-8")  # fmt: skip
    assert main(["train", str(cfg), "--run-dir", str(tmp_path / "lm"), "--quiet", *TINY]) == 0
    saved = yaml.safe_load((tmp_path / "lm" / "config.yaml").read_text())
    assert set(saved["data"]) == {"dataset", "path", "encoding", "test_size"}
    assert "season" not in saved["data"] and saved["samples"] == 1
    assert "lookback" not in saved["model"] and "horizon" not in saved["model"]
    capsys.readouterr()
    assert main(["generate", str(tmp_path / "lm"), "--prompt", "ab", "-n", "5"]) == 0
    with_prompt = capsys.readouterr().out.rstrip("\n")
    assert main(["generate", str(tmp_path / "lm"), "--prompt", "ab", "-n", "5", "--no-prompt"]) == 0
    alone = capsys.readouterr().out.rstrip("\n")
    assert len(alone) == 5 and with_prompt == "ab" + alone


def test_readme_lists_the_data_keys_each_task_takes():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for task, keys in TASK_DATA_KEYS.items():
        row = next(line for line in readme.splitlines() if line.startswith("| `") and
                   f"`{task}`" in line.split("|")[1])  # fmt: skip
        listed = set(re.findall(r"`(\w+)`", row.split("|")[2]))
        assert listed == set(keys), (task, listed)


def test_make_says_what_it_installs():
    plan = subprocess.run(["make", "-n", "-B", "setup"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    assert "installing torch==2.13.0 (the CPU wheel; about a minute)" in plan
    assert "installing deeprnn (editable) with the extras dev,export" in plan
    assert "pip install -q torch" not in plan  # torch's download shows its progress


class _Reading:
    """A DataConfig that records which of its keys are read."""

    def __init__(self, data):
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "read", set())

    def __getattr__(self, name):
        self.read.add(name)
        return getattr(self._data, name)


def _user_files(tmp_path: Path) -> dict[str, dict]:
    """A `data:` section with a user file for every task, each file in its own format."""
    import numpy as np

    rng = np.random.default_rng(0)
    series = tmp_path / "series.csv"
    series.write_text("value\n" + "".join(f"{100 + i % 12 + i}\n" for i in range(60)))
    events = tmp_path / "events.csv"
    rows = ["seq_id,step,x,label,size"]
    rows += [f"s{i},{t},{rng.normal():.3f},{'ab'[i % 2]},{i % 3}.5" for i in range(12)
             for t in range(4)]  # fmt: skip
    events.write_text("\n".join(rows) + "\n", encoding="utf-8")
    texts = tmp_path / "texts.csv"
    texts.write_text("text,label\n" + "".join(f"{w} thing,{w}\n" for w in ["good", "bad"] * 6))
    tagged = tmp_path / "tagged.npz"
    np.savez(tagged, X=rng.normal(size=(12, 6, 2)), y=rng.integers(0, 2, size=(12, 6)))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abcabd " * 60, encoding="utf-8")
    long = {"id_column": "seq_id", "step_column": "step", "features": ("x",)}
    return {
        "forecast": {"path": str(series), "column": "value", "test_size": 6},
        "sequence_classification": {
            "path": str(events),
            **long,
            "target": "label",
            "test_size": 4,
        },  # fmt: skip
        "sequence_regression": {"path": str(events), **long, "target": "size", "test_size": 4},
        "text_classification": {
            "path": str(texts),
            "column": "text",
            "target": "label",
            "test_size": 4,
        },  # fmt: skip
        "sequence_labelling": {"path": str(tagged), "test_size": 4},
        "char_lm": {"path": str(corpus), "test_size": 0.1},
    }


def test_each_task_reads_only_the_data_keys_it_lists(tmp_path):
    """TASK_DATA_KEYS (hence README's table and `train --help`) names every `data:` key a
    task's training reads: a key it left out would be dropped from config.yaml."""
    from deeprnn.config import DataConfig, RunConfig
    from deeprnn.tasks import run_task

    tiny = {"epochs": 1, "hidden_size": 4, "num_layers": 1}
    for task, data in _user_files(tmp_path).items():
        reading = _Reading(DataConfig(**data))
        cfg = RunConfig(task=task, data=reading, model=dict(tiny), samples=1)
        run_task(cfg, tmp_path / task, {"verbose": 0})
        assert reading.read, task
        assert reading.read <= set(TASK_DATA_KEYS[task]), (task, reading.read)
