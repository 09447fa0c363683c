"""Accuracy on the bundled datasets: `deeprnn train` with the documented configs, next to
the baselines each run computes and, for forecasts, classical models (ETS, seasonal ARIMA)
when statsmodels is installed (it is not a dependency: `pip install statsmodels`).

    python benchmarks/accuracy.py                      # every config in examples/configs
    python benchmarks/accuracy.py examples/configs/forecast_airline.yaml --out results/

Prints one table per config and writes benchmarks/results/accuracy.md and .json.
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

ROOT = Path(__file__).resolve().parent.parent


def classical_forecasts(cfg) -> dict[str, dict[str, float]]:
    """ETS (additive trend, multiplicative season) and SARIMA(0,1,1)(0,1,1)s on log y; for
    seasons longer than two years (sunspots' 132 months), where a seasonal state space model
    takes hours, an autoregression with its order chosen by AIC (up to 3 years of lags)."""
    try:
        from statsmodels.tsa.ar_model import AutoReg, ar_select_order
        from statsmodels.tsa.holtwinters import ExponentialSmoothing
        from statsmodels.tsa.statespace.sarimax import SARIMAX
    except ImportError:
        return {}
    from deeprnn.tasks.common import test_count
    from deeprnn.tasks.forecast import load_series, scores

    y = load_series(cfg)
    n = test_count(cfg.data, len(y))
    train, test = y[:-n], y[-n:]
    season = cfg.data.season
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if season > 24:
            lags = ar_select_order(train, maxlag=36, ic="aic").ar_lags
            ar = AutoReg(train, lags=lags).fit()
            out[f"autoreg_{len(lags or [])}_lags"] = scores(test, ar.forecast(n))
            return out
        positive = bool((train > 0).all())
        ets = ExponentialSmoothing(train, trend="add", seasonal="mul" if positive else "add",
                                   seasonal_periods=season).fit()  # fmt: skip
        out["ets"] = scores(test, ets.forecast(n))
        z = np.log(train) if positive else train
        sarima = SARIMAX(z, order=(0, 1, 1), seasonal_order=(0, 1, 1, season)).fit(disp=False)
        f = sarima.forecast(n)
        out["sarima_airline_model"] = scores(test, np.exp(f) if positive else f)
    return out


def table(name: str, rows: dict[str, dict[str, float]]) -> str:
    metrics = list(next(iter(rows.values())))
    lines = [f"### {name}", "", "| model | " + " | ".join(metrics) + " |",
             "|---" * (len(metrics) + 1) + "|"]  # fmt: skip
    for model, values in rows.items():
        cells = [f"{values[m]:.4g}" if m in values else "" for m in metrics]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="*", help="YAML configs (default: examples/configs/*)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--runs", default="/tmp/deeprnn-accuracy", help="run directories")
    args = parser.parse_args(argv)
    import torch

    from deeprnn import runs

    configs = [Path(c) for c in args.configs] or sorted((ROOT / "examples/configs").glob("*.yaml"))
    results, sections = {}, []
    for path in configs:
        cfg = runs.load_config(path)
        start = time.perf_counter()
        _, _, outcome = runs.train(cfg, Path(args.runs) / path.stem, verbose=0)
        seconds = time.perf_counter() - start
        rows = {"deeprnn": outcome.metrics, **outcome.baselines}
        full = path.resolve()
        rel = full.relative_to(ROOT) if full.is_relative_to(ROOT) else path
        if cfg.task == "forecast":
            rows.update(classical_forecasts(cfg))
        results[path.stem] = {"task": cfg.task, "seconds": seconds, "rows": rows,
                              "command": f"deeprnn train {rel}"}  # fmt: skip
        section = table(f"{path.stem} ({cfg.task}, {seconds:.0f} s)", rows)
        section += f"\n\nReproduce: `deeprnn train {rel}`\n"
        sections.append(section)
        print(section, flush=True)
    header = (f"# Accuracy on bundled data\n\nMachine: {platform.machine()}, "
              f"{platform.processor() or 'cpu'}, torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads, Python {sys.version.split()[0]}\n")  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy.md").write_text(header + "\n" + "\n".join(sections), encoding="utf-8")
    (out / "accuracy.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
