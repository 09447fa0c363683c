"""Run directories: what `deeprnn train` writes and what evaluate / predict / generate read.

RUN_DIR/
  config.yaml      the resolved config (defaults filled in, overrides applied)
  model/           the fitted estimator (safetensors weights + JSON, no pickle)
  checkpoints/     training checkpoints (resume from here)
  history.csv      every metric of every epoch
  metrics.json     test metrics of the model and of the baselines
  plots/*.png      training curves and the task's pictures
  report.md        a short report with the final figures (report.html: the same, for a browser)
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from deeprnn import distributed, plots, report_html
from deeprnn.config import TASK_DATA_KEYS, DataConfig, RunConfig
from deeprnn.config_io import (
    ConfigError,
    apply_overrides,
    from_dict,
    read_yaml,
    to_dict,
    write_yaml,
)
from deeprnn.diagnostics import GradientFlowRecorder
from deeprnn.errors import DeepRNNError, InputError
from deeprnn.estimators import RNNEstimator
from deeprnn.tasks import Outcome, run_task
from deeprnn.train.checkpoint import atomic_write
from deeprnn.train.loop import extra_callbacks


def load_config(path: str | Path | None, overrides: list[str] = (), data: dict | None = None):
    """A RunConfig from a YAML file (or a dict), with `key=value` overrides applied.

    A relative `data.path` in the file is read from the file's folder (overrides given on
    the command line stay relative to the working directory).
    """
    raw = read_yaml(path) if path is not None else {} if data is None else data
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping of keys to values, got {type(raw).__name__}")
    section = raw.get("data")
    if path is not None and isinstance(section, dict) and isinstance(section.get("path"), str):
        where = Path(path).absolute().parent / section["path"]  # unchanged when absolute
        raw = {**raw, "data": {**section, "path": os.path.normpath(where)}}
    return check_run_config(from_dict(RunConfig, apply_overrides(dict(raw), list(overrides))))


def resolved(cfg: RunConfig) -> dict:
    """The config as config.yaml records it: every key the task reads, defaults filled in;
    keys of other tasks (a forecast's `season` in a char_lm run) only where they were set."""
    out = to_dict(cfg)
    blank = DataConfig(dataset="-")
    keep = TASK_DATA_KEYS.get(cfg.task, out["data"])  # a task not listed keeps every key
    out["data"] = {k: v for k, v in out["data"].items()
                   if k in keep or v != to_dict(getattr(blank, k))}  # fmt: skip
    if cfg.task not in ("char_lm", "translation") and cfg.samples == RunConfig.samples:
        del out["samples"]
    return out


# What a run directory holds; `deeprnn train --force` removes these (and nothing else).
RUN_FILES = ("config.yaml", "model", "checkpoints", "history.csv", "metrics.json", "plots",
             "report.md", "report.html", "forecasts.csv", "backtest.csv")  # fmt: skip


class RunFinished(DeepRNNError):
    """`train --resume` of a run that has nothing left to train."""


def check_run_dir(run_dir: Path, cfg: RunConfig, resume: bool, force: bool) -> None:
    """Refuse to overwrite a run silently: an existing run needs --resume or --force.

    --resume of a finished run (its metrics written, the same config) raises RunFinished;
    --force removes the old run's files first.
    """
    old = run_dir / "config.yaml"
    if force:
        for name in RUN_FILES:
            target = run_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        return
    finished = (run_dir / "metrics.json").is_file()
    started = finished or (run_dir / "checkpoints" / "LATEST").is_file()
    if not old.is_file() or not started:  # nothing trained there yet (e.g. a bad config)
        return
    if not resume:
        what = "metrics.json" if finished else "checkpoints"
        raise InputError(
            f"{run_dir} already holds a run (config.yaml, {what}); pass --force to replace "
            "it, --resume to continue it, or --run-dir NEW_DIR to keep both"
        )
    if finished and read_yaml(old) == resolved(cfg):
        history = run_dir / "history.csv"
        epochs = max(0, len(history.read_text(encoding="utf-8").splitlines()) - 1)
        raise RunFinished(
            f"{run_dir} already finished ({epochs} epochs trained, metrics.json written); "
            "nothing to resume. To train on, raise the epochs (--resume --set "
            "model.epochs=N); to start again, pass --force"
        )


# Estimator arguments that `train` sets itself: a config may not point them elsewhere.
RESERVED_MODEL_KEYS = {
    "checkpoint_dir": "checkpoints always go to RUN_DIR/checkpoints (set the run with --run-dir)",
    "resume": "use `deeprnn train --resume`",
    "verbose": "use `deeprnn train --quiet`",
}


def check_run_config(cfg: RunConfig) -> RunConfig:
    """Raise ConfigError (naming the key) for values the dataclasses' types let through."""
    data = cfg.data
    if cfg.samples < 0:
        raise ConfigError(f"samples: expected an int >= 0, got {cfg.samples}")
    if cfg.gradient_flow_every < 0:
        raise ConfigError(
            f"gradient_flow_every: expected an int >= 0 (0: off), got {cfg.gradient_flow_every}"
        )
    if not math.isfinite(data.test_size):
        raise ConfigError(f"data.test_size: expected a finite number > 0, got {data.test_size}")
    if data.season < 1:
        raise ConfigError(
            f"data.season: expected an int >= 1 (steps per season), got {data.season}"
        )
    try:
        codecs.lookup(data.encoding)
    except LookupError:
        raise ConfigError(
            f"data.encoding: unknown text encoding {data.encoding!r}; e.g. 'utf-8', 'latin-1', "
            "'cp1252'"
        ) from None
    for key, hint in RESERVED_MODEL_KEYS.items():
        if key in cfg.model:
            raise ConfigError(f"model.{key}: set by deeprnn train, not by the config; {hint}")
    return cfg


def inside(root: Path, *names: str) -> Path:
    """`root / name / ...` for plain file names only: no separators, no "..", not absolute,
    so a name built from a config value cannot write outside `root`."""
    for name in names:
        name = str(name)
        bad = not name or name in (".", "..") or any(c in name for c in "/\\\0")
        if bad or Path(name).is_absolute():
            raise InputError(f"{name!r} is not a plain file name inside {root}")
    return root.joinpath(*names)


def _relative(path: Path, run_dir: Path) -> str:
    """`path` relative to `run_dir`; raises if it lies outside (a task wrote elsewhere)."""
    try:
        rel = Path(path).resolve().relative_to(Path(run_dir).resolve())
    except ValueError:
        raise InputError(f"{path} lies outside the run directory {run_dir}") from None
    return rel.as_posix()


def default_run_dir(cfg: RunConfig) -> Path:
    return Path(cfg.run_dir) if cfg.run_dir else inside(Path("runs"), cfg.task)


def train(cfg: RunConfig, run_dir: Path | None = None, resume: bool = False, verbose: int = 1):
    """Fit, score and report one run; returns (run_dir, estimator, outcome).

    In a data-parallel run (`deeprnn.distributed`) every rank trains and scores, but rank 0
    alone writes the run directory: the others draw the task's pictures into a temporary
    directory that is then removed.
    """
    run_dir = Path(run_dir) if run_dir else default_run_dir(cfg)
    fixed = {"verbose": verbose, "checkpoint_dir": str(run_dir / "checkpoints"), "resume": resume}
    if not distributed.is_main():
        with tempfile.TemporaryDirectory(prefix="deeprnn-rank-") as scratch:
            est, outcome = run_task(cfg, Path(scratch), fixed)
        return run_dir, est, outcome
    _writable(run_dir)
    write_yaml(resolved(cfg), run_dir / "config.yaml")
    recorders = []
    if cfg.gradient_flow_every > 0:
        recorders.append(GradientFlowRecorder(cfg.gradient_flow_every, run_dir / "plots"))
    with extra_callbacks(*recorders):
        est, outcome = run_task(cfg, run_dir, fixed)
    for recorder in recorders:
        outcome.notes.extend(gradient_flow_notes(recorder, run_dir))
    est.save(run_dir / "model")
    history = est.history_.to_dict() if getattr(est, "history_", None) is not None else {}
    _write_history(history, run_dir / "history.csv")
    if history.get("train_loss"):
        outcome.plots.insert(0, plots.training_curves(history, run_dir / "plots" / "training.png"))
    summary = {"task": cfg.task, "metrics": outcome.metrics, "baselines": outcome.baselines}
    # Written like checkpoints (temp file, fsync, rename): a crash leaves old or new, never half.
    atomic_write(run_dir / "metrics.json", json.dumps(summary, indent=2).encode("utf-8"))
    stop = getattr(getattr(est, "history_", None), "stop", None)
    text = report(cfg, outcome, run_dir, history, stop, describe_model(est))
    atomic_write(run_dir / "report.md", text.encode("utf-8"))
    page = report_html.to_html(text, f"deeprnn run: {cfg.task}")
    atomic_write(run_dir / "report.html", page.encode("utf-8"))
    return run_dir, est, outcome


def gradient_flow_notes(recorder: GradientFlowRecorder, run_dir: Path) -> list[str]:
    """Report lines: per recorded epoch, whether each layer's gradient vanishes or explodes."""
    lines = ["## Gradient flow", "",
             "||dL/dh_t|| at the first step over the last one, per layer and direction "
             "(< 1e-3 vanishing, > 1e3 exploding):", ""]  # fmt: skip
    for epoch, verdict, path in recorder.records:
        cells = ", ".join(f"{row}: {word} ({ratio:.1e})" for row, (word, ratio) in verdict.items())
        lines += [
            f"- epoch {epoch}: {cells} ([plot]({Path(path).relative_to(run_dir).as_posix()}))"
        ]
    return lines + [""]


def _writable(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise InputError(f"cannot write the run directory {run_dir}: {err.strerror}") from err


def _write_history(history: dict[str, list], path: Path) -> None:
    keys = list(history)
    n = max((len(v) for v in history.values()), default=0)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(keys)
    for i in range(n):
        writer.writerow(["" if history[k][i] is None else history[k][i] for k in keys])
    atomic_write(path, text.getvalue().encode("utf-8"))


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def describe_model(est) -> list[str]:
    """Report lines: the network as the console prints it, its size, the kernel per layer."""
    model = getattr(est, "model_", None)
    if model is None:
        return []
    lines = ["## Model", "", "```", str(model), "```", "",
             f"Parameters: {sum(p.numel() for p in model.parameters()):,}", ""]  # fmt: skip
    if hasattr(model, "explain"):
        lines += [
            "Which code runs each part (`net.explain()`):",
            "",
            model.explain().markdown(),
            "",
        ]
    chosen = getattr(est, "defaults_", None)
    if chosen:
        lines += ["## Defaults chosen from the data", "",
                  "Arguments left to the data (`est.defaults_`) and why each got its value:", "",
                  chosen.markdown(), ""]  # fmt: skip
    table = getattr(est, "selection_", None)
    if table is not None:  # the Forecaster's backtest of its transforms and lookbacks
        from deeprnn.forecast.selection import table_markdown

        lines += ["## Transform and lookback selection", "",
                  "Candidates backtested on the end of the training data, best first:", "",
                  table_markdown(table), ""]  # fmt: skip
    return lines


def report(cfg: RunConfig, outcome: Outcome, run_dir: Path, history: dict,
           stop: dict | None = None, model_lines: list[str] = ()) -> str:  # fmt: skip
    """The Markdown report: task, data, how training ended, model vs baselines table,
    pictures, the model's description, notes."""
    source = cfg.data.dataset or cfg.data.path
    names = list(outcome.metrics)
    lines = [f"# deeprnn run: {cfg.task}", "", f"Data: `{source}`", ""]
    if history.get("train_loss"):
        lines += [f"Epochs trained: {len(history['train_loss'])}", ""]
    if stop is not None:
        lines += [f"Training: {stop['message']}.", ""]
    lines += ["| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    rows = {"deeprnn": outcome.metrics, **outcome.baselines}
    for model, values in rows.items():
        lines.append(f"| {model} | " + " | ".join(_fmt(values.get(k, "")) for k in names) + " |")
    lines.append("")
    for picture in outcome.plots:
        lines += [f"![{picture.stem}]({_relative(picture, run_dir)})", ""]
    return "\n".join(lines + list(model_lines) + outcome.notes) + "\n"


def load_run(run_dir: str | Path) -> tuple[RunConfig, RNNEstimator]:
    """The config and fitted estimator of a finished run."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "model").is_dir():
        raise InputError(
            f"{run_dir} is not a finished run directory (it needs config.yaml and model/); "
            "train one with `deeprnn train CONFIG.yaml`"
        )
    cfg = check_run_config(from_dict(RunConfig, read_yaml(run_dir / "config.yaml")))
    return cfg, RNNEstimator.load(run_dir / "model")
