"""Data-aware defaults (issue 12 §1): the rules, what fit records in defaults_, validation
by folds or a split then a refit on all the data, per-sequence scaling, and a small / long
task the former fixed defaults could not learn."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deeprnn.config_io import ConfigError
from deeprnn.estimators import (
    Forecaster,
    RNNEstimator,
    SequenceClassifier,
    SequenceRegressor,
    SequenceTagger,
    TextClassifier,
    defaults,
)
from deeprnn.estimators.defaults import (
    DataShape,
    Defaults,
    auto_batch_size,
    auto_epochs,
    auto_frontend,
    auto_hidden_size,
    epochs_for_updates,
    validation_plan,
)
from deeprnn.estimators.inputs import per_sequence_normalise
from deeprnn.runs import describe_model

TINY = dict(num_layers=1, hidden_size=4)


@pytest.fixture(autouse=True)
def _few_updates(monkeypatch):
    """Tests train for a few updates, on one thread: the rules, not their budget, are tested."""
    monkeypatch.setattr(defaults, "UPDATES", 40)
    monkeypatch.setattr(defaults, "MIN_EPOCHS", 2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def motif_task(n: int, steps: int = 160, seed: int = 0):
    """Noise with one bump (class 1) or dip (class 0) of 20 steps at a random place."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(0, 1, (n, steps, 1))
    bump = np.sin(np.linspace(0, np.pi, 20)) * 3
    for i in range(n):
        s = rng.integers(0, steps - 20)
        X[i, s : s + 20, 0] += bump if y[i] else -bump
    return X, y


def test_batch_epochs_width_and_validation_rules():
    assert [auto_batch_size(n) for n in (10, 50, 200, 256, 600, 100_000)] == [8, 8, 16, 16, 32, 64]
    # An update budget, not passes: 50 sequences in batches of 8 make 7 updates a pass.
    assert auto_epochs(50, 8, updates=1500) == 215
    assert auto_epochs(100_000, 64, updates=1500) == defaults.MIN_EPOCHS
    assert auto_epochs(1, 8, updates=10**6) == defaults.MAX_EPOCHS
    assert epochs_for_updates(520, 48, 8) == 87 and epochs_for_updates(3, 1000, 8) == 1
    assert [auto_hidden_size(n) for n in (36, 249, 250, 4999, 5000)] == [32, 32, 64, 64, 128]
    assert validation_plan(50) == ("cv", 3)
    assert validation_plan(defaults.CV_BELOW) == ("split", 0.2)
    assert validation_plan(defaults.SPLIT_BELOW) == ("early", 0.1)


def test_front_end_rule_from_the_lengths():
    assert auto_frontend(64, 64) is None  # short enough for the RNN as it is
    assert auto_frontend(150, 150)["pool"] == [2, 2]  # 150 / 64 -> 4 -> about 37 steps
    assert auto_frontend(427, 427)["pool"] == [4, 2]
    assert auto_frontend(1460, 1460)["pool"] == [4, 4]  # at most 16
    # The shortest sequence keeps at least 4 steps: 20 steps allow a pool of 4, not 8.
    assert auto_frontend(400, 20)["pool"] == [2, 2]
    assert auto_frontend(400, 5) is None


def test_fit_records_every_choice_with_a_reason_and_keeps_given_arguments():
    X, y = motif_task(30, steps=100)
    clf = SequenceClassifier(num_layers=1, hidden_size=6, seed=1).fit(X, y)
    chosen = clf.defaults_
    assert isinstance(chosen, Defaults)
    assert set(chosen) == {"frontend", "bidirectional", "pooling", "validation", "batch_size",
                           "epochs", "schedule"}  # fmt: skip
    assert "hidden_size" not in chosen and clf.model_.body.layers[0].hidden_size == 6
    assert chosen.value("frontend")["pool"] == [2, 1]  # 100 steps: ~50 for the RNN
    assert chosen.value("bidirectional") is True and clf.model_.body.layers[0].bidirectional
    assert chosen.value("pooling") == "mean" and clf.model_.head.pooling == "mean"
    assert chosen.value("validation") == "cv 3" and chosen.value("batch_size") == 8
    assert all(isinstance(v["reason"], str) and v["reason"] for v in chosen.values())
    # The arguments stay as the user set them (clone / get_params see None and "auto").
    params = clf.get_params()
    assert params["epochs"] is None and params["frontend"] == "auto"
    assert str(chosen).splitlines()[0].startswith("frontend ")
    assert chosen.markdown().startswith("| argument | chosen | why |")


