"""The sequence_labelling task: `deeprnn train / evaluate / predict` end to end, a short
run that really learns, and the errors for data without per-step labels."""

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from deeprnn import runs
from deeprnn.cli import main
from deeprnn.config import DataConfig, RunConfig
from deeprnn.data import load_dataset
from deeprnn.errors import InputError
from deeprnn.estimators import SequenceTagger
from deeprnn.tasks import common, run_task, tagging

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "configs" / "switching_waves.yaml"
TINY = ["--set", "model.epochs=2", "--set", "model.hidden_size=8", "--set", "model.num_layers=1"]


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def tagged_npz(path, n=12, steps=20, with_y=True, per_step=True):
    """An archive of n equal-length 2-feature sequences, labelled by the sign of feature 0."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, steps, 2))
    y = (X[:, :, 0] > 0).astype(np.int64) if per_step else np.arange(n) % 2
    np.savez(path, **({"X": X, "y": y} if with_y else {"X": X}))
    return path


@pytest.fixture(scope="module")
def tagging_run(tmp_path_factory):
    """The documented config, trained tiny; (run_dir, printed table)."""
    run_dir = tmp_path_factory.mktemp("tag") / "run"
    out = io.StringIO()  # capsys is per test; this fixture is shared by the module
    with contextlib.redirect_stdout(out):
        code = main(["train", str(CONFIG), "--run-dir", str(run_dir), "--quiet", *TINY])
    assert code == 0
    return run_dir, out.getvalue()


def test_train_writes_the_run_and_prints_the_baselines(tagging_run):
    run_dir, table = tagging_run
    files = ["config.yaml", "model/model.safetensors", "model/estimator.json", "history.csv",
             "metrics.json", "report.md", "plots/confusion_matrix.png",
             "plots/training.png"]  # fmt: skip
    for name in files:
        assert (run_dir / name).is_file(), name
    assert re.search(r"^deeprnn\s+0\.\d+", table, re.M)
    assert "majority_label" in table and "logistic_regression_window" in table
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["task"] == "sequence_labelling"
    assert set(summary["metrics"]) == {"accuracy", "f1_macro"}
    assert set(summary["baselines"]) == {"majority_label", "logistic_regression_window"}
    report = (run_dir / "report.md").read_text()
    assert "# deeprnn run: sequence_labelling" in report
    assert "steps of the 150 test sequences" in report
    assert "epochs: 2" in (run_dir / "config.yaml").read_text()


def test_evaluate_and_predict_the_run(tagging_run, tmp_path, capsys):
    run_dir, _ = tagging_run
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)["metrics"]
    saved = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert scores["accuracy"] == pytest.approx(saved["accuracy"], rel=1e-6)
    waves = load_dataset("switching_waves", n_train=1, n_test=2)
    X = np.stack([x[:50] for x in waves.X_test])
    np.savez(tmp_path / "w.npz", X=X)
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run_dir), "--input", str(tmp_path / "w.npz"),
                 "--output", str(out)]) == 0  # fmt: skip
    lines = out.read_text().splitlines()
    assert lines[0] == "index,step,prediction" and len(lines) == 1 + 2 * 50
    assert lines[1].startswith("0,0,") and lines[-1].startswith("1,49,")
    assert {int(line.split(",")[2]) for line in lines[1:]} <= {0, 1, 2, 3}


def test_a_short_run_learns_well_above_the_majority_label():
    ds = load_dataset("switching_waves", n_train=100, n_test=40)
    est = SequenceTagger(cell="gru", num_layers=1, hidden_size=16, epochs=6, batch_size=16,
                         lr=0.02, validation_fraction=0, seed=0)  # fmt: skip
    est.fit(ds.X_train, ds.y_train)
    truth = np.concatenate(ds.y_test)
    model = np.mean(np.concatenate(est.predict(ds.X_test)) == truth)
    majority = np.mean(common.majority(np.concatenate(ds.y_train), len(truth)) == truth)
    assert majority < 0.35 and model > majority + 0.25, (model, majority)


def test_window_features_pad_the_ends_with_zeros():
    x = np.arange(1.0, 5.0)[:, None] * [1.0, 10.0]  # 4 steps, 2 features
    rows = tagging.window_features([x, x[:2]], k=1)
    assert rows.shape == (6, 6)
    np.testing.assert_array_equal(rows[0], [0, 0, 1, 10, 2, 20])  # no step before the first
    np.testing.assert_array_equal(rows[3], [3, 30, 4, 40, 0, 0])  # nor after the last
    np.testing.assert_array_equal(rows[5], [1, 10, 2, 20, 0, 0])  # the next sequence


def test_a_user_npz_with_per_step_labels_trains(tmp_path, capsys):
    data = tagged_npz(tmp_path / "t.npz")
    cfg = write(tmp_path / "t.yaml", f"task: sequence_labelling\ndata:\n  path: {data}\n"
                "  test_size: 3\nmodel:\n  validation_fraction: 0\n")  # fmt: skip
    assert main(["train", str(cfg), "--run-dir", str(tmp_path / "r"), "--quiet", *TINY]) == 0
    assert "majority_label" in capsys.readouterr().out
    assert "all 60 steps of the 3 test sequences" in (tmp_path / "r" / "report.md").read_text()


def _labelling(**data) -> RunConfig:
    return RunConfig(task="sequence_labelling", data=DataConfig(**data), model={"epochs": 1})


@pytest.mark.parametrize(
    "data, message",
    [
        ({"dataset": "waveforms"}, r"'waveforms' holds one label per sequence, not one per step"),
        ({"dataset": "airline_passengers"}, r"holds no labelled sequences"),
    ],
)
def test_datasets_without_per_step_labels_raise_input_error(tmp_path, data, message):
    with pytest.raises(InputError, match=message):
        run_task(_labelling(**data), tmp_path, {})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"per_step": False}, r"needs X \(N, T\) or \(N, T, F\) and y \(N, T\).*y \(12,\)"),
        ({"with_y": False}, r"needs a 'y' array of per-step labels"),
    ],
)
def test_npz_without_per_step_labels_raises_input_error(tmp_path, kwargs, message):
    path = tagged_npz(tmp_path / "bad.npz", **kwargs)
    with pytest.raises(InputError, match=message):
        run_task(_labelling(path=str(path)), tmp_path, {})


def test_the_cli_names_the_right_task_for_each_kind_of_dataset(tmp_path, capsys):
    cfg = write(tmp_path / "w.yaml", "task: sequence_labelling\ndata:\n  dataset: waveforms\n")
    assert main(["train", str(cfg), "--run-dir", str(tmp_path / "a"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deeprnn train: error:") and "task: sequence_classification" in err
    cfg = write(tmp_path / "s.yaml",
                "task: sequence_classification\ndata:\n  dataset: switching_waves\n")  # fmt: skip
    assert main(["train", str(cfg), "--run-dir", str(tmp_path / "b"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert (
        "labels every step" in err and "task: sequence_labelling" in err and "Traceback" not in err
    )


def test_the_config_model_section_is_rejected_by_name(tmp_path):
    cfg = runs.load_config(CONFIG, ["model.pooling=last"])
    with pytest.raises(ValueError, match="model.pooling: unknown key"):
        run_task(cfg, tmp_path, {})
