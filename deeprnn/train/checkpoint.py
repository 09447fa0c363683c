"""Checkpoints: safetensors for every tensor, JSON for the rest; never pickle.

Layout of a run directory:
    LATEST                  the name of the newest complete checkpoint directory
    ckpt-000004/
        model.safetensors   the model's weights (state_dict)
        best.safetensors    the best weights so far (only when they are tracked)
        state.safetensors   the tensors of the optimizer state and the torch RNG state
        trainer.json        format tag, sha256 of each .safetensors file, parameter shapes,
                            trainer state (epoch, step, history, ...), optimizer / schedule
                            structure, numpy and python RNG states
Every file is written to a temporary name, flushed, fsync'ed and renamed (`os.replace`); a
checkpoint is built in a fresh directory, and only then published by atomically replacing
LATEST. A crash at any moment therefore leaves LATEST naming a complete checkpoint. Once a
new checkpoint is published the older ones are pruned down to the `keep` newest; a write
that fails (a full disk, a read-only directory) raises CheckpointError and leaves LATEST
and the checkpoints before it as they were.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn

from deeprnn.errors import DeepRNNError

FORMAT = "deeprnn-checkpoint"
VERSION = 1
LATEST = "LATEST"
TRAINER = "trainer.json"


class CheckpointError(DeepRNNError):
    """A checkpoint is missing, corrupt, truncated, or belongs to another model."""


class CheckpointWriteError(CheckpointError, OSError):
    """A checkpoint could not be written (full disk, read-only directory); the ones before
    it are intact."""


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private to the owner
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms (Windows) cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def encode(obj: Any, tensors: dict[str, Tensor], key: str) -> Any:
    """A JSON-able copy of `obj`; its tensors move to `tensors` under keys starting `key`."""
    if isinstance(obj, Tensor):
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v, tensors, f"{key}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode(v, tensors, f"{key}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        # JSON keys are strings: keep other keys (optimizer state uses ints) as pairs.
        items = [[k, encode(v, tensors, f"{key}.{k}")] for k, v in obj.items()]
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return dict(items)
        return {"__items__": items}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise CheckpointError(f"cannot store a {type(obj).__name__} in a checkpoint: {obj!r}")


def decode(obj: Any, tensors: dict[str, Tensor]) -> Any:
    """Invert `encode`."""
    if isinstance(obj, list):
        return [decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
    if "__tuple__" in obj:
        return tuple(decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {k: decode(v, tensors) for k, v in obj["__items__"]}
    return {k: decode(v, tensors) for k, v in obj.items()}


def read_meta(path: Path, kind: str, fmt: str, version: int) -> dict:
    """The JSON metadata at `path` (a checkpoint's trainer state, a saved estimator's
    description), checked to be a deeprnn `kind` file of format `fmt` and `version`.

    Raises CheckpointError naming the file when it is unreadable, foreign or of another
    version; `json` builds plain data only, so reading never runs code.
    """
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise CheckpointError(f"{path}: unreadable {kind} file ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise CheckpointError(f"{path}: not a deeprnn {kind} file (no format {fmt!r})")
    if meta.get("version") != version:
        raise CheckpointError(
            f"{path}: {kind} format version {meta.get('version')!r}, this deeprnn reads "
            f"version {version}"
        )
    return meta


def rng_state() -> dict:
    """The python, numpy and torch (CPU) random generator states."""
    return {"python": random.getstate(), "numpy": np.random.get_state(),
            "torch": torch.get_rng_state()}  # fmt: skip


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def _weights(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def _check_weights(path: Path, weights: dict[str, Tensor], model: nn.Module) -> None:
    """Raise unless `weights` has exactly the model's names and shapes."""
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in weights.items()}
    missing, extra = sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys())
    shapes = [f"{k}: {got[k]} vs {want[k]}" for k in sorted(want.keys() & got.keys())
              if got[k] != want[k]]  # fmt: skip
    if missing or extra or shapes:
        raise CheckpointError(
            f"{path}: weights of a different model (missing {missing[:5]}, unexpected "
            f"{extra[:5]}, shape mismatches {shapes[:5]})"
        )


