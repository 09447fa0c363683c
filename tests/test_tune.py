"""deeprnn.tune: the search end to end on a tiny budget, resume after an interrupt, the CLI
(best.yaml retrains to the same score) and bad input."""

from __future__ import annotations

import csv
import json
import sys
import time

import numpy as np
import pytest
import torch

import deeprnn
from deeprnn.cli import main
from deeprnn.config_io import ConfigError, read_yaml
from deeprnn.errors import DeepRNNError, InputError
from deeprnn.estimators import EnsembleClassifier, SequenceClassifier
from deeprnn.train.loop import extra_callbacks
from deeprnn.tune import Range
from deeprnn.tune.budget import parse_budget
from deeprnn.tune.storage import import_optuna

# Small enough for a trial to take a fraction of a second.
SPACE = {"hidden_size": [8], "num_layers": [1], "frontend": None, "bidirectional": None,
         "lr": Range(3e-3, 1e-2, log=True)}  # fmt: skip


def _data(n=48, t=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, t, 1)).astype(np.float32)
    return X, (X[:, :, 0].mean(1) > 0).astype(int)


def _est():
    return SequenceClassifier(epochs=3, batch_size=16, validation_fraction=0)


@pytest.mark.parametrize("budget", [0, -5, "0s", "abc", "5 minutes", float("inf"), True])
def test_budget_must_be_a_positive_duration(budget):
    X, y = _data()
    with pytest.raises(InputError, match="budget"):
        deeprnn.tune(_est(), X, y, budget=budget)


def test_budget_texts():
    assert parse_budget("1h30m") == 5400
    assert parse_budget("90s") == parse_budget(90) == parse_budget("1.5m") == 90


def test_unknown_space_key_names_the_nearest_argument():
    X, y = _data()
    with pytest.raises(ConfigError, match=r"hiden_size.*did you mean 'hidden_size'"):
        deeprnn.tune(_est(), X, y, budget=5, space={"hiden_size": [8, 16]})
    with pytest.raises(ConfigError, match="empty list"):
        deeprnn.tune(_est(), X, y, budget=5, space={"cell": []})


def test_missing_optuna_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(DeepRNNError) as err:
        import_optuna()
    assert str(err.value) == (  # `deeprnn[tune]` would ask PyPI, where deeprnn is not
        "deeprnn.tune searches with Optuna, which is not installed: pip install optuna "
        "(in a deeprnn checkout: pip install -e '.[tune]')"
    )


