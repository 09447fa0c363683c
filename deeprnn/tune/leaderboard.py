"""The leaderboard of a search: one row per trial, best first; as CSV and as a picture."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from deeprnn import plots  # noqa: F401  (selects the Agg backend before pyplot)
from deeprnn.train.checkpoint import atomic_write
from deeprnn.tune.space import decode


def _last_value(trial) -> float | None:
    values = trial.intermediate_values
    return values[max(values)] if values else None


def rows(study, space: dict) -> list[dict]:
    """Finished trials first by score (best first), then pruned ones by their last
    per-epoch score, then failed ones; each row: rank, trial, state, score, epochs,
    seconds, pruned (by "pruner" or "budget") and the trial's arguments."""
    out = []
    for t in study.get_trials(deepcopy=False):
        state = t.state.name.lower()
        if state in ("running", "waiting"):
            continue
        score = t.value if state == "complete" else _last_value(t)
        try:
            params = decode(space, t.params)
        except KeyError:  # failed before every argument was drawn
            params = dict(t.params)
        out.append({
            "trial": t.number, "state": state,
            "score": None if score is None or not math.isfinite(score) else float(score),
            "epochs": t.user_attrs.get("epochs"), "seconds": t.user_attrs.get("seconds"),
            "pruned": t.user_attrs.get("pruned"), **params,
        })  # fmt: skip
    order = {"complete": 0, "pruned": 1, "fail": 2}
    out.sort(key=lambda r: (order.get(r["state"], 3), -(r["score"] or -math.inf), r["trial"]))
    for rank, r in enumerate(out, 1):
        r["rank"] = rank
    return [{"rank": r.pop("rank"), **r} for r in out]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def write_csv(board: list[dict], path: Path) -> Path:
    keys: dict[str, None] = {}
    for r in board:
        keys.update(dict.fromkeys(r))
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(list(keys))
    for r in board:
        writer.writerow([_cell(r.get(k)) for k in keys])
    atomic_write(path, text.getvalue().encode("utf-8"))
    return path


def plot(board: list[dict], path: Path, metric: str = "score") -> Path:
    """Validation score of each trial against its number (pruned trials at their last epoch),
    and the best score so far as a step line."""
    import matplotlib.pyplot as plt

    by_trial = sorted(board, key=lambda r: r["trial"])
    fig, ax = plt.subplots(figsize=(7, 4))
    for state, marker, label in (("complete", "o", "finished"), ("pruned", "x", "pruned")):
        pts = [
            (r["trial"], r["score"])
            for r in by_trial
            if r["state"] == state and r["score"] is not None
        ]
        if pts:
            ax.scatter(*zip(*pts), marker=marker, label=label, alpha=0.8)
    best, xs, ys = -math.inf, [], []
    for r in by_trial:
        if r["state"] == "complete" and r["score"] is not None:
            best = max(best, r["score"])
        if best > -math.inf:
            xs.append(r["trial"])
            ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="black", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title("deeprnn tune")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return plots._save(fig, path)
