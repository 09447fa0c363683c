"""Automatic model selection: `deeprnn.tune(est, X, y, budget="5m", ensemble=5)`.

space.py        the documented search space; user restrictions / overrides
budget.py       "5m" / "90s" / seconds
objective.py    one trial: fit, per-epoch validation scores to the pruner
storage.py      Optuna (lazy import) and the resumable study in the run directory
leaderboard.py  the leaderboard as CSV and a plot
search.py       the search loop, the refits and the ensemble
config.py       `deeprnn tune CONFIG.yaml`: a train config searched, the best written back
"""

from deeprnn.tune.search import TuneResult, tune
from deeprnn.tune.space import SEARCH_SPACE, Range

__all__ = ["SEARCH_SPACE", "Range", "TuneResult", "tune"]
