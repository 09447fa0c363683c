"""The CLI's commands, one function each: `fn(args) -> exit code`."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from deeprnn import distributed, runs
from deeprnn.config import DataConfig, RunConfig
from deeprnn.data import list_datasets
from deeprnn.errors import InputError
from deeprnn.export import signature
from deeprnn.runs import inside
from deeprnn.tasks import Outcome, evaluate_task, predict_file
from deeprnn.tasks.registry import BASELINE_EVALUATORS

DEMO_CONFIG = {
    "task": "forecast",
    "data": {"dataset": "airline_passengers", "test_size": 24, "season": 12},
    "model": {
        "cell": "lstm",
        "num_layers": 3,
        "wiring": "skip",
        "hidden_size": 32,
        "lookback": 24,
        "horizon": 24,
        "log": True,
        "epochs": 150,
    },
}


def _table(outcome: Outcome) -> str:
    names = list(outcome.metrics)
    rows = {"deeprnn": outcome.metrics, **outcome.baselines}
    width = max(len(r) for r in rows) + 2
    lines = ["model".ljust(width) + "".join(n.rjust(14) for n in names)]
    for model, values in rows.items():
        cells = "".join(
            (f"{values[n]:14.4g}" if n in values else " " * 14) for n in names
        )  # fmt: skip
        lines.append(model.ljust(width) + cells)
    return "\n".join(lines)


def train(args) -> int:
    cfg = runs.load_config(args.config, args.overrides)
    if not distributed.launched():  # once, before any rank writes
        run_dir = Path(args.run_dir) if args.run_dir else runs.default_run_dir(cfg)
        try:
            runs.check_run_dir(run_dir, cfg, args.resume, args.force)
        except runs.RunFinished as done:
            print(f"deeprnn train: {done}", file=sys.stderr)
            return 0
    if args.nproc > 1 and not distributed.launched():  # the config is fine: start the ranks
        return distributed.relaunch(args.nproc, args.argv)
    with distributed.session():  # under torchrun: join the process group; else nothing
        main = distributed.is_main()
        verbose = 0 if args.quiet or not main else 1
        run_dir, _, outcome = runs.train(cfg, args.run_dir, args.resume, verbose=verbose)
    if main:
        print(_table(outcome))
        print(f"\nrun written to {run_dir} (report: {run_dir / 'report.md'})")
    return 0


def _data_arg(text: str, base: DataConfig) -> DataConfig:
    known = {d["name"] for d in list_datasets()}
    fields = {"test_size": base.test_size, "season": base.season, "column": base.column,
              "target": base.target, "encoding": base.encoding}  # fmt: skip
    if text in known:
        return DataConfig(dataset=text, **fields)
    if not Path(text).exists():
        raise InputError(f"--data {text!r} is neither a bundled dataset {sorted(known)} nor a file")
    return DataConfig(path=text, **fields)


def evaluate(args) -> int:
    """Score the run on its test part (baselines as train scored them) or on --data."""
    cfg, est = runs.load_run(args.run_dir)
    baselines, note = {}, ""
    if args.data:
        cfg = RunConfig(task=cfg.task, data=_data_arg(args.data, cfg.data), model=cfg.model)
        if cfg.task in BASELINE_EVALUATORS:
            baselines = BASELINE_EVALUATORS[cfg.task](cfg)
        else:
            note = f"(the {cfg.task} baselines are fitted models: `deeprnn train` scores them)"
    else:
        saved = Path(args.run_dir) / "metrics.json"
        baselines = json.loads(saved.read_text(encoding="utf-8")).get("baselines", {})
    metrics = evaluate_task(cfg, est)
    if args.json:
        print(json.dumps({"metrics": metrics, "baselines": baselines}, indent=2))
    else:
        print(_table(Outcome(metrics, baselines)) + (f"\n{note}" if note else ""))
    return 0


def predict(args) -> int:
    cfg, est = runs.load_run(args.run_dir)
    path = Path(args.input)
    if not path.exists():
        raise InputError(f"--input {path} does not exist")
    rows = predict_file(cfg, est, path, args.column, args.time_column)
    if args.output:
        with open(args.output, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(rows)
    else:
        csv.writer(sys.stdout).writerows(rows)
    return 0


def generate(args) -> int:
    cfg, est = runs.load_run(args.run_dir)
    if cfg.task != "char_lm":
        raise InputError(f"{args.run_dir} is a {cfg.task} run; generate needs a char_lm run")
    text = est.generate(args.prompt, args.n, args.temperature, args.top_k, random_state=args.seed,
                        include_prompt=args.include_prompt)  # fmt: skip
    print(text)
    return 0


def datasets(args) -> int:
    rows = list_datasets()
    width = max(len(r["name"]) for r in rows) + 2
    for r in rows:
        print(f"{r['name'].ljust(width)}{r['task']:<26}{r['size']}")
        print(f"{'':{width}}{r['description']}")
        print(f"{'':{width}}source: {r['source']}; licence: {r['licence']}\n")
    return 0


def demo(args) -> int:
    """Forecast airline passengers with a 3-layer skip-wired LSTM vs seasonal naive."""
    data = json.loads(json.dumps(DEMO_CONFIG))
    data["run_dir"] = args.run_dir
    if args.quick:
        data["model"]["epochs"] = 2
    cfg = runs.load_config(None, data=data)
    print("deeprnn demo: forecast the last 24 months of airline passengers (1949-1960)")
    print("model: 3-layer LSTM with skip-input wiring (every layer also reads x_t)\n")
    run_dir, est, outcome = runs.train(cfg, verbose=0 if args.quick else 1)
    body = est.model_.body
    print(body)
    print(f"parameters: {sum(p.numel() for p in est.model_.parameters()):,}")
    for row in body.explain():
        print(f"  layer {row['layer']} ({row['cell']}): {row['path']} - {row['reason']}")
    print("\ntest metrics (last 24 months), lower is better:")
    print(_table(outcome))
    print(f"\nplots and report in {run_dir}: " + ", ".join(p.name for p in outcome.plots))
    return 0


def export(args) -> int:
    """Write the run's network as ONNX or TorchScript and describe its inputs and output."""
    _, est = runs.load_run(args.run_dir)
    suffix = {"onnx": "model.onnx", "torchscript": "model.pt"}[args.format]
    path = Path(args.output) if args.output else Path(args.run_dir) / "export" / suffix
    est.export(path, args.format, lengths=args.lengths)
    meta = signature(est.model_, args.format, args.lengths)
    print(f"{args.format} written to {path}")
    for kind in ("inputs", "outputs"):
        for t in meta[kind]:
            optional = ", optional" if t.get("optional") else ""
            shape = ", ".join(map(str, t["shape"]))
            print(f"  {kind[:-1]} {t['name']}: ({shape}) {t['dtype']}{optional}")
    members = len(est._members())
    if members > 1:
        print(f"  one graph of {members} networks (the refit model and its fold models), "
              "outputs averaged")  # fmt: skip
    print("  inputs are the network's: the estimator's scaling / tokenisation is not included")
    return 0


def tune(args) -> int:
    """Search the config's model arguments for --budget; write the leaderboard and best.yaml."""
    from deeprnn.config_io import read_yaml
    from deeprnn.tune.config import tune_config

    cfg = runs.load_config(args.config, args.overrides)
    run_dir = Path(args.run_dir) if args.run_dir else inside(Path("runs"), f"tune_{cfg.task}")
    space = read_yaml(args.space) if args.space else None
    result, summary = tune_config(cfg, run_dir, args.budget, space, args.ensemble, args.resume,
                                  args.trials, verbose=0 if args.quiet else 1)  # fmt: skip
    print(f"best of {len(result.leaderboard)} trials: validation score "
          f"{result.best_score:.4g} with {result.best_params}")  # fmt: skip
    for name, metrics in summary["test"].items():
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        print(f"test ({name}): {shown}")
    print(f"\nsearch written to {run_dir} (leaderboard.csv, leaderboard.png); retrain the best "
          f"with: deeprnn train {run_dir / 'best.yaml'}")  # fmt: skip
    return 0
