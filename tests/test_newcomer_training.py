"""Issue 17's silent poor results and missing explanations: a language model sized from its
text, why training stopped, metrics per family in the series' units, printable explain()."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch

import deeprnn
from deeprnn import plots
from deeprnn.data import load_dataset
from deeprnn.errors import DeepRNNError, InputError
from deeprnn.estimators import CharLanguageModel, Forecaster, RNNEstimator, SequenceClassifier
from deeprnn.export import export
from deeprnn.tasks.language import ngram_bits

PARAGRAPH = "The quick brown fox jumps over the lazy dog while the cat sleeps on the mat. " * 6


def test_a_short_text_sizes_its_batches_and_learns(recwarn):
    train, test = PARAGRAPH[:-60], PARAGRAPH[-60:]
    lm = CharLanguageModel(hidden_size=32, num_layers=1, epochs=20, patience=None).fit(train)
    assert (lm.batch_size_, lm.bptt_steps_) == (2, 22)  # 8 updates an epoch from 362 chars
    assert not [w for w in recwarn if "too few" in str(w.message)]
    assert lm.bits_per_char(test) < 0.6 * ngram_bits(train, test, 2)  # beats the bigram model
    with pytest.warns(UserWarning) as caught:
        CharLanguageModel(hidden_size=4, num_layers=1, epochs=1, batch_size=32,
                          bptt_steps=64).fit(train)  # fmt: skip
    message = str(caught[0].message)
    assert "362 training characters: batch_size=32 rows x bptt_steps=64 make 2 update(s)" in message
    assert "leave batch_size / bptt_steps as None to size them from the text" in message


def test_a_2d_array_for_one_sequence_says_pass_a_list():
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(12, 3)) for _ in range(8)]
    clf = SequenceClassifier(hidden_size=4, num_layers=1, epochs=1).fit(X, [0, 1] * 4)
    with pytest.raises(InputError) as err:
        clf.predict(X[0])  # (12, 3): read as 12 univariate sequences of 3 steps
    text = str(err.value)
    assert text.startswith("X has 1 features per step but the estimator was fitted on 3")
    assert "a 2-D array (12, 3) is read as 12 sequences of 3 steps with 1 feature" in text
    assert "pass a list [x] for one sequence (or x[None])" in text
    assert len(clf.predict([X[0]])) == 1


def test_forecaster_validation_metrics_are_in_the_series_units():
    y = load_dataset("airline_passengers").series[:96]
    est = Forecaster(lookback=12, horizon=12, log=True, epochs=2, hidden_size=8, num_layers=1,
                     validation_fraction=0.01, patience=None)  # fmt: skip
    est.fit(y)  # the held-out part is one horizon: exactly one validation window
    pred = est.predict(y=y[:84])
    assert est.history_["val_mae"][-1] == pytest.approx(np.mean(np.abs(y[84:] - pred)), rel=1e-4)
    mape = 100 * np.mean(np.abs(y[84:] - pred) / y[84:])
    assert est.history_["val_mape"][-1] == pytest.approx(mape, rel=1e-4)
    panels = plots.metric_panels(est.history_)
    assert list(panels)[0] == "loss" and set(panels["loss"]) == {"train_loss", "val_loss"}
    assert set(panels["error (units of the target)"]) == {"val_mae", "val_rmse", "val_mse"}
    assert set(panels["percentage error (%)"]) == {"val_mape", "val_smape"}
    drawn = {name for series in panels.values() for name in series}
    assert not drawn & {"skipped_steps", "lr", "grad_norm", "max_grad_norm", "seconds", "epoch"}


def test_stop_reason_survives_save_and_load(tmp_path):
    X = [np.full((5, 1), float(i % 2)) for i in range(20)]
    clf = SequenceClassifier(hidden_size=4, num_layers=1, epochs=40, patience=1, lr=1e-9,
                             validation_fraction=0.1)  # fmt: skip
    clf.fit(X, [i % 2 for i in range(20)])
    stop = clf.history_.stop
    assert stop["reason"] == "early_stopping" and stop["patience"] == 1 and stop["epoch"] < 40
    loaded = RNNEstimator.load(clf.save(tmp_path / "m"))
    assert (
        loaded.history_.stop == stop and loaded.history_["train_loss"] == clf.history_["train_loss"]
    )


def test_explain_prints_a_table_and_stays_a_list(capsys):
    net = deeprnn.DeepRNN(3, 4, num_layers=2, layer_norm=True)
    report = net.explain()
    print(report)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["layer", "cell", "path", "reason"]
    assert lines[1].split()[:3] == ["0", "lstm", "fused"] and len(lines) == 3
    assert report == [dict(r) for r in report] and report[1]["path"] == "fused"
    assert report.markdown().startswith("| layer | cell | path | reason |\n|---|---|---|---|")


def test_the_export_error_names_an_install_command_that_works(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if onnx were not installed
    net = deeprnn.DeepRNN(2, 3, num_layers=1)
    with warnings.catch_warnings(), pytest.raises(DeepRNNError) as err:
        warnings.simplefilter("ignore")
        export(net, tmp_path / "m.onnx", "onnx", example=torch.zeros(1, 4, 2))
    text = str(err.value)
    assert "ONNX export needs the onnx package, which is not installed: pip install onnx" in text
    assert "pip install -e '.[export]'" in text and "format='torchscript'" in text
