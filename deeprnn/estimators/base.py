"""RNNEstimator: what every task estimator shares (arguments, model, training, save / load).

An estimator is a dataclass, so `__init__` only stores its arguments and `get_params` /
`set_params` / `sklearn.base.clone` follow the signature. `fit` turns the data into
sequences, builds [embedding] -> DeepRNN -> Head as a `SequenceModel`, trains it with
`deeprnn.train.fit` and sets the learned attributes (names ending in `_`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted
from torch import nn

from deeprnn.config import SCHEDULES, TrainConfig
from deeprnn.config_io import ConfigError, _coerce
from deeprnn.data.splits import kfold, stratified_split
from deeprnn.data.text import Vocabulary
from deeprnn.errors import InputError, check_choice
from deeprnn.estimators import persist
from deeprnn.estimators.defaults import (
    DataShape,
    choose_defaults,
    epochs_for_updates,
    pick_epochs,
)
from deeprnn.estimators.inputs import Loader, python_value, take
from deeprnn.export import export as export_model
from deeprnn.frontend import ConvFrontend, frontend_kwargs
from deeprnn.heads import Head
from deeprnn.model import SequenceModel
from deeprnn.stack import DeepRNN
from deeprnn.train import fit, predict, seed_everything
from deeprnn.train.checkpoint import atomic_write, load_weights, save_weights

POOLINGS = ("last", "mean", "attention")  # of estimators with one output per sequence
# Arguments passed through to DeepRNN and to TrainConfig under the same names.
BODY = ("hidden_size", "num_layers", "cell", "nonlinearity", "wiring", "residual", "layer_norm",
        "dropout", "recurrent_dropout", "zoneout", "bidirectional", "between", "outputs",
        "bias")  # fmt: skip
VALIDATION_RECORD = "validation.json"  # in checkpoint_dir: the epochs the folds picked
TRAINING = ("epochs", "seed", "optimizer", "lr", "clip_norm", "verbose", "max_bad_steps",
            "bad_step_lr_factor", "keep_checkpoints", "schedule")  # fmt: skip


@dataclass(eq=False, repr=False, kw_only=True)
class RNNEstimator(BaseEstimator):
    """Abstract base of the task estimators; its arguments are every estimator's.

    Network (the arguments of `deeprnn.DeepRNN`): cell, num_layers, hidden_size,
    nonlinearity, wiring, residual, layer_norm, dropout, recurrent_dropout, zoneout,
    bidirectional, between, outputs, bias. `frontend`: a dict of `deeprnn.ConvFrontend`
    arguments (without in_features), e.g. {"channels": [32, 32], "kernel_size": 5, "pool": 2}:
    1-D conv blocks before the recurrent stack (None: none).
    Training (`deeprnn.train.fit`): epochs, batch_size, lr, optimizer, clip_norm (global
    gradient norm; None: off), seed (weights, shuffling, dropout and sampling), verbose (1: a
    progress bar per epoch when stderr is a terminal, else one plain line per epoch and every
    30 s, for logs, CI and notebooks), device ("cpu", "cuda", "cuda:N" or "auto").
    Reliability (see `deeprnn.train.guard`): checkpoint_dir and resume, keep_checkpoints;
    updates with a non-finite loss or gradient are skipped (bad_step_lr_factor < 1 lowers the
    lr at each) and max_bad_steps of them in a row stop training with a TrainingError.
    Early stopping: a `validation_fraction` of the training data is held out (stratified for
    classifiers, the last part in time for series and text streams); training stops after
    `patience` epochs without a lower validation loss and keeps the best weights.
    `validation_fraction=0` or `patience=None` trains for all `epochs`.
    """

    # The recurrent body (deeprnn.DeepRNN).
    cell: str | list[str] = "lstm"  # "rnn" | "lstm" | "gru", or one per layer
    num_layers: int | None = 2  # depth (None: one per entry of a hidden_size / cell list)
    hidden_size: int | list[int] = 64  # units per layer, or one per layer
    nonlinearity: str = "tanh"  # of "rnn" cells: "tanh" | "relu" | "sigmoid"
    wiring: str = "stack"  # "stack": layer l reads layer l-1; "skip": reads x and layer l-1
    residual: bool = False  # add each layer's input to its output (equal widths)
    layer_norm: bool = False  # layer-normalised cells (Ba et al. 2016)
    dropout: float = 0.0  # on the input of every layer above the first, training only
    recurrent_dropout: float = 0.0  # on h_(t-1) inside the recurrence, one mask per sequence
    zoneout: float | tuple[float, float] = 0.0  # p of keeping a unit's previous h (and c)
    bidirectional: bool = False  # each layer also runs backwards in time
    between: str | None = None  # Linear + "relu" | "tanh" | "sigmoid" | "linear" between layers
    outputs: str = "top"  # the head reads the "top" layer or "all" layers concatenated
    bias: bool = True  # bias_ih / bias_hh in every cell
    frontend: dict | None = None  # ConvFrontend arguments (conv blocks before the RNN), or None
    # Training (deeprnn.train.fit).
    epochs: int = 50  # most passes over the training data
    batch_size: int = 32  # sequences per update (rows of the text stream for language models)
    lr: float = 3e-3  # learning rate
    schedule: str | None = None  # lr over the epochs: None (constant) | "cosine" | "step" | ...
    optimizer: str = "adam"  # "sgd" | "rmsprop" | "adam" | "adamw"
    clip_norm: float | None = 1.0  # rescale gradients to at most this global L2 norm
    validation_fraction: float = 0.1  # held out for early stopping; 0: none
    patience: int | None = 10  # epochs without a lower validation loss before stopping
    seed: int = 0  # seeds weights, shuffling, dropout (and sampling, for generate)
    verbose: int = 0  # 0: silent; 1: a bar per epoch on a terminal, else one line per epoch
    device: str = "cpu"  # "cpu" | "cuda" | "cuda:N" | "auto" (cuda when available)
    checkpoint_dir: str | None = None  # write a training checkpoint here after every epoch
    resume: bool = False  # continue from the last checkpoint in checkpoint_dir, if any
    keep_checkpoints: int = 1  # checkpoints kept in checkpoint_dir (the newest)
    max_bad_steps: int | None = 10  # stop after this many non-finite updates in a row
    bad_step_lr_factor: float = 1.0  # lr multiplier at every skipped non-finite update

    # Learned attributes that save() writes to estimator.json besides the weights.
    _learned: ClassVar[tuple[str, ...]] = ()

    def _arg(self, name: str) -> Any:
        """The value fit uses for argument `name`: the data-aware choice recorded in
        `defaults_` where the argument was left to it, else the argument itself."""
        chosen = getattr(self, "defaults_", None)
        if chosen is not None and name in chosen:
            return chosen[name]["value"]
        return python_value(getattr(self, name))

    def _device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError) as err:
            raise InputError(
                f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {self.device!r}"
            ) from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InputError(f"device={self.device!r} but no CUDA GPU is available; use 'cpu'")
        return device

    def _check_params(self) -> None:
        """Raise ConfigError naming the argument for a value of the wrong type, and for the
        ranges checked before training starts (every fit calls this first)."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            if f.init:
                _coerce(hints[f.name], python_value(getattr(self, f.name)), f.name)
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch_size: expected an int >= 1, got {self.batch_size}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed: expected an int in [0, 2**32), got {self.seed}")
        self._validation_fraction()
        auto = ("auto",) if isinstance(self, DataAwareEstimator) else ()
        if self.schedule not in (None, *SCHEDULES, *auto):
            raise ConfigError(
                f"schedule: expected None or one of {[*SCHEDULES, *auto]}, got {self.schedule!r}"
            )
        if self.frontend != "auto":
            frontend_kwargs(python_value(self.frontend))

    def _pooling(self) -> str:
        """The `pooling` argument of estimators with one output per sequence, checked."""
        check_choice("pooling", self.pooling, POOLINGS)
        return self.pooling

    def _build_model(
        self,
        n_inputs: int,
        n_outputs: int,
        pooling: str,
        activation: str | None,
        vocab_size: int | None = None,
    ) -> SequenceModel:
        """[Embedding(vocab_size, n_inputs)] -> [ConvFrontend] -> DeepRNN -> Head(n_outputs)."""
        embedding = None
        if vocab_size is not None:
            embedding = nn.Embedding(vocab_size, n_inputs, padding_idx=Vocabulary.pad_id)
        frontend, width = None, n_inputs
        spec = frontend_kwargs(self._arg("frontend"))
        if spec is not None:
            frontend = ConvFrontend(n_inputs, **spec)
            width = frontend.out_features
        body = DeepRNN(width, **{k: self._arg(k) for k in BODY})
        head = Head(body.output_size, n_outputs, pooling=pooling, activation=activation)
        return SequenceModel(body, head, embedding, frontend)

    def _validation_fraction(self) -> float:
        f = self.validation_fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 <= f < 1:
            raise InputError(f"validation_fraction must be a float in [0, 1), got {f!r}")
        return float(f)

    def _holdout(self, n: int, stratify: np.ndarray | None = None):
        """(train indices, validation indices or None), both sorted."""
        f = self._validation_fraction()
        if f == 0:
            return np.arange(n), None
        n_val = max(1, round(n * f))
        if n - n_val < 1:
            raise InputError(
                f"validation_fraction={f} leaves no training data out of {n} sequences; "
                "pass more data or validation_fraction=0"
            )
        if stratify is not None:
            counts = np.bincount(stratify)
            k = int((counts > 0).sum())
            if counts[counts > 0].min() < 2 or n_val < k or n - n_val < k:
                stratify = None
        train, val = train_test_split(
            np.arange(n), test_size=n_val, random_state=self.seed, stratify=stratify
        )
        return np.sort(train), np.sort(val)

    def _train(self, spec: dict[str, Any], task: str, train, val, scratch: bool = False,
               **config: Any) -> None:  # fmt: skip
        """Build the model from `spec`, train it; sets model_ and history_. `config`
        overrides TrainConfig fields; `scratch` trains without checkpoints (a CV fold)."""
        seed_everything(self.seed)  # the initial weights depend on the seed only
        model = self._build_model(**spec).to(self._device())
        fields = {k: self._arg(k) for k in TRAINING}
        fields["patience"] = python_value(self.patience) if val is not None else None
        cfg = TrainConfig(**{**fields, **config})
        run_dir = None if scratch else self.checkpoint_dir
        self.history_ = fit(
            model, train, val, cfg, task, run_dir=run_dir, resume=self.resume and not scratch
        )
        self.model_ = model.eval()
        self._spec = dict(spec)

    def _fit_sequences(self, seqs, targets, task, spec, per_step=False, stratify=None) -> None:
        """Hold out a validation part, then train on sequences with one target each
        (or one per step)."""
        train_idx, val_idx = self._holdout(len(seqs), stratify)

        def loader(idx, shuffle):
            return self._loader(seqs, targets, idx, shuffle, per_step)

        val = None if val_idx is None else loader(val_idx, False)
        self._train(spec, task, loader(train_idx, True), val)

    def _loader(self, seqs, targets, idx, shuffle: bool, per_step: bool = False) -> Loader:
        """Batches of the sequences `idx` (shuffled and bucketed by length when `shuffle`)."""
        return Loader(take(seqs, idx), take(targets, idx), self._arg("batch_size"), shuffle,
                      self.seed, per_step)  # fmt: skip

    def _outputs(self, seqs: list[np.ndarray], per_step: bool = False):
        """Activated outputs: (N, K), or a list of (T_i, K) for per-step heads."""
        check_is_fitted(self, "model_")
        # Sorting by length keeps the padding of each batch small; the order is undone below.
        order = np.argsort([len(s) for s in seqs], kind="stable")
        size = max(self._arg("batch_size"), 256)
        loader = Loader(take(seqs, order), None, size, shuffle=False)
        out = np.mean([predict(m, loader) for m in self._members()], axis=0)
        restored = np.empty_like(out)
        restored[order] = out
        if per_step:
            return [o[: len(s)] for o, s in zip(restored, seqs)]
        return restored

    def _members(self) -> list[nn.Module]:
        """The networks that predict together: model_, then the fold models kept by a
        data-aware fit (`fold_ensemble`), whose activated outputs are averaged."""
        return [self.model_, *getattr(self, "fold_models_", [])]

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted estimator to the directory `path` (created if needed): weights in
        `model.safetensors` (fold models, if any, in `fold0.safetensors`...), class,
        arguments and learned attributes in `estimator.json`."""
        check_is_fitted(self, "model_")
        return persist.write(Path(path), self)

    def export(self, path: str | os.PathLike, format: str = "onnx", lengths: bool = True) -> Path:
        """Write the fitted network to the file `path` as "onnx" or "torchscript", batch and
        time dynamic (`deeprnn.export.export`). It takes what the network takes: inputs after
        the estimator's scaling / tokenisation, and gives the activated head output (with
        fold models: ONE graph that averages every member's, as `predict` does)."""
        check_is_fitted(self, "model_")
        members = self._members()
        if len(members) > 1:
            from deeprnn.export import export_ensemble

            return export_ensemble(members, path, format, lengths)
        return export_model(self.model_, path, format, lengths=lengths)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> RNNEstimator:
        """Restore an estimator written by `save`. Called on `RNNEstimator` it returns
        whichever estimator the directory holds; `device` overrides the saved one.
        Raises `deeprnn.train.CheckpointError` for a missing, foreign or corrupt directory."""
        return persist.read(Path(path), cls, device, RNNEstimator)


