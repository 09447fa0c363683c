"""Forecasting against the baselines a user would pick instead (issue 13 §5).

deeprnn's `Forecaster(lookback=L, horizon=H, season=s)` with every other argument at its
default (so it chooses its transform, lookback and epochs: see the `defaults_` table),
next to naive, seasonal naive, drift and statsforecast's AutoETS / AutoARIMA / AutoTheta
(`season_length` = the set's season), all fitted and scored in the same run. One origin:
the last H steps of every series are held out, each model sees the rest. Per set: MASE
(in-sample seasonal naive scaling with the set's season, so < 1 beats it on the training
part) and sMAPE (0-200), each the mean over the set's series, and seconds (fit + predict
of every series of the set); a last row holds the means over the sets.

Sets (H: horizon, s: season of MASE, seasonal naive and statsforecast):

- airline: bundled airline_passengers, 144 monthly values 1949-1960; H 24, s 12.
- sunspots: bundled sunspots_monthly, 3,120 monthly values 1749-2008; H 24, s 1. The
  ~11-year solar cycle varies from 9 to 14 years, so a 132-month "season" is no season:
  MASE scales by the in-sample naive error, seasonal naive is naive, statsforecast fits
  non-seasonal models; the lookback reads two 132-month cycles.
- elnino (panel, statsmodels): sea surface temperature 1950-2010 as 12 series, one per
  calendar month, of 61 yearly values (January 1950, January 1951, ...): the 12 columns of
  the table are 12 related annual series, which is what a global model is for (one long
  monthly series would not be a panel); H 5 years, s 1.
- macrodata (panel, statsmodels): 9 quarterly US series 1959Q1-2009Q3 (realgdp, realcons,
  realinv, realgovt, realdpi, cpi, m1, unemp, pop; tbilrate, infl and realint are left out:
  they cross or touch 0, where sMAPE means nothing); H 8 quarters (2007Q4-2009Q3: the
  recession), s 4.
- co2 (statsmodels): Mauna Loa CO2, weekly 1958-2001, resampled to 526 monthly means (5
  empty months interpolated linearly); H 24, s 12.
- wineind (pmdarima): Australian wine sales, 176 monthly values 1980-1994; H 12, s 12.
- taylor (pmdarima): half-hourly electricity demand of England and Wales in 2000, the last
  4 weeks (1,344 of 4,032 values); H 48 (a day), s 48 (AutoETS drops seasons over 24).

Lookback rule: L = max(2 * cycle, H, 12), at most a third of the shortest training part;
cycle = the season, but 132 months for sunspots. L: airline 24, sunspots 264, elnino 12,
macrodata 12, co2 24, wineind 24, taylor 96. On a panel "deeprnn defaults" is ONE global
model fitted on every series (what `fit(list_of_series)` does) and "deeprnn per-series" a
separate default Forecaster per series.

Targets (checked from the numbers in the run, MASE): the default Forecaster beats seasonal
naive on every set; its mean MASE over the sets is within 5 % of the best mean of AutoETS /
AutoARIMA / AutoTheta; the global model beats per-series fitting on every panel.

    pip install -e ".[dev]" statsforecast statsmodels pmdarima   # benchmark-only extras
    OMP_NUM_THREADS=1 python benchmarks/forecast.py              # every set
    python benchmarks/forecast.py --sets airline elnino --seed 1
    python benchmarks/forecast.py --quick                        # seconds, tiny models

Sets whose package is missing, and statsforecast when it is missing, are skipped with a
note. statsforecast runs one core (n_jobs=1) after a warm-up fit outside the timings, each
model with its defaults but AutoARIMA's `approximation=None`: R's auto.arima rule (search
with approximate likelihoods when T > 150 or season > 12, then refit the chosen model
exactly). The class's default exact search ran over 12 minutes on taylor (season 48) and
moved MASE by at most 0.015 on the other sets when checked.
`--quick` runs 2 small sets (airline, and elnino, or sunspots without statsmodels) with
tiny deeprnn models (2 epochs, 8 units). Writes benchmarks/results/forecast.md and
forecast.json (quick: forecast_quick.*), rewritten after every set.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
SETS = ("airline", "sunspots", "elnino", "macrodata", "co2", "wineind", "taylor")
MACRO_COLUMNS = (
    "realgdp",
    "realcons",
    "realinv",
    "realgovt",
    "realdpi",
    "cpi",
    "m1",
    "unemp",
    "pop",
)
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
BASELINES = ("naive", "seasonal naive", "drift")
STATS = ("AutoETS", "AutoARIMA", "AutoTheta")
DEEPRNN, PER_SERIES = "deeprnn defaults", "deeprnn per-series"
MODELS = (*BASELINES, *STATS, DEEPRNN, PER_SERIES)


# --- data ------------------------------------------------------------------------------


def load(name: str) -> dict:
    """{"series": [1-D float arrays], "ids", "season", "horizon", "cycle", "panel"}."""
    if name in ("airline", "sunspots"):
        from deeprnn.data import load_dataset

        y = load_dataset("airline_passengers" if name == "airline" else "sunspots_monthly")
        series, ids = [np.asarray(y.series, np.float64)], [name]
        season, horizon, cycle = (12, 24, 12) if name == "airline" else (1, 24, 132)
    elif name == "elnino":
        import statsmodels.api as sm

        table = sm.datasets.elnino.load_pandas().data
        series, ids = [table[m].to_numpy(np.float64) for m in MONTHS], list(MONTHS)
        season, horizon, cycle = 1, 5, 1
    elif name == "macrodata":
        import statsmodels.api as sm

        table = sm.datasets.macrodata.load_pandas().data
        series, ids = [table[c].to_numpy(np.float64) for c in MACRO_COLUMNS], list(MACRO_COLUMNS)
        season, horizon, cycle = 4, 8, 4
    elif name == "co2":
        import statsmodels.api as sm

        weekly = sm.datasets.co2.load_pandas().data["co2"]
        monthly = weekly.resample("MS").mean().interpolate("linear")
        series, ids = [monthly.to_numpy(np.float64)], [name]
        season, horizon, cycle = 12, 24, 12
    elif name == "wineind":
        import pmdarima.datasets

        series, ids = [np.asarray(pmdarima.datasets.load_wineind(), np.float64)], [name]
        season, horizon, cycle = 12, 12, 12
    elif name == "taylor":
        import pmdarima.datasets

        y = np.asarray(pmdarima.datasets.load_taylor(), np.float64)
        series, ids = [y[-4 * 7 * 48 :]], [name]
        season, horizon, cycle = 48, 48, 48
    else:
        raise ValueError(f"unknown set {name!r}; choose from {', '.join(SETS)}")
    return {
        "series": series,
        "ids": ids,
        "season": season,
        "horizon": horizon,
        "cycle": cycle,
        "panel": len(series) > 1,
    }


def lookback_for(cycle: int, horizon: int, shortest_train: int) -> int:
    """The documented rule: max(2 * cycle, horizon, 12), at most a third of the shortest
    training part (so the default 10 % validation split still leaves windows)."""
    return max(1, min(max(2 * cycle, horizon, 12), shortest_train // 3))


def available(name: str) -> str | None:
    """None when the set's package imports, else why not."""
    module = {
        "elnino": "statsmodels",
        "macrodata": "statsmodels",
        "co2": "statsmodels",
        "wineind": "pmdarima",
        "taylor": "pmdarima",
    }.get(name)
    if module is None:
        return None
    try:
        __import__(module)
    except ImportError:
        return f"{module} is not installed (pip install {module})"
    return None


