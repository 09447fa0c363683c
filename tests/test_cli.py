"""Every CLI command end to end in a temporary directory (tiny models, few epochs)."""

import json

import numpy as np
import pytest

from deeprnn.cli import main

TINY = ["--set", "model.epochs=2", "--set", "model.hidden_size=8", "--set", "model.num_layers=1"]


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def forecast_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fc")
    cfg = write(tmp / "fc.yaml", "task: forecast\ndata:\n  dataset: airline_passengers\n"
                "  test_size: 12\nmodel:\n  lookback: 12\n")  # fmt: skip
    assert main(["train", str(cfg), "--run-dir", str(tmp / "run"), "--quiet", *TINY]) == 0
    return tmp / "run"


def test_train_writes_the_run_directory(forecast_run, capsys):
    files = ["config.yaml", "model/model.safetensors", "model/estimator.json", "history.csv",
             "metrics.json", "report.md", "plots/forecast.png", "plots/training.png"]  # fmt: skip
    for name in files:
        assert (forecast_run / name).is_file(), name
    summary = json.loads((forecast_run / "metrics.json").read_text())
    assert set(summary["baselines"]) == {"seasonal_naive", "naive"}
    assert summary["metrics"]["mae"] > 0
    report = (forecast_run / "report.md").read_text()
    assert "| deeprnn |" in report and "seasonal_naive" in report
    assert len((forecast_run / "history.csv").read_text().splitlines()) >= 2


def test_evaluate_and_predict(forecast_run, tmp_path, capsys):
    assert main(["evaluate", str(forecast_run), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    saved = json.loads((forecast_run / "metrics.json").read_text())
    assert scores["metrics"]["mae"] == pytest.approx(saved["metrics"]["mae"], rel=1e-5)
    assert scores["baselines"] == saved["baselines"]  # the same test part
    assert main(["evaluate", str(forecast_run)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["model", "mae", "rmse", "mape", "smape"]
    assert [r.split()[0] for r in table[1:]] == ["deeprnn", "seasonal_naive", "naive"]
    assert main(["evaluate", str(forecast_run), "--data", "airline_passengers", "--json"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert other["baselines"]["naive"]["mae"] == pytest.approx(saved["baselines"]["naive"]["mae"])
    series = tmp_path / "s.csv"
    write(series, "value\n" + "\n".join(str(float(v)) for v in np.arange(40) % 12))
    out = tmp_path / "pred.csv"
    assert main(["predict", str(forecast_run), "--input", str(series), "--column", "value",
                 "--output", str(out)]) == 0  # fmt: skip
    lines = out.read_text().splitlines()
    assert lines[0] == "step,forecast" and len(lines) == 13 and lines[1].startswith("41,")


def test_text_classification_and_char_lm_from_user_files(tmp_path, capsys):
    for label, words in (("pos", "good great fine"), ("neg", "bad awful poor")):
        (tmp_path / "docs" / label).mkdir(parents=True)
        for i in range(6):
            write(tmp_path / "docs" / label / f"{i}.txt", f"this is {words.split()[i % 3]} stuff")
    docs = tmp_path / "docs"
    cfg = write(tmp_path / "t.yaml", f"task: text_classification\ndata:\n  path: {docs}\n"
                "  test_size: 4\nmodel:\n  validation_fraction: 0\n")  # fmt: skip
    assert main(["train", str(cfg), "--run-dir", str(tmp_path / "t"), "--quiet", *TINY]) == 0
    assert "logistic_regression" in capsys.readouterr().out
    lines = write(tmp_path / "lines.txt", "good stuff\n\nawful stuff\n")
    assert main(["predict", str(tmp_path / "t"), "--input", str(lines)]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0] == "index,prediction" and len(rows) == 3

    corpus = write(tmp_path / "c.txt", "abcabcabd " * 80)
    cfg = write(tmp_path / "lm.yaml", f"task: char_lm\ndata:\n  path: {corpus}\n  test_size: 0.1\n"
                "samples: 1\nmodel:\n  bptt_steps: 16\n  batch_size: 4\n")  # fmt: skip
    assert main(["train", str(cfg), "--run-dir", str(tmp_path / "lm"), "--quiet", *TINY]) == 0
    assert "## Samples" in (tmp_path / "lm" / "report.md").read_text()
    capsys.readouterr()
    assert (
        main(["generate", str(tmp_path / "lm"), "--prompt", "abc", "-n", "30", "--seed", "1"]) == 0
    )
    text = capsys.readouterr().out.rstrip("\n")
    assert text.startswith("abc") and len(text) == 33 and set(text) <= set("abcd ")


def test_datasets_lists_every_bundled_set(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("airline_passengers", "japanese_vowels", "shakespeare_char", "shakespeare_lines"):
        assert name in out


def test_demo_quick(tmp_path, capsys):
    assert main(["demo", "--quick", "--run-dir", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "parameters:" in out and "seasonal_naive" in out and "native" in out
    assert (tmp_path / "demo" / "plots" / "forecast.png").is_file()


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("task: forecast\ndata:\n  dataset: airline_passengers\nmodel:\n  hiden_size: 8\n",
         "model.hiden_size: unknown key.*did you mean 'hidden_size'"),
        ("task: forecast\ndata:\n  dataset: airline_passengers\nmodel:\n  epochs: many\n",
         "model.epochs: expected int or None, got str 'many'"),
        ("task: forecast\ndata:\n  datset: x\n", "data.datset: unknown key"),
        ("task: dance\ndata:\n  dataset: airline_passengers\n", "task must be one of"),
        ("task: forecast\ndata: [1, 2\n", "YAML syntax error at line"),
        ("task: forecast\ndata:\n  dataset: nope\n", "unknown dataset 'nope'"),
    ],
)  # fmt: skip
def test_bad_configs_exit_2_with_the_key_path(tmp_path, capsys, yaml_text, message):
    cfg = write(tmp_path / "bad.yaml", yaml_text)
    assert main(["train", str(cfg), "--run-dir", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deeprnn train: error:") and "Traceback" not in err
    import re

    assert re.search(message, err), err


def test_bad_arguments(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "not a finished run directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", str(tmp_path), "-n", "0"])
    assert exit_info.value.code == 2
    assert "expected a positive integer, got 0" in capsys.readouterr().err


def test_train_records_gradient_flow_every_n_epochs(tmp_path):
    cfg = write(tmp_path / "w.yaml", "task: sequence_classification\ndata:\n  dataset: waveforms\n"
                "gradient_flow_every: 2\nmodel:\n  epochs: 4\n  hidden_size: 8\n"
                "  validation_fraction: 0\n  cell: rnn\n")  # fmt: skip
    assert main(["train", str(cfg), "--run-dir", str(tmp_path / "r"), "--quiet"]) == 0
    plots = sorted(p.name for p in (tmp_path / "r" / "plots").glob("gradient_flow_*.png"))
    assert plots == ["gradient_flow_epoch002.png", "gradient_flow_epoch004.png"]
    report = (tmp_path / "r" / "report.md").read_text()
    assert "## Gradient flow" in report
    import re

    lines = [ln for ln in report.splitlines() if ln.startswith("- epoch ")]
    assert len(lines) == 2
    assert all(re.search(r"layer 0 fwd: (vanishing|healthy|exploding) \(", ln) for ln in lines)
    bad = ["train", str(cfg), "--set", "gradient_flow_every=-1", "--run-dir", str(tmp_path)]
    assert main(bad) == 2