def test_small_data_picks_updates_by_folds_then_refits_on_everything():
    X, y = motif_task(24, steps=40)
    clf = SequenceClassifier(**TINY, seed=2).fit(X, y)
    epochs = clf.defaults_.value("epochs")
    # The final model trained on all 24 sequences, for the chosen epochs, without a holdout.
    assert len(clf.history_["train_loss"]) == epochs and "val_loss" not in clf.history_
    assert "3 folds" in clf.defaults_["epochs"]["reason"]
    assert 1 <= epochs <= auto_epochs(24, 8)


def test_one_split_and_early_stopping_above_the_thresholds(monkeypatch):
    X, y = motif_task(40, steps=30)
    monkeypatch.setattr(defaults, "CV_BELOW", 10)
    clf = SequenceClassifier(**TINY).fit(X, y)
    assert clf.defaults_.value("validation") == "split 0.2"
    assert "split" in clf.defaults_["epochs"]["reason"] and "val_loss" not in clf.history_
    monkeypatch.setattr(defaults, "SPLIT_BELOW", 20)
    clf = SequenceClassifier(**TINY, patience=2).fit(X, y)
    assert clf.defaults_.value("validation") == "early 0.1" and "val_loss" in clf.history_
    # A given fraction is used as it is: early stopping, no plan listed.
    given = SequenceClassifier(**TINY, validation_fraction=0.25, epochs=3).fit(X, y)
    assert "validation" not in given.defaults_ and "epochs" not in given.defaults_
    assert len(given.history_["val_loss"]) <= 3


def test_small_long_sequences_learned_where_the_former_defaults_were_at_chance(monkeypatch):
    monkeypatch.setattr(defaults, "UPDATES", 200)
    X, y = motif_task(48, seed=1)
    X_test, y_test = motif_task(200, seed=2)
    former = dict(hidden_size=64, bidirectional=False, pooling="last", epochs=50, batch_size=32,
                  validation_fraction=0.1, frontend=None)  # fmt: skip
    before = SequenceClassifier(**former).fit(X, y).score(X_test, y_test)
    after = SequenceClassifier().fit(X, y).score(X_test, y_test)
    assert before < 0.65 and after > 0.9, (before, after)


def test_other_estimators_choose_too():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 8, 2))
    reg = SequenceRegressor(**TINY).fit(X, X[:, :, 0].sum(1))
    assert reg.defaults_.value("frontend") is None and reg.defaults_.value("pooling") == "mean"
    texts = ["good fun", "bad day", "good day", "bad fun"] * 4
    text = TextClassifier(**TINY).fit(texts, ["pos", "neg"] * 8)
    assert text.defaults_.value("frontend") is None
    assert "token" in text.defaults_["frontend"]["reason"]
    tags = [["a"] * len(s) for s in X]
    tagger = SequenceTagger(**TINY).fit([x for x in X], [t[:-1] + ["b"] for t in tags])
    assert tagger.defaults_.value("bidirectional") is True and "pooling" not in tagger.defaults_
    assert tagger.defaults_.value("frontend") is None and tagger.model_.frontend is None


def test_defaults_survive_save_and_load_and_reach_the_report(tmp_path):
    X, y = motif_task(20, steps=30)
    clf = SequenceClassifier(**TINY).fit(X, y)
    loaded = RNNEstimator.load(clf.save(tmp_path / "m"))
    assert isinstance(loaded.defaults_, Defaults) and loaded.defaults_ == clf.defaults_
    assert np.array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    meta = json.loads((tmp_path / "m" / "estimator.json").read_text())
    assert "__defaults__" in meta["learned"]["defaults_"]
    report = "\n".join(describe_model(clf))
    assert "## Defaults chosen from the data" in report and "| batch_size | `8` |" in report