def test_tune_end_to_end(tmp_path):
    X, y = _data()
    result = deeprnn.tune(_est(), X, y, budget=60, space=SPACE, ensemble=2, trials=3,
                          run_dir=tmp_path, verbose=0, validation=0.25)  # fmt: skip
    board = result.leaderboard
    assert len(board) == 3 and board[0]["rank"] == 1
    finished = [r["score"] for r in board if r["state"] == "complete"]
    assert result.best_score == max(finished) == board[0]["score"]
    # The best estimator is a fresh fit on all the data with the best trial's arguments.
    params = result.best_estimator.get_params()
    assert all(params[k] == v for k, v in result.best_params.items())
    assert params["hidden_size"] == 8 and params["num_layers"] == 1
    assert 3e-3 <= params["lr"] <= 1e-2
    assert result.best_estimator.predict(X).shape == (len(X),)
    ens = result.ensemble
    assert isinstance(ens, EnsembleClassifier) and len(ens.estimators_) == 2
    mean = np.mean([m.predict_proba(X) for m in ens.estimators_], axis=0)
    np.testing.assert_allclose(ens.predict_proba(X), mean)
    with open(tmp_path / "leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["trial"]) for r in rows] == [r["trial"] for r in board]
    assert {"rank", "state", "score", "cell", "pooling", "lr"} <= set(rows[0])
    assert (tmp_path / "leaderboard.png").stat().st_size > 0
    assert read_yaml(tmp_path / "best_params.yaml")["params"] == result.best_params
    loaded = EnsembleClassifier.load(tmp_path / "ensemble")
    np.testing.assert_allclose(loaded.predict_proba(X), ens.predict_proba(X), atol=1e-6)


def _interrupt_at_first_epoch(event, state):
    if event == "epoch_end":
        raise KeyboardInterrupt


def test_resume_after_an_interrupt_keeps_and_redoes_trials(tmp_path):
    X, y = _data()
    kw = dict(budget=60, space=SPACE, run_dir=tmp_path, verbose=0, validation=0.25)
    first = deeprnn.tune(_est(), X, y, trials=2, **kw).study.trials
    with pytest.raises(InputError, match="already holds a search"):
        deeprnn.tune(_est(), X, y, trials=1, **kw)
    with extra_callbacks(_interrupt_at_first_epoch), pytest.raises(KeyboardInterrupt):
        deeprnn.tune(_est(), X, y, trials=1, resume=True, **kw)
    result = deeprnn.tune(_est(), X, y, trials=2, resume=True, **kw)
    trials = result.study.trials
    states = [t.state.name for t in trials]
    # the two new trials run to the end or are stopped by the pruner, whose call it is
    assert states[:3] == ["COMPLETE", "COMPLETE", "FAIL"] and len(states) == 5
    assert set(states[3:]) <= {"COMPLETE", "PRUNED"}
    for old, new in zip(first, trials):  # the finished trials are kept as they were
        assert (old.params, old.value) == (new.params, new.value)
    assert trials[3].params == trials[2].params  # the interrupted trial is redone first
    complete = [r for r in result.leaderboard if r["state"] == "complete"]
    assert len(complete) == states.count("COMPLETE")


def test_the_first_trial_is_the_estimator_as_given():
    X, y = _data()
    est = SequenceClassifier(epochs=3, batch_size=16, validation_fraction=0, cell="gru", lr=4e-3)
    space = {"hidden_size": [8, 16], "frontend": None, "bidirectional": None}
    result = deeprnn.tune(est, X, y, budget=60, space=space, trials=2, verbose=0,
                          validation=0.25)  # fmt: skip
    first = result.study.trials[0]
    # its own values; hidden_size=None (data-aware) is outside the user's choices [8, 16],
    # so the sampler picks that one; pooling="auto" joins the default space's choices
    assert first.params["cell"] == "gru" and first.params["lr"] == 4e-3
    assert first.params["pooling"] == "auto" and first.params["hidden_size"] in (8, 16)
    assert first.params["num_layers"] == 2 and first.params["dropout"] == 0.0
    board = {r["trial"]: r for r in result.leaderboard}
    assert board[0]["pooling"] == "auto"


def test_small_data_trials_score_the_mean_over_folds():
    X, y = _data(n=24)
    space = {**SPACE, "cell": ["gru"], "pooling": ["mean"], "lr": 5e-3, "dropout": None}
    result = deeprnn.tune(_est(), X, y, budget=60, space=space, trials=1, verbose=0)
    assert result.leaderboard[0]["epochs"] == 3 * 3  # "auto": 3 folds of 3 epochs
    folds = [SequenceClassifier(**{**_est().get_params(), **result.best_params})
             for _ in range(3)]  # fmt: skip
    from sklearn.model_selection import StratifiedKFold

    split = StratifiedKFold(3, shuffle=True, random_state=0).split(X, y)
    scores = [f.fit(X[tr], y[tr]).score(X[va], y[va]) for f, (tr, va) in zip(folds, split)]
    assert result.best_score == pytest.approx(np.mean(scores))
    with pytest.raises(InputError, match="number of folds"):
        deeprnn.tune(_est(), X, y, budget=5, validation=20)


def test_resume_needs_a_search(tmp_path):
    X, y = _data()
    with pytest.raises(InputError, match="no search to resume"):
        deeprnn.tune(_est(), X, y, budget=5, run_dir=tmp_path, resume=True)


def test_cli_tune_then_train_best_yaml_gives_the_same_score(tmp_path, capsys):
    X, y = _data(n=40)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    (tmp_path / "c.yaml").write_text(
        "task: sequence_classification\ndata:\n  path: d.npz\n  test_size: 0.25\n"
        "model:\n  epochs: 3\n  batch_size: 16\n  validation_fraction: 0\n"
    )
    (tmp_path / "space.yaml").write_text(
        "hidden_size: [8]\nnum_layers: [1]\nfrontend: null\nlr: {low: 0.003, high: 0.01}\n"
    )
    run = tmp_path / "search"
    args = ["tune", str(tmp_path / "c.yaml"), "--budget", "60s", "--trials", "1",
            "--space", str(tmp_path / "space.yaml"), "--run-dir", str(run), "--quiet"]  # fmt: skip
    assert main(args) == 0
    assert "retrain the best with: deeprnn train" in capsys.readouterr().out
    summary = json.loads((run / "tune.json").read_text())
    best = read_yaml(run / "best.yaml")
    assert {k: best["model"][k] for k in summary["best_params"]} == summary["best_params"]
    assert main(["train", str(run / "best.yaml"), "--run-dir", str(tmp_path / "t"), "--quiet"]) == 0
    trained = json.loads((tmp_path / "t" / "metrics.json").read_text())["metrics"]
    assert trained["accuracy"] == pytest.approx(summary["test"]["best"]["accuracy"])
    assert main(["tune", str(tmp_path / "c.yaml"), "--run-dir", str(tmp_path / "new"),
                 "--resume", "--quiet"]) == 2  # fmt: skip
    assert "no search to resume" in capsys.readouterr().err


def test_the_search_ends_early_enough_for_the_refits():
    from types import SimpleNamespace

    from deeprnn.tune.search import RefitReserve

    def trial(value, seconds, state="COMPLETE"):
        return SimpleNamespace(value=value, number=0, state=SimpleNamespace(name=state),
                               user_attrs={"seconds": seconds})  # fmt: skip

    class Study:
        def __init__(self, trials):
            self.trials, self.stopped = trials, False

        def get_trials(self, deepcopy=False):
            return self.trials

        def stop(self):
            self.stopped = True

    objective = SimpleNamespace(deadline=None)
    start = time.monotonic()
    # 3 folds, refits on 1.5x a fold's data; the 2 best trials took 30 s and 60 s (3 folds).
    reserve = RefitReserve(objective, start, 300.0, members=2, n_folds=3, scale=1.5)
    study = Study([trial(0.9, 30.0), trial(0.5, 600.0), trial(0.8, 60.0),
                   trial(None, 5.0, "PRUNED")])  # fmt: skip
    reserve(study, None)
    assert reserve.reserved == pytest.approx(1.5 * (10 + 20))
    assert objective.deadline == pytest.approx(start + 300 - 45)
    assert not study.stopped
    # More members than finished trials: the best's time again; past the end: stop.
    late = RefitReserve(objective, start - 290, 300.0, members=3, n_folds=1, scale=1.0)
    late(Study([trial(0.9, 4.0)]), None)
    assert late.reserved == pytest.approx(12.0)
    study = Study([trial(0.9, 4.0)])
    late(study, None)
    assert study.stopped


def test_refit_false_uses_the_searchs_own_models_of_the_best_trials(tmp_path):
    X, y = _data()
    kw = dict(budget=60, space=SPACE, trials=3, verbose=0, validation=0.25, ensemble=2)
    result = deeprnn.tune(_est(), X, y, refit=False, **kw)
    assert result.refitted is False and len(result.ensemble.estimators_) == 2
    # the best member is the best trial's model: trained on the holdout's training part
    # only, it predicts as a fresh fit there with the same arguments does
    from deeprnn.tune.search import _folds

    part = _folds(_est(), X, y, 0.25)[0]
    fresh = SequenceClassifier(**{**_est().get_params(), **result.best_params, "verbose": 0})
    fresh.fit(part.X_train, part.y_train)
    np.testing.assert_allclose(result.best_estimator.predict_proba(X), fresh.predict_proba(X),
                               atol=1e-6)  # fmt: skip
    assert result.best_score == pytest.approx(fresh.score(part.X_val, part.y_val))
    # members share the training part (so its scaler): the ensemble exports as one graph
    path = result.ensemble.export(tmp_path / "ens.pt", "torchscript")
    graph = torch.jit.load(str(path))
    first = result.ensemble.estimators_[0]  # the graph reads the scaled inputs
    x = torch.as_tensor(np.stack(first._encode_inputs(X, fitting=False)))
    np.testing.assert_allclose(graph(x).detach().numpy(),
                               np.mean([m.predict_proba(X) for m in result.ensemble.estimators_],
                                       axis=0), atol=1e-5)  # fmt: skip


def test_refit_auto_refits_when_the_budget_allows_and_bad_refit_values():
    X, y = _data()
    result = deeprnn.tune(_est(), X, y, budget=60, space=SPACE, trials=2, verbose=0,
                          validation=0.25)  # fmt: skip
    assert result.refitted is True  # a fraction of a second each, well inside 60 s
    with pytest.raises(InputError, match="refit must be True, False or 'auto'"):
        deeprnn.tune(_est(), X, y, budget=5, refit="never")
    with pytest.raises(InputError, match="fewer trials finished than the 2 an ensemble needs"):
        deeprnn.tune(_est(), X, y, budget=60, space=SPACE, trials=1, verbose=0,
                     validation=0.25, ensemble=2, refit=False)  # fmt: skip


def test_refit_seconds_predicts_from_the_trials_own_times():
    from types import SimpleNamespace

    from deeprnn.tune.search import refit_seconds

    trials = [SimpleNamespace(user_attrs={"seconds": s}) for s in (6.0, 3.0)]
    assert refit_seconds(trials, n_folds=3, scale=1.5, members=1) == pytest.approx(3.0)
    assert refit_seconds(trials, 3, 1.5, members=2) == pytest.approx(4.5)
    assert refit_seconds(trials, 3, 1.5, members=3) == pytest.approx(7.5)  # a seed of the best