@dataclass(eq=False, repr=False, kw_only=True)
class DataAwareEstimator(RNNEstimator):
    """An estimator of whole sequences whose unset arguments are chosen from the data.

    hidden_size, bidirectional, epochs, batch_size and validation_fraction left as None, and
    frontend / pooling left as "auto", are decided at `fit` from the training data's shape
    by the rules of `deeprnn.estimators.defaults` and recorded, with the reason for each,
    in `defaults_` (printed by `print(est.defaults_)`, logged when verbose, and written to
    the run report). With validation_fraction=None, small data (below 2,000 sequences)
    never early-stops on a handful of sequences: the number of updates is picked by 3-fold
    cross-validation (below 500) or one 20 % split, then the model is refitted on ALL the
    training data for that many updates. Arguments set explicitly are used as given
    (`epochs` is then the most a CV may pick).
    `fold_ensemble` (on by default): the models the folds trained are kept (`fold_models_`)
    and predict together with the refit one, their probabilities (classifiers) or scaled
    outputs (regressors, taggers) averaged; save / load / export carry them. They cost no
    training (the folds run anyway) but predictions take 1 + k passes. Measured on the
    development sets (seed 0): OSULeaf 0.876 -> 0.888, ACSF1 0.89 -> 0.93.
    """

    hidden_size: int | list[int] | None = None  # None: 32 / 64 / 128 from the data's size
    bidirectional: bool | None = None  # None: on, but for big and long data
    frontend: dict | str | None = "auto"  # "auto": conv blocks for long feature sequences
    epochs: int | None = None  # None: about 1,500 updates (within 15-300 passes)
    batch_size: int | None = None  # None: N / 16 as a power of two within [8, 64]
    validation_fraction: float | None = None  # None: CV / split + refit, or 10 % early stop
    schedule: str | None = "auto"  # "auto": cosine decay over a fixed budget, else constant
    fold_ensemble: bool = True  # predict with the refit model and the fold models averaged

    _learned = ("defaults_",)

    def _validation_fraction(self) -> float:
        if self.validation_fraction is None:  # the plan fit chose: a holdout only for "early"
            chosen = getattr(self, "defaults_", None)
            plan, amount = chosen.plan if chosen is not None else ("cv", 0)
            return float(amount) if plan == "early" else 0.0
        return super()._validation_fraction()

    def _pooling(self) -> str:
        if self.pooling == "auto":
            return "auto"
        return super()._pooling()

    def _choose_defaults(self, shape: DataShape, frontend_ok: bool, pooled: bool) -> None:
        self.defaults_ = choose_defaults(self, shape, frontend_ok, pooled)
        if self.defaults_:
            name, seen = type(self).__name__, f"N={shape.n}, median T={shape.median_length}"
            self._log(f"{name}: defaults chosen from the data ({seen}):\n{self.defaults_}")

    def _log(self, message: str) -> None:
        if self.verbose:
            print(message, file=sys.stderr, flush=True)

    def _fit_sequences(self, seqs, targets, task, spec, per_step=False, stratify=None) -> None:
        """Choose the defaults (when the subclass has not), then validate as they say: early
        stopping on a holdout, or updates picked by folds / a split and a refit on all."""
        if spec.get("pooling") == "auto":
            spec = {**spec, "pooling": self._arg("pooling")}
        plan, amount = self.defaults_.plan
        self.fold_models_ = []
        if plan in ("given", "early"):  # a holdout of _validation_fraction() and early stopping
            super()._fit_sequences(seqs, targets, task, spec, per_step, stratify)
            return
        n = len(seqs)
        if plan == "cv":
            folds = kfold(n, amount, self.seed, stratify)
        else:
            folds = [stratified_split(stratify if stratify is not None else np.zeros(n),
                                      max(1, round(n * amount)), self.seed)]  # fmt: skip
        batch, most = self._arg("batch_size"), self._arg("epochs")

        key = {"n": n, "plan": plan, "amount": amount, "batch_size": batch, "most": most,
               "seed": self.seed}  # fmt: skip
        done = self._validation_record(key, spec)
        if done is not None:  # a resumed run: the folds ran before the interruption
            record, kept = done
            self.defaults_.choose("epochs", record["epochs"], record["reason"])
            self._log(f"resuming: {record['reason']}")
        else:
            kept = self._validate(seqs, targets, task, spec, per_step, folds, plan, batch, most)
            self._write_validation_record(key, kept)
        epochs = self._arg("epochs")
        self._log(f"refit on all {n} sequences for {epochs} epochs")
        self._train(spec, task, self._loader(seqs, targets, np.arange(n), True, per_step), None)
        self.fold_models_ = kept if self.fold_ensemble else []

    def _validation_record(self, key: dict, spec: dict) -> tuple[dict, list] | None:
        """(record, fold models) of a previous, interrupted fit of the same data and
        arguments: the epochs its folds picked and the models they trained."""
        if not (self.resume and self.checkpoint_dir):
            return None
        path = Path(self.checkpoint_dir)
        try:
            record = json.loads((path / VALIDATION_RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("key") != json.loads(json.dumps(key)):
            return None
        kept = []
        for i, sha in enumerate(record.get("folds_sha256", [])):
            model = self._build_model(**spec).to(self._device())
            load_weights(path / persist.FOLD_WEIGHTS.format(i), model, sha)
            kept.append(model.eval())
        return record, kept

    def _write_validation_record(self, key: dict, kept: list) -> None:
        if self.checkpoint_dir:
            path = Path(self.checkpoint_dir)
            path.mkdir(parents=True, exist_ok=True)
            # weights first: the record that names them is the commit point
            shas = [
                save_weights(path / persist.FOLD_WEIGHTS.format(i), m) for i, m in enumerate(kept)
            ]
            record = {"key": key, **self.defaults_["epochs"], "epochs": self._arg("epochs"),
                      "folds_sha256": shas}  # fmt: skip
            atomic_write(path / VALIDATION_RECORD, json.dumps(record).encode("utf-8"))

    def _validate(self, seqs, targets, task, spec, per_step, folds, plan, batch, most) -> list:
        """Train on each fold up to the updates of `most` epochs over all n sequences;
        record in defaults_ the epochs that give the updates of the best mean validation
        score, for a refit on all n sequences. Returns the fold models (for
        `fold_ensemble`; empty when it is off).

        Classification: the MOST epochs whose mean validation accuracy is within one
        standard error of its best (`defaults.pick_epochs`), the folds running all `most`
        epochs; otherwise the lowest mean validation loss. On the development sets the loss
        bottoms out long before the accuracy stops rising (an over-confident model), and
        picking by it stopped the refit too early: ItalyPowerDemand 25-88 epochs, test
        accuracy 0.925-0.969, against 0.955-0.967 for the whole budget; ACSF1 8-30 epochs,
        0.43-0.60, against 0.64-0.75."""
        n = len(seqs)
        by_accuracy = task == "classification"
        monitor = "val_accuracy" if by_accuracy else "val_loss"
        curves, per_epoch, kept = [], [], []
        for i, (tr, va) in enumerate(folds):
            # as many updates as `most` epochs over all n make: a fold's smaller part would
            # otherwise never reach the update budget the refit may be given
            fold_most = math.ceil(most * math.ceil(n / batch) / math.ceil(len(tr) / batch))
            self._log(f"validation {plan} {i + 1}/{len(folds)}: up to {fold_most} epochs on "
                      f"{len(tr)} sequences, scored on {len(va)}")  # fmt: skip
            self._train(spec, task, self._loader(seqs, targets, tr, True, per_step),
                        self._loader(seqs, targets, va, False, per_step), scratch=True,
                        epochs=fold_most, patience=None if by_accuracy else max(10, most // 4),
                        restore_best=False, monitor=monitor)  # fmt: skip
            curves.append(list(self.history_[monitor]))
            per_epoch.append(math.ceil(len(tr) / batch))
            if self.fold_ensemble:
                kept.append(self.model_)

        seen = sum(len(va) for _, va in folds)  # validation sequences behind the mean
        best, what = pick_epochs(curves, by_accuracy, seen)
        updates = round(best * float(np.mean(per_epoch)))
        epochs = min(most, epochs_for_updates(updates, n, batch))
        self.defaults_.choose(
            "epochs", epochs,
            f"{what} after {best} epochs = "
            f"{updates} updates over {len(folds)} {'folds' if plan == 'cv' else 'split'}; "
            f"refitted on all {n} sequences for as many updates",
        )  # fmt: skip
        return kept