def _read_tensors(path: Path, sha256: str | None = None) -> dict[str, Tensor]:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read the file ({err.strerror})") from err
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise CheckpointError(f"{path}: sha256 checksum mismatch; the file is corrupt or truncated")
    try:
        return st_load(data)
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as err:
        raise CheckpointError(f"{path}: not a valid safetensors file ({err})") from err


def save_weights(path: str | os.PathLike, model: nn.Module) -> str:
    """Write the model's weights to one safetensors file (atomically); return its sha256."""
    data = st_save(_weights(model))
    atomic_write(Path(path), data)
    return hashlib.sha256(data).hexdigest()


def load_weights(path: str | os.PathLike, model: nn.Module, sha256: str | None = None) -> None:
    """Load weights written by `save_weights` into `model` (names and shapes must match)."""
    weights = _read_tensors(Path(path), sha256)
    _check_weights(Path(path), weights, model)
    model.load_state_dict(weights)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The directory LATEST names, or None when `run_dir` holds no checkpoint."""
    pointer = Path(run_dir) / LATEST
    if not pointer.exists():
        return None
    name = pointer.read_text(encoding="utf-8", errors="replace").strip()
    path = Path(run_dir) / name
    if not name or "/" in name or "\\" in name or name in (".", "..") or not path.is_dir():
        raise CheckpointError(f"{pointer}: names no checkpoint directory ({name[:80]!r})")
    return path


def save_checkpoint(
    run_dir: str | os.PathLike,
    model: nn.Module,
    trainer: dict | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    schedule: Any = None,
    best_weights: dict[str, Tensor] | None = None,
    keep: int = 1,
) -> Path:
    """Write a complete checkpoint into `run_dir` and publish it; return its directory.

    `trainer` is any JSON-able dict (tensors allowed); `schedule` anything with
    `state_dict()`. Once the new checkpoint is published, older checkpoint directories are
    removed but for the `keep` newest (the new one included). Raises CheckpointError when
    the files cannot be written; LATEST and the older checkpoints are then untouched.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise CheckpointError(f"keep must be an int >= 1, got {keep!r}")
    run = Path(run_dir)
    try:
        final = _write_checkpoint(run, model, trainer, optimizer, schedule, best_weights)
    except OSError as err:
        code = errno.errorcode.get(err.errno, "") if err.errno else ""
        reason = f"{err.strerror or err}{f' ({code})' if code else ''}"
        raise CheckpointWriteError(
            f"cannot write a checkpoint in {run}: {reason}; {_previous_note(run)}"
        ) from err
    _prune(run, final, keep)
    return final


def _previous_note(run: Path) -> str:
    try:
        latest = latest_checkpoint(run)
    except (CheckpointError, OSError):
        latest = None
    if latest is None:
        return "no earlier checkpoint exists"
    return f"the previous checkpoint {latest} is intact"


def _prune(run: Path, final: Path, keep: int) -> None:
    """Remove checkpoint directories but for `final` and the keep - 1 newest others, and
    the leftovers of interrupted writes."""

    def age(path: Path) -> tuple[int, str]:
        try:
            return (path / TRAINER).stat().st_mtime_ns, path.name
        except OSError:
            return 0, path.name

    others = sorted((p for p in run.glob("ckpt-*") if p != final and p.is_dir()), key=age)
    stale = others[: max(0, len(others) - (keep - 1))]
    for old in [*stale, *run.glob(".ckpt-*")]:
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


