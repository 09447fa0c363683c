"""The example scripts run (with --quick), and the example configs load and train."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from deeprnn import cli, runs
from deeprnn.estimators import (
    CharLanguageModel,
    Forecaster,
    Seq2SeqTranslator,
    SequenceClassifier,
    SequenceTagger,
    TextClassifier,
)
from deeprnn.tasks import estimator_for

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))
CONFIGS = sorted((EXAMPLES / "configs").glob("*.yaml"))
ESTIMATORS = {
    "forecast": Forecaster,
    "sequence_classification": SequenceClassifier,
    "text_classification": TextClassifier,
    "sequence_labelling": SequenceTagger,
    "char_lm": CharLanguageModel,
    "translation": Seq2SeqTranslator,
}
# The last line each script prints: its metric.
LAST_LINE = {
    "char_language_model.py": r"bits per character \d+\.\d+ \(unigram model: \d+\.\d+\)",
    "forecast_airline.py": r"test MAE \d+\.\d thousand passengers \(seasonal naive: \d+\.\d\)",
    "lstm_classification.py": r"LSTM\(128\) -> Dense\(relu\) -> LSTM\(128\) .* accuracy 0\.\d+",
    "stacked_rnn_regression.py": r"test RMSE \d+\.\d+ sunspots \(repeat last month: \d+\.\d+\)",
    "text_classification.py": r"test accuracy [01]\.\d+ \(majority class 0\.\d+\)",
    "two_inputs.py": r"test MSE \d+\.\d+ \(predicting the mean: \d+\.\d+\)",
}


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """Every script with --quick, all started at once (most of their time is imports);
    name -> (CompletedProcess-like result, its working directory)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    started = {}
    for script in SCRIPTS:
        cwd = tmp_path_factory.mktemp(script.stem)
        args = [sys.executable, str(script), "--quick"]
        if script.name == "forecast_airline.py":
            args += ["--out", str(cwd / "plots" / "forecast.png")]
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        started[script.name] = (proc, cwd)
    results = {}
    for name, (proc, cwd) in started.items():
        try:
            out, err = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        results[name] = (proc.returncode, out, err, cwd)
    return results


def test_every_script_has_an_expected_last_line():
    assert sorted(LAST_LINE) == [s.name for s in SCRIPTS]


@pytest.mark.parametrize("name", sorted(LAST_LINE))
def test_example_runs_quick(quick_runs, name):
    code, out, err, cwd = quick_runs[name]
    assert code == 0, err[-3000:]
    assert re.fullmatch(LAST_LINE[name], out.strip().splitlines()[-1]), out
    if name == "forecast_airline.py":
        png = cwd / "plots" / "forecast.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_there_is_a_config_per_cli_task():
    tasks = {runs.load_config(path).task for path in CONFIGS}
    assert tasks == set(ESTIMATORS) and len(CONFIGS) == 8


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads_and_its_model_section_is_valid(path):
    cfg = runs.load_config(path)
    assert cfg.run_dir == f"runs/{path.stem}"
    estimator_for(ESTIMATORS[cfg.task], cfg.model)  # unknown keys or wrong types raise


def test_a_config_trains_end_to_end(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", str(EXAMPLES / "configs" / "vowels.yaml"), "--run-dir", str(run_dir),
            "--quiet", "--set", "model.epochs=1", "--set", "model.hidden_size=8"]  # fmt: skip
    assert cli.main(argv) == 0
    table = capsys.readouterr().out
    assert re.search(r"^deeprnn\s+0\.\d+", table, re.M) and "logistic_regression" in table
    for name in ("config.yaml", "model", "history.csv", "metrics.json", "report.md"):
        assert (run_dir / name).exists(), name
    assert (run_dir / "plots" / "confusion_matrix.png").is_file()
    assert "epochs: 1" in (run_dir / "config.yaml").read_text()


def test_the_demo_trains_the_documented_airline_config():
    """`deeprnn demo` and examples/configs/forecast_airline.yaml are one model: README
    reports the config's figures as the demo's."""
    from deeprnn.commands import DEMO_CONFIG

    documented = runs.load_config(EXAMPLES / "configs" / "forecast_airline.yaml")
    demo = runs.load_config(None, data={**DEMO_CONFIG, "run_dir": documented.run_dir})
    assert demo == documented


def test_the_readme_tour_runs():
    """The first code block of README's quick tour runs as written (the estimator block
    after it trains full models and is left to the examples)."""
    readme = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    tour = readme.split("## A quick tour", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(tour, "README.md (quick tour)", "exec"), namespace)
    assert namespace["logits"].shape == (32, 5) and namespace["y_t"].shape == (1, 64)
    assert namespace["merged"].shape == (4, 48)