def test_per_sequence_normalisation_ignores_offset_and_scale():
    seq = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    out = per_sequence_normalise(seq)
    assert np.allclose(out[:, 0], [-1.2247449, 0, 1.2247449]) and np.all(out[:, 1] == 0)
    X, y = motif_task(20, steps=30)
    clf = SequenceClassifier(**TINY, per_sequence=True, epochs=2).fit(X, y)
    assert np.allclose(clf.predict_proba(X), clf.predict_proba(3.0 * X + 7.0), atol=1e-5)
    plain = SequenceClassifier(**TINY, epochs=2).fit(X, y)
    assert not np.allclose(plain.predict_proba(X), plain.predict_proba(3.0 * X + 7.0), atol=1e-3)


def test_data_shape_reads_lengths_features_and_tokens():
    shape = DataShape.of([np.zeros((5, 3)), np.zeros((9, 3)), np.zeros((7, 3))], classes=2)
    assert (shape.n, shape.median_length, shape.min_length, shape.features) == (3, 7, 5, 3)
    assert DataShape.of([np.zeros(4, dtype=np.int64)], tokens=True).features is None


def test_pick_epochs_by_accuracy_takes_the_most_epochs_within_one_standard_error():
    from deeprnn.estimators.defaults import pick_epochs

    # a plateau at ~0.9 from epoch 10 on: a peak at epoch 12 is noise, the plateau's end wins
    rising = list(np.linspace(0.5, 0.9, 10))
    plateau = rising + [0.9, 0.93, 0.9, 0.91, 0.9, 0.9, 0.89, 0.9, 0.91, 0.9]
    best, why = pick_epochs([plateau, plateau], accuracy=True, seen=100)
    assert best == 20 and "one standard error" in why
    # a real decline after epoch 10 (by far more than the standard error) stops there
    falling = rising + list(np.linspace(0.85, 0.6, 10))
    best, _ = pick_epochs([falling], accuracy=True, seen=1000)
    assert 8 <= best <= 11
    # fewer validation sequences: a wider band, so later epochs count as the same
    dip = rising + [0.88, 0.87, 0.86, 0.85, 0.84, 0.83, 0.82, 0.81, 0.8, 0.79]
    assert pick_epochs([dip], True, seen=10)[0] > pick_epochs([dip], True, seen=10_000)[0]
    # folds that stopped early are continued by their last value
    assert pick_epochs([[0.5, 0.9], [0.5, 0.6, 0.9, 0.9]], True, seen=50)[0] == 4


def test_pick_epochs_by_loss_is_the_lowest_mean():
    from deeprnn.estimators.defaults import pick_epochs

    best, why = pick_epochs([[1.0, 0.5, 0.7], [1.0, 0.6, 0.4]], accuracy=False, seen=10)
    assert best == 2 and "lowest mean validation loss" in why  # means 1.0, 0.55, 0.55


def test_schedule_auto_decays_a_fixed_budget_and_keeps_early_stopping_constant():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 12, 1)).astype(np.float32)
    y = (X[:, :, 0].mean(1) > 0).astype(int)
    fixed = SequenceClassifier(validation_fraction=0, hidden_size=8).fit(X, y)  # 15 epochs
    assert fixed.defaults_["schedule"]["value"] == "cosine"
    lrs = fixed.history_["lr"]
    assert lrs[0] == pytest.approx(3e-3) and all(a > b for a, b in zip(lrs, lrs[1:]))
    early = SequenceClassifier(validation_fraction=0.25, hidden_size=8, patience=2).fit(X, y)
    assert early.defaults_["schedule"]["value"] is None
    assert set(early.history_["lr"]) == {3e-3}
    given = SequenceClassifier(epochs=6, validation_fraction=0, hidden_size=8).fit(X, y)
    assert given.defaults_["schedule"]["value"] is None and set(given.history_["lr"]) == {3e-3}
    given = SequenceClassifier(validation_fraction=0, hidden_size=8, schedule=None)
    assert set(given.fit(X, y).history_["lr"]) == {3e-3} and "schedule" not in given.defaults_
    with pytest.raises(ConfigError, match="schedule: expected None or one of"):
        SequenceClassifier(schedule="linear").fit(X, y)
    with pytest.raises(ConfigError, match="schedule: expected None or one of"):
        Forecaster(lookback=8, horizon=2, schedule="auto").fit(np.arange(60.0))  # not data-aware