def _write_checkpoint(
    run: Path,
    model: nn.Module,
    trainer: dict | None,
    optimizer: torch.optim.Optimizer | None,
    schedule: Any,
    best_weights: dict[str, Tensor] | None,
) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Tensor] = {}
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "model_class": type(model).__name__,
        "parameters": {k: list(v.shape) for k, v in model.state_dict().items()},
        "trainer": encode(trainer or {}, tensors, "trainer"),
        "optimizer": None if optimizer is None else encode(optimizer.state_dict(), tensors, "opt"),
        "schedule": None if schedule is None else encode(schedule.state_dict(), tensors, "sch"),
        "rng": encode(rng_state(), tensors, "rng"),
        "files": {},
    }
    epoch = int((trainer or {}).get("epoch", 0))
    tmp = Path(tempfile.mkdtemp(prefix=".ckpt-", dir=run))
    try:
        os.chmod(tmp, 0o755)
        files = {
            "model.safetensors": st_save(_weights(model)),
            "state.safetensors": st_save(tensors),
        }
        if best_weights is not None:
            files["best.safetensors"] = st_save(best_weights)
        for name, data in files.items():
            atomic_write(tmp / name, data)
            meta["files"][name] = hashlib.sha256(data).hexdigest()
        atomic_write(tmp / TRAINER, json.dumps(meta, indent=1).encode("utf-8"))
        final, n = run / f"ckpt-{epoch:06d}", 1
        while final.exists():
            final, n = run / f"ckpt-{epoch:06d}-{n}", n + 1
        os.replace(tmp, final)
        _fsync_dir(run)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        atomic_write(run / LATEST, f"{final.name}\n".encode())
    except BaseException:
        if _named(run) != final.name:  # never published: drop it, LATEST names the old one
            shutil.rmtree(final, ignore_errors=True)
        raise
    return final


def _named(run: Path) -> str | None:
    try:
        return (run / LATEST).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def load_checkpoint(
    run_dir: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    schedule: Any = None,
    restore_rng: bool = False,
) -> dict:
    """Verify and load the latest checkpoint of `run_dir` into model (and optimizer, schedule).

    Returns {"trainer": the saved trainer dict, "best_weights": dict or None, "path": dir}.
    Raises CheckpointError, naming the file, for anything missing, corrupt or foreign.
    """
    path = latest_checkpoint(run_dir)
    if path is None:
        raise CheckpointError(f"{Path(run_dir) / LATEST}: no checkpoint in {run_dir}")
    meta_path = path / TRAINER
    meta = read_meta(meta_path, "checkpoint", FORMAT, VERSION)
    files = meta.get("files", {})
    for name in ("model.safetensors", "state.safetensors"):
        if name not in files:
            raise CheckpointError(f"{meta_path}: lists no checksum for {name}")
    weights = _read_tensors(path / "model.safetensors", files["model.safetensors"])
    _check_weights(path / "model.safetensors", weights, model)
    tensors = _read_tensors(path / "state.safetensors", files["state.safetensors"])
    best = None
    if "best.safetensors" in files:
        best = _read_tensors(path / "best.safetensors", files["best.safetensors"])
        _check_weights(path / "best.safetensors", best, model)
    try:
        model.load_state_dict(weights)
        if optimizer is not None:
            if meta["optimizer"] is None:
                raise CheckpointError(f"{meta_path}: holds no optimizer state")
            optimizer.load_state_dict(decode(meta["optimizer"], tensors))
        if schedule is not None and meta["schedule"] is not None:
            schedule.load_state_dict(decode(meta["schedule"], tensors))
        if restore_rng:
            set_rng_state(decode(meta["rng"], tensors))
        trainer = decode(meta["trainer"], tensors)
    except CheckpointError:
        raise
    except (KeyError, ValueError, TypeError, RuntimeError) as err:
        raise CheckpointError(
            f"{meta_path}: the saved optimizer / schedule / trainer state does not fit this "
            f"run ({type(err).__name__}: {err})"
        ) from err
    return {"trainer": trainer, "best_weights": best, "path": path}
