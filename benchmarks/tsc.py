"""Time-series classification against the tools a user would pick instead (issue 12 §4).

On the two bundled sets and the development panel that ships inside the aeon wheel
(GunPoint, ItalyPowerDemand, OSULeaf, ACSF1; no download), in the same run: deeprnn's
`SequenceClassifier()` with its data-aware defaults, deeprnn tuned (`deeprnn.tune` under a
wall-clock budget, then an ensemble of the top 3 trials), aeon's MiniRocketClassifier,
1-NN DTW and 1-NN Euclidean. Test accuracy and seconds (fit + predict) per set.

    pip install -e ".[dev,tune]" aeon
    python benchmarks/tsc.py                                  # every set, tune budget 5 min
    python benchmarks/tsc.py --sets GunPoint --tune-budget 0  # no tuning

These sets are the ONLY ones the defaults were tuned on; other public sets are kept for
independent evaluation. Ragged sets (japanese_vowels) are padded with their last value
to the longest length for the aeon baselines (they need equal lengths); deeprnn reads
them as they are. Writes benchmarks/results/tsc.md and tsc.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
AEON_SETS = {"GunPoint": "load_gunpoint", "ItalyPowerDemand": "load_italy_power_demand",
             "OSULeaf": "load_osuleaf", "ACSF1": "load_acsf1"}  # fmt: skip
BUNDLED = ("japanese_vowels", "waveforms")


def load(name: str):
    """(X_train, y_train, X_test, y_test): lists of (T_i, F) float arrays and labels."""
    if name in BUNDLED:
        from deeprnn.data import load_dataset

        ds = load_dataset(name)
        return list(ds.X_train), np.asarray(ds.y_train), list(ds.X_test), np.asarray(ds.y_test)
    import aeon.datasets

    loader = getattr(aeon.datasets, AEON_SETS[name])
    out = []
    for split in ("train", "test"):
        X, y = loader(split=split)  # (N, channels, T)
        out += [[np.asarray(x, dtype=np.float64).T for x in X], np.asarray(y)]
    return tuple(out)


def padded(seqs: list[np.ndarray], t: int) -> np.ndarray:
    """(N, F, t) with each sequence continued by its last value (aeon's layout)."""
    return np.stack([np.pad(s, ((0, t - len(s)), (0, 0)), mode="edge").T for s in seqs])


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def run_deeprnn(data, budget: float, seed: int) -> dict[str, tuple[float, float]]:
    from deeprnn.estimators import SequenceClassifier

    X, y, X_test, y_test = data
    out = {}
    est, seconds = timed(lambda: SequenceClassifier(seed=seed).fit(X, y))
    out["deeprnn defaults"] = (est.score(X_test, y_test), seconds)
    out["_chosen"] = {k: v["value"] for k, v in est.defaults_.items()}
    if budget > 0:
        import deeprnn

        result, seconds = timed(
            lambda: deeprnn.tune(
                SequenceClassifier(seed=seed), X, y, budget=budget, ensemble=3, seed=seed, verbose=0
            )  # fmt: skip
        )
        out["deeprnn tuned (best)"] = (result.best_estimator.score(X_test, y_test), seconds)
        if result.ensemble is not None:
            out["deeprnn tuned + ensemble"] = (result.ensemble.score(X_test, y_test), seconds)
    return out


def run_aeon(data) -> dict[str, tuple[float, float]]:
    try:
        from aeon.classification.convolution_based import MiniRocketClassifier
        from aeon.classification.distance_based import KNeighborsTimeSeriesClassifier
    except ImportError:
        return {}
    X, y, X_test, y_test = data
    t = max(len(s) for s in [*X, *X_test])  # one length for both parts: aeon needs it
    A, A_test = padded(X, t), padded(X_test, t)
    models = {
        "MiniRocket": lambda: MiniRocketClassifier(random_state=0),
        "1-NN DTW": lambda: KNeighborsTimeSeriesClassifier(n_neighbors=1, distance="dtw"),
        "1-NN Euclidean": lambda: KNeighborsTimeSeriesClassifier(n_neighbors=1,
                                                                 distance="euclidean"),
    }  # fmt: skip
    out = {}
    for name, make in models.items():

        def fit_score(make=make):
            model = make().fit(A, y)
            return float(np.mean(model.predict(A_test) == y_test))

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[name] = timed(fit_score)
    return out


def table(results: dict) -> str:
    models = list(dict.fromkeys(m for r in results.values() for m in r if not m.startswith("_")))
    lines = ["| set | N train / test | length | " + " | ".join(models) + " |",
             "|---" * (len(models) + 3) + "|"]  # fmt: skip
    for name, r in results.items():
        cells = [f"{r[m][0]:.3f} ({r[m][1]:.0f} s)" if m in r else "" for m in models]
        lines.append(f"| {name} | {r['_n']} | {r['_length']} | " + " | ".join(cells) + " |")
    accs = {m: [r[m][0] for r in results.values() if m in r] for m in models}
    lines.append(
        "| mean accuracy | | | "
        + " | ".join(f"{np.mean(a):.3f}" if len(a) == len(results) else "" for a in accs.values())
        + " |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=[*BUNDLED, *AEON_SETS],
                        help="sets to run (default: all six)")  # fmt: skip
    parser.add_argument(
        "--tune-budget",
        type=float,
        default=300.0,
        help="seconds of search per set for 'tuned' (0: skip; default 300)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every deeprnn model")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results",
                        help="folder for tsc.md and tsc.json")  # fmt: skip
    args = parser.parse_args(argv)
    results = {}
    for name in args.sets:
        data = load(name)
        lengths = sorted({len(s) for s in data[0]})
        r = {
            "_n": f"{len(data[0])} / {len(data[2])}",
            "_length": str(lengths[0]) if len(lengths) == 1 else f"{lengths[0]}-{lengths[-1]}",
        }
        r.update(run_aeon(data))  # first: seconds, and a failure shows at once
        r.update(run_deeprnn(data, args.tune_budget, args.seed))
        results[name] = r
        print(name, {k: v for k, v in r.items() if not k.startswith("_n")}, flush=True)
        write(args, results)
    return 0


def write(args, results: dict) -> None:
    """tsc.md and tsc.json of the sets done so far (rewritten after every set)."""
    md = table(results)
    header = (f"Test accuracy (seconds: fit + predict) on {platform.processor() or 'CPU'}, "
              f"{torch.get_num_threads()} threads, torch {torch.__version__}; tune budget "
              f"{args.tune_budget:.0f} s per set.\n\n")  # fmt: skip
    print(md)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tsc.md").write_text(header + md + "\n", encoding="utf-8")
    (args.out / "tsc.json").write_text(json.dumps(results, indent=1, default=str) + "\n",
                                       encoding="utf-8")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
