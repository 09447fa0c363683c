"""`deeprnn train` in a subprocess, killed (SIGKILL) or interrupted (Ctrl-C, SIGINT) mid-run:
`--resume` reaches exactly the weights, metrics and history of an uninterrupted run."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from deeprnn.cli import main
from deeprnn.data import load_dataset

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

CONFIG = """\
task: sequence_classification
data:
  path: {data}
  test_size: 40
model:
  hidden_size: 8
  num_layers: 1
  epochs: 4
  batch_size: 4
  seed: 3
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    """A tiny run: 160 waveforms of 30 steps for training (36 batches an epoch), 40 for test."""
    tmp = tmp_path_factory.mktemp("proc")
    ds = load_dataset("waveforms", n_train=160, n_test=40)
    X = np.stack([x[:30] for x in ds.X_train + ds.X_test]).astype(np.float32)
    np.savez(tmp / "waves.npz", X=X, y=np.concatenate([ds.y_train, ds.y_test]))
    path = tmp / "run.yaml"
    path.write_text(CONFIG.format(data=tmp / "waves.npz"), encoding="utf-8")
    return path


def start(config: Path, run: Path, *extra: str) -> subprocess.Popen:
    # One thread: deterministic, and fast for tiny models on a shared machine.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    command = [sys.executable, "-m", "deeprnn", "train", str(config), "--run-dir", str(run),
               "--quiet", *extra]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def signal_at_first_checkpoint(targets: dict, timeout: float = 180) -> None:
    """Send each process its signal as soon as its run has a checkpoint directory (the
    first one: epoch 2 is then under way). targets: name -> (process, run dir, signal)."""
    pending, deadline = dict(targets), time.monotonic() + timeout
    while pending:
        for name, (proc, run, sig) in list(pending.items()):
            if any((run / "checkpoints").glob("ckpt-*")):
                proc.send_signal(sig)
                del pending[name]
            else:
                assert proc.poll() is None, f"{name} ended early: {proc.communicate()[1]}"
        assert time.monotonic() < deadline, f"no checkpoint appeared for {sorted(pending)}"
        time.sleep(0.005)


def outcome(run: Path) -> tuple[dict, dict, list[str]]:
    weights = load_file(run / "model" / "model.safetensors")
    metrics = json.loads((run / "metrics.json").read_text())
    lines = (run / "history.csv").read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name != "seconds"]
    history = [",".join(row.split(",")[i] for i in keep) for row in lines]
    return weights, metrics, history


def assert_same_run(a: Path, b: Path) -> None:
    (wa, ma, ha), (wb, mb, hb) = outcome(a), outcome(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert np.array_equal(wa[name].numpy(), wb[name].numpy()), name
    assert ma == mb
    assert ha == hb


def in_process(config: Path, run: Path, *extra: str) -> tuple[int, str]:
    """`deeprnn train` in this process: the same code, without the start-up of a new one."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["train", str(config), "--run-dir", str(run), "--quiet", *extra])
    return code, err.getvalue()


@pytest.fixture(scope="module")
def runs(config, tmp_path_factory) -> dict:
    """Two subprocesses side by side, one killed (SIGKILL) and one interrupted (SIGINT) as
    soon as its first checkpoint appears, i.e. during epoch 2; then, in this process, an
    uninterrupted run and the resumption of both."""
    tmp = tmp_path_factory.mktemp("runs")
    dirs = {name: tmp / name for name in ("straight", "killed", "interrupted")}
    signals = {"killed": signal.SIGKILL, "interrupted": signal.SIGINT}
    procs = {name: start(config, dirs[name]) for name in signals}
    signal_at_first_checkpoint({n: (procs[n], dirs[n], sig) for n, sig in signals.items()})
    seen = {}
    for name in signals:
        code, err = finish(procs[name])
        pointer = dirs[name] / "checkpoints" / "LATEST"
        latest = pointer.read_text().strip() if pointer.exists() else None
        finished = (dirs[name] / "model").exists()
        seen[name] = {"code": code, "err": err, "finished": finished, "latest": latest}
    seen["straight"] = in_process(config, dirs["straight"])
    for name in ("killed", "interrupted"):
        seen[name]["resumed"] = in_process(config, dirs[name], "--resume")
    return {"dirs": dirs, **seen}


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(runs):
    killed = runs["killed"]
    assert killed["code"] == -signal.SIGKILL and not killed["finished"]
    assert killed["resumed"][0] == 0, killed["resumed"][1]
    assert runs["straight"][0] == 0, runs["straight"][1]
    assert_same_run(runs["dirs"]["straight"], runs["dirs"]["killed"])
    history = (runs["dirs"]["killed"] / "history.csv").read_text().splitlines()
    # 160 sequences: 3-fold CV picks the epochs (of at most 4) before the refit is checkpointed;
    # the resumed run reads that choice back instead of running the folds again.
    record = json.loads((runs["dirs"]["killed"] / "checkpoints" / "validation.json").read_text())
    straight = runs["dirs"]["straight"] / "checkpoints" / "validation.json"
    assert record == json.loads(straight.read_text()) and 2 <= record["epochs"] <= 4
    assert len(history) == 1 + record["epochs"]
    assert "skipped_steps" in history[0] and "max_grad_norm" in history[0]


def test_ctrl_c_writes_a_checkpoint_and_exits_130(runs):
    run, seen = runs["dirs"]["interrupted"], runs["interrupted"]
    assert seen["code"] == 130, seen["err"]
    assert "Traceback" not in seen["err"] and not seen["finished"]
    assert "stopping after this batch and writing a checkpoint" in seen["err"]
    stopped = re.search(r"deeprnn train: interrupted: training stopped at epoch (\d+)", seen["err"])
    assert stopped, seen["err"]
    latest = seen["latest"]
    assert latest == f"ckpt-{int(stopped.group(1)):06d}"  # the checkpoint of the stop
    assert f"checkpoint {run / 'checkpoints' / latest} written" in seen["err"]
    assert seen["resumed"][0] == 0, seen["resumed"][1]
    assert (run / "model" / "model.safetensors").is_file()
