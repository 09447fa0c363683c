"""Choosing a Forecaster's transform and lookback by a backtest, and seed ensembles
(issue 13 §3)."""

import numpy as np
import pytest

from deeprnn.errors import InputError
from deeprnn.estimators import Forecaster
from deeprnn.forecast.selection import (
    TRANSFORMS,
    ForecastEnsemble,
    seed_ensemble,
    select_forecaster,
    transform_args,
)

TINY = dict(hidden_size=8, num_layers=1, epochs=3, seed=0)
FIT_LENGTHS: list[int] = []


class RecordingForecaster(Forecaster):
    """A Forecaster that records how many steps every fit saw."""

    def fit(self, y, X=None):
        FIT_LENGTHS.append(len(y))
        return super().fit(y, X)


def growing(n=96, season=12):
    t = np.arange(n)
    return 50 * np.exp(t / 60) * (1 + 0.2 * np.sin(2 * np.pi * t / season))


def test_every_candidate_is_scored_and_the_refit_has_the_best_arguments():
    y = growing()
    sel = select_forecaster(Forecaster(12, 6, **TINY), y, lookbacks=[12, 24], season=12)
    assert len(sel.table) == len(TRANSFORMS) * 2
    assert set(sel.table["transform"]) == set(TRANSFORMS)
    best = sel.table.iloc[0]
    assert best["mase"] == sel.table["mase"].min()
    assert sel.chosen == {"transform": best["transform"], "lookback": int(best["lookback"])}
    est = sel.estimator
    assert est.lookback == sel.chosen["lookback"]
    args = transform_args(sel.chosen["transform"], 12)
    assert (est.relative, est.log, est.difference) == tuple(args.values())
    assert est.predict().shape == (6,)
    assert "| transform | lookback |" in sel.markdown()


def test_candidates_never_see_the_steps_they_are_scored_on():
    FIT_LENGTHS.clear()
    y = growing(80)
    select_forecaster(RecordingForecaster(12, 4, **TINY), y, lookbacks=[12],
                      transforms=["none", "relative"], origins=3)  # fmt: skip
    # one fit per candidate at the first origin (80 - 3 x 4 steps), then the refit on all
    assert FIT_LENGTHS == [68, 68, 80]


def test_log_transforms_are_skipped_for_series_that_are_not_positive():
    y = np.sin(np.arange(60) / 3)
    sel = select_forecaster(Forecaster(8, 4, **TINY), y, lookbacks=[8], origins=1)
    logs = sel.table[sel.table["transform"].str.startswith("log")]
    assert len(logs) == 2 and logs["note"].str.contains("not all positive").all()
    assert not sel.chosen["transform"].startswith("log")


def test_log_transforms_are_skipped_for_likelihood_heads_which_ignore_log():
    est = Forecaster(8, 4, likelihood="gaussian", **TINY)
    sel = select_forecaster(est, growing(60), lookbacks=[8], transforms=["log", "relative"],
                            origins=1)  # fmt: skip
    log = sel.table[sel.table["transform"] == "log"].iloc[0]
    assert "likelihood" in log["note"] and sel.chosen["transform"] == "relative"


def test_seed_ensemble_averages_members_of_distinct_seeds():
    y = growing(60)
    ens = seed_ensemble(Forecaster(8, 4, **TINY), 3)
    assert [m.seed for m in ens.members] == [0, 1, 2]
    ens.fit(y)
    members = np.stack([m.predict() for m in ens.members])
    assert np.allclose(ens.predict(), members.mean(axis=0))
    assert not np.allclose(members[0], members[1])  # the seeds differ in fact
    sel = select_forecaster(Forecaster(8, 4, **TINY), y, lookbacks=[8], transforms=["relative"],
                            origins=1, seeds=2)  # fmt: skip
    assert isinstance(sel.estimator, ForecastEnsemble) and len(sel.estimator.members) == 2


def test_bad_input_gets_a_clear_error():
    y = growing(40)
    with pytest.raises(InputError, match="expected some of"):
        select_forecaster(Forecaster(8, 4, **TINY), y, transforms=["boxcox"])
    with pytest.raises(InputError, match="needs at least"):
        select_forecaster(Forecaster(8, 4, **TINY), y, lookbacks=[36], origins=2)
    with pytest.raises(InputError, match="every candidate was skipped"):
        select_forecaster(Forecaster(8, 4, **TINY), -y, transforms=["log"])
    with pytest.raises(InputError, match="seeds"):
        seed_ensemble(Forecaster(8, 4, **TINY), 0)
    with pytest.raises(InputError, match="at least one member"):
        ForecastEnsemble([]).fit(y)