# --- baselines and metrics ---------------------------------------------------------------


def naive(y_train: np.ndarray, horizon: int) -> np.ndarray:
    """The last value, repeated."""
    return np.full(horizon, float(y_train[-1]))


def seasonal_naive(y_train: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Step h repeats the value one (or more) seasons before it: y[T - s + (h mod s)]."""
    y = np.asarray(y_train, np.float64)
    return y[len(y) - season + np.arange(horizon) % season]


def drift(y_train: np.ndarray, horizon: int) -> np.ndarray:
    """The last value plus h times the mean step of the training part (a line through the
    first and last values, extended)."""
    y = np.asarray(y_train, np.float64)
    slope = (y[-1] - y[0]) / (len(y) - 1) if len(y) > 1 else 0.0
    return y[-1] + slope * np.arange(1, horizon + 1)


def scores(y_train, y_true, y_pred, season: int) -> tuple[float, float]:
    """(MASE, sMAPE) of one series. MASE scales by the in-sample seasonal naive error
    (`deeprnn.forecast.metrics.mase`); where that scale is 0 (a constant, or perfectly
    seasonal, training part) a perfect forecast scores 0 and any other inf."""
    from deeprnn.forecast.metrics import mase, smape

    train = np.asarray(y_train, np.float64)
    if np.mean(np.abs(train[season:] - train[:-season])) > 0:
        m = mase(y_true, y_pred, train, season)
    else:
        m = 0.0 if np.allclose(y_true, y_pred, rtol=0, atol=1e-12) else math.inf
    return m, smape(y_true, y_pred)


# --- models ------------------------------------------------------------------------------


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def run_baselines(train: list[np.ndarray], h: int, s: int) -> dict:
    fns = {
        "naive": lambda y: naive(y, h),
        "seasonal naive": lambda y: seasonal_naive(y, h, s),
        "drift": lambda y: drift(y, h),
    }
    return {name: timed(lambda fn=fn: [fn(y) for y in train]) for name, fn in fns.items()}


def statsforecast_models(season: int) -> dict | None:
    """{name: a fresh model} or None when statsforecast is not installed."""
    try:
        from statsforecast.models import AutoARIMA, AutoETS, AutoTheta
    except ImportError:
        return None
    return {
        "AutoETS": AutoETS(season_length=season),
        "AutoARIMA": AutoARIMA(season_length=season, approximation=None),
        "AutoTheta": AutoTheta(season_length=season),
    }


def run_statsforecast(train: list[np.ndarray], h: int, s: int) -> dict:
    import pandas as pd
    from statsforecast import StatsForecast

    df = pd.DataFrame(
        {
            "unique_id": np.repeat(np.arange(len(train)), [len(y) for y in train]),
            "ds": np.concatenate([np.arange(len(y)) for y in train]),
            "y": np.concatenate(train),
        }
    )
    out = {}
    for name, model in statsforecast_models(s).items():

        def fit_predict(model=model, name=name):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                f = StatsForecast(models=[model], freq=1, n_jobs=1).forecast(df=df, h=h)
            return [
                f.loc[f["unique_id"] == i, name].to_numpy(np.float64) for i in range(len(train))
            ]

        try:
            out[name] = timed(fit_predict)
        except Exception as e:  # a baseline's failure is recorded, not fatal
            out[name] = repr(e)
    return out


def warm_up_statsforecast() -> None:
    """One fit of each model on a small series, so numba / first-call costs stay out."""
    t = np.arange(60, dtype=np.float64)
    run_statsforecast([10 + np.sin(2 * np.pi * t / 12) + 0.01 * t], 12, 12)


def run_deeprnn(train: list[np.ndarray], h: int, lookback: int, panel: bool, kwargs: dict,
                chosen: dict):  # fmt: skip
    """Forecasts (and seconds) of the default Forecaster; `chosen` collects what each
    fit's backtest selection chose (its defaults_)."""
    from deeprnn.estimators import Forecaster

    def record(key, est):
        chosen[key] = {k: v["value"] for k, v in est.defaults_.items()}

    def one(y, key=DEEPRNN):
        est = Forecaster(lookback=lookback, horizon=h, **kwargs).fit(y)
        record(key, est)  # per series: the last series' choice
        return est.predict()

    def global_model():
        est = Forecaster(lookback=lookback, horizon=h, **kwargs).fit(list(train))
        record(DEEPRNN, est)
        return list(np.asarray(est.predict(), np.float64))

    if not panel:
        return {DEEPRNN: timed(lambda: [np.asarray(one(train[0]), np.float64)])}
    return {
        DEEPRNN: timed(global_model),
        PER_SERIES: timed(lambda: [np.asarray(one(y, PER_SERIES), np.float64) for y in train]),
    }


def evaluate(name: str, args, tiny: dict) -> dict:
    data = load(name)
    h, s = data["horizon"], data["season"]
    train = [y[:-h] for y in data["series"]]
    test = [y[-h:] for y in data["series"]]
    lookback = lookback_for(data["cycle"], h, min(len(y) for y in train))
    row = {
        "kind": "panel" if data["panel"] else "series",
        "n_series": len(train),
        "ids": data["ids"],
        "length": sorted({len(y) for y in data["series"]}),
        "horizon": h,
        "season": s,
        "lookback": lookback,
        "models": {},
        "skipped": {},
    }
    forecasts = run_baselines(train, h, s)
    if args.statsforecast:
        forecasts.update(run_statsforecast(train, h, s))
    else:
        row["skipped"].update({m: args.statsforecast_note for m in STATS})
    kwargs = {"seed": args.seed, "season": s, **tiny}
    row["chosen"] = {}
    forecasts.update(run_deeprnn(train, h, lookback, data["panel"], kwargs, row["chosen"]))
    for model in MODELS:
        if model not in forecasts:
            continue
        if isinstance(forecasts[model], str):
            row["skipped"][model] = forecasts[model]
            continue
        preds, seconds = forecasts[model]
        pairs = [scores(tr, te, p, s) for tr, te, p in zip(train, test, preds)]
        row["models"][model] = {
            "mase": float(np.mean([p[0] for p in pairs])),
            "smape": float(np.mean([p[1] for p in pairs])),
            "seconds": seconds,
        }
    return row


# --- report ------------------------------------------------------------------------------


def means(results: dict) -> dict:
    """{model: {"mase", "smape", "seconds", "n_sets"}}: means over the sets it ran on."""
    out = {}
    for model in MODELS:
        rows = [r["models"][model] for r in results.values() if model in r["models"]]
        if rows:
            out[model] = {
                k: float(np.mean([r[k] for r in rows])) for k in ("mase", "smape", "seconds")
            }
            out[model]["n_sets"] = len(rows)
    return out


def targets(results: dict) -> list[dict]:
    """The three targets, each {"target", "met": True | False | None, "detail"}."""
    out = []
    sets = [n for n, r in results.items() if DEEPRNN in r["models"]]
    losing = [
        n
        for n in sets
        if results[n]["models"][DEEPRNN]["mase"]
        >= results[n]["models"].get("seasonal naive", {}).get("mase", math.inf)
    ]
    out.append(
        {
            "target": "the default Forecaster beats seasonal naive (MASE) on every set",
            "met": (not losing) if sets else None,
            "detail": f"missed on {', '.join(losing)}"
            if losing
            else f"{len(sets)} of {len(sets)} sets",
        }
    )
    full = [n for n in sets if all(m in results[n]["models"] for m in STATS)]
    if not full or len(full) < len(sets):
        out.append(
            {
                "target": "mean MASE within 5 % of the best of AutoETS / AutoARIMA / AutoTheta",
                "met": None,
                "detail": "not measured: statsforecast did not run on every set",
            }
        )
    else:
        ours = np.mean([results[n]["models"][DEEPRNN]["mase"] for n in full])
        best = {m: np.mean([results[n]["models"][m]["mase"] for n in full]) for m in STATS}
        name = min(best, key=best.get)
        oracle = np.mean([min(results[n]["models"][m]["mase"] for m in STATS) for n in full])
        out.append(
            {
                "target": "mean MASE within 5 % of the best of AutoETS / AutoARIMA / AutoTheta",
                "met": bool(ours <= 1.05 * best[name]),
                "detail": f"deeprnn {ours:.3f} vs {name} {best[name]:.3f} "
                f"(ratio {ours / best[name]:.3f}; vs the best of the three per set "
                f"{oracle:.3f}: {ours / oracle:.3f})",
            }
        )
    panels = [n for n in sets if PER_SERIES in results[n]["models"]]
    worse = [
        n
        for n in panels
        if results[n]["models"][DEEPRNN]["mase"] >= results[n]["models"][PER_SERIES]["mase"]
    ]
    detail = "; ".join(
        f"{n}: global {results[n]['models'][DEEPRNN]['mase']:.4f} vs per-series "
        f"{results[n]['models'][PER_SERIES]['mase']:.4f}"
        for n in panels
    )
    out.append(
        {
            "target": "the global model beats per-series fitting (MASE) on every panel",
            "met": (not worse) if panels else None,
            "detail": detail or "not measured: no panel in this run",
        }
    )
    return out


def table(results: dict, key: str, fmt: str) -> str:
    models = [m for m in MODELS if any(m in r["models"] for r in results.values())]
    lines = [
        "| set | series x length | H / season / L | " + " | ".join(models) + " |",
        "|---" * (len(models) + 3) + "|",
    ]
    for name, r in results.items():
        cells = [format(r["models"][m][key], fmt) if m in r["models"] else "" for m in models]
        lo, hi = r["length"][0], r["length"][-1]
        shape = f"{r['n_series']} x {lo if lo == hi else f'{lo}-{hi}'}"
        lines.append(
            f"| {name} | {shape} | {r['horizon']} / {r['season']} / {r['lookback']} | "
            + " | ".join(cells)
            + " |"
        )
    mean = means(results)

    def mean_cell(m: str) -> str:
        if m not in mean:
            return ""
        n = mean[m]["n_sets"]
        part = "" if n == len(results) else f" ({n} set{'s' if n > 1 else ''})"
        return format(mean[m][key], fmt) + part

    cells = [mean_cell(m) for m in models]
    lines.append("| mean over sets | | | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(results: dict) -> str:
    parts = [
        f"MASE (< 1: better than the in-sample seasonal naive):\n\n{table(results, 'mase', '.3f')}",
        f"sMAPE (%):\n\n{table(results, 'smape', '.2f')}",
        f"Seconds (fit + predict, every series of the set):\n\n{table(results, 'seconds', '.2f')}",
    ]
    lines = []
    for t in targets(results):
        verdict = {True: "met", False: "missed", None: "not measured"}[t["met"]]
        lines.append(f"- target: {t['target']}: **{verdict}** ({t['detail']})")
    parts.append("\n".join(lines))
    chosen = []
    for n, r in results.items():
        c = r.get("chosen", {}).get(DEEPRNN)
        if c:
            tr = ", ".join(f"{k}={c.get(k)}" for k in ("relative", "log", "difference"))
            lb = c.get("lookback", r["lookback"])
            chosen.append(f"| {n} | {tr} | {lb} | {c.get('epochs', '')} |")
    if chosen:
        parts.append("What the default Forecaster chose (its backtest selection, `defaults_`):\n\n"
                     "| set | transform | lookback | epochs |\n|---|---|---|---|\n"
                     + "\n".join(chosen))  # fmt: skip
    skipped = [f"- {n}: {m}: {why}" for n, r in results.items() for m, why in r["skipped"].items()]
    if skipped:
        parts.append("Skipped:\n\n" + "\n".join(skipped))
    return "\n\n".join(parts)


def write(args, results: dict, notes: list[str]) -> None:
    """forecast(.quick).md and .json of the sets done so far (rewritten after every set)."""
    stem = "forecast_quick" if args.quick else "forecast"
    machine = {
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "statsforecast": args.statsforecast_version,
    }
    header = (
        f"Forecasts of the last H steps of every series (one origin) on "
        f"{machine['processor'] or 'CPU'}, {machine['threads']} torch threads, torch "
        f"{machine['torch']}, statsforecast {machine['statsforecast'] or 'not installed'}"
        f"; seed {args.seed}; AutoARIMA with approximation=None (R's rule)"
        f"{'; QUICK mode: tiny deeprnn models' if args.quick else ''}."
        "\n\n"
    )
    md = report(results)
    if notes:
        md += "\n\nNot run:\n\n" + "\n".join(f"- {n}" for n in notes)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.md").write_text(header + md + "\n", encoding="utf-8")
    payload = {
        "machine": machine,
        "quick": args.quick,
        "seed": args.seed,
        "sets": results,
        "mean": means(results),
        "targets": targets(results),
        "not_run": notes,
    }
    (args.out / f"{stem}.json").write_text(
        json.dumps(payload, indent=1, default=str) + "\n", encoding="utf-8"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sets",
        nargs="+",
        choices=SETS,
        default=None,
        help="sets to run (default: all seven; --quick: two small ones)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="two small sets, tiny deeprnn models (2 epochs, 8 units): seconds",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every deeprnn model")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results",
        help="folder for forecast.md and forecast.json",
    )
    args = parser.parse_args(argv)
    if args.sets is None:
        args.sets = (
            ["airline", "elnino" if available("elnino") is None else "sunspots"]
            if args.quick
            else list(SETS)
        )
    tiny = {"epochs": 2, "hidden_size": 8} if args.quick else {}
    args.statsforecast = statsforecast_models(1) is not None
    args.statsforecast_version = None
    args.statsforecast_note = "statsforecast is not installed (pip install statsforecast)"
    if args.statsforecast:
        import statsforecast

        args.statsforecast_version = statsforecast.__version__
        warm_up_statsforecast()
    results, notes = {}, []
    for name in args.sets:
        why = available(name)
        if why is not None:
            notes.append(f"{name}: {why}")
            print(f"{name}: skipped, {why}", flush=True)
            continue
        print(f"{name}: running ...", flush=True)
        start = time.perf_counter()
        results[name] = evaluate(name, args, tiny)
        r = results[name]
        summary = ", ".join(f"{m} {v['mase']:.3f}" for m, v in r["models"].items())
        print(f"{name}: {time.perf_counter() - start:.1f} s; MASE {summary}", flush=True)
        write(args, results, notes)
    write(args, results, notes)
    stem = "forecast_quick" if args.quick else "forecast"
    print((args.out / f"{stem}.md").read_text(encoding="utf-8"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
