"""Numerical trouble in training: non-finite updates are skipped and counted, the learning
rate can be lowered, hopeless runs stop with a clear error and keep their last good
checkpoint, and exploding gradient norms show up as warnings and in the history."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from deeprnn import DeepRNN, Head, SequenceModel, TensorBatches, TrainConfig, fit
from deeprnn.errors import TrainingError
from deeprnn.estimators import Forecaster
from deeprnn.train import latest_checkpoint, load_checkpoint
from deeprnn.train.bptt import carry_state
from deeprnn.train.guard import ExplodingGradientWarning, SkippedStepWarning


def regressor(seed: int = 0) -> SequenceModel:
    torch.manual_seed(seed)
    return SequenceModel(DeepRNN(2, 5, cell="gru"), Head(5, 1))


def regression_data(n: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, 2, generator=g)
    return x, x.sum((1, 2)).unsqueeze(-1)


class Poisoned:
    """Batches of 4 rows; from epoch `start` (1-based) on, the targets of the batches in
    `bad` are NaN."""

    def __init__(self, start: int = 1, bad=(1,)):
        self.x, self.y = regression_data()
        self.start, self.bad, self.epoch = start, set(bad), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch  # 0-based, as fit passes it

    def __len__(self) -> int:
        return 4

    def __iter__(self):
        for b in range(4):
            x, y = self.x[4 * b : 4 * b + 4], self.y[4 * b : 4 * b + 4].clone()
            if self.epoch + 1 >= self.start and b in self.bad:
                y[0] = float("nan")
            yield x, None, y


def finite(model) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def test_a_nan_target_skips_its_update_and_is_counted():
    model = regressor()
    config = TrainConfig(epochs=2, lr=0.01, verbose=0)
    with pytest.warns(SkippedStepWarning, match=r"epoch \d, batch 1: skipped an update"):
        history = fit(model, Poisoned(), config=config, task="regression")
    assert history["skipped_steps"] == [1.0, 1.0]
    assert all(math.isfinite(v) for v in history["train_loss"])
    assert all(v > 0 for v in history["max_grad_norm"])
    assert finite(model)


def test_skipped_updates_lower_the_learning_rate_when_asked():
    seen = []

    def record(event, state):
        if event == "batch_end":
            seen.append((state["batch"], state["lr"]))

    config = TrainConfig(epochs=1, lr=0.01, optimizer="sgd", bad_step_lr_factor=0.5, verbose=0)
    with pytest.warns(SkippedStepWarning):
        fit(regressor(), Poisoned(bad=(0, 1)), config=config, task="regression", callbacks=[record])
    assert seen == [(2, pytest.approx(0.0025)), (3, pytest.approx(0.0025))]


def test_too_many_bad_updates_stop_training_and_keep_the_last_good_checkpoint(tmp_path):
    after_first = {}

    def snapshot(event, state):
        if event == "epoch_end" and state["epoch"] == 1:
            after_first.update({k: v.clone() for k, v in state["model"].state_dict().items()})

    model = regressor()
    config = TrainConfig(epochs=4, lr=0.01, max_bad_steps=3, verbose=0)
    data = Poisoned(start=2, bad=(0, 1, 2, 3))
    with pytest.warns(SkippedStepWarning), pytest.raises(TrainingError) as info:
        fit(model, data, config=config, task="regression", run_dir=tmp_path, callbacks=[snapshot])
    message = str(info.value)
    assert "epoch 2, batch 2: 3 updates in a row had a non-finite loss or gradient" in message
    assert "clip_norm" in message and "lower learning rate" in message
    good = latest_checkpoint(tmp_path)
    assert good.name == "ckpt-000001" and str(good) in message
    restored = regressor(seed=5)
    assert load_checkpoint(tmp_path, restored)["trainer"]["epoch"] == 1
    torch.testing.assert_close(restored.state_dict(), after_first, rtol=0, atol=0)
    torch.testing.assert_close(model.state_dict(), after_first, rtol=0, atol=0)  # never stepped


def test_a_huge_learning_rate_is_stopped_with_advice():
    x, y = regression_data(32)
    config = TrainConfig(epochs=50, lr=1e8, optimizer="sgd", max_bad_steps=4, verbose=0)
    model = regressor()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(TrainingError, match=r"epoch \d+, batch \d+: 4 updates in a row .*"
                           r"No checkpoint was kept .*Try gradient clipping"):  # fmt: skip
            fit(model, TensorBatches(x, y, batch_size=8), config=config, task="regression")
    assert finite(model)  # non-finite steps never reach the weights


def test_exploding_gradient_norms_are_warned_about_and_in_the_history():
    x, y = regression_data()
    config = TrainConfig(epochs=3, lr=0.01, grad_norm_warning=1e-3, verbose=0)
    with pytest.warns(ExplodingGradientWarning, match=r"gradient norm .* exceeds") as caught:
        history = fit(regressor(), TensorBatches(x, y, batch_size=4), config=config,
                      task="regression")  # fmt: skip
    assert len([w for w in caught if w.category is ExplodingGradientWarning]) == 3  # one an epoch
    for top, mean in zip(history["max_grad_norm"], history["grad_norm"]):
        assert top >= mean > 1e-3
    assert history["skipped_steps"] == [0.0, 0.0, 0.0]
    assert all("try gradient clipping" in str(w.message) for w in caught)  # clipping is off
    clipped = TrainConfig(epochs=1, lr=0.01, grad_norm_warning=1e-3, clip_norm=0.5, verbose=0)
    with pytest.warns(ExplodingGradientWarning, match="was clipped to norm 0.5; if it recurs"):
        fit(regressor(), TensorBatches(x, y, batch_size=4), config=clipped, task="regression")


def test_a_diverged_state_is_not_carried_into_the_next_batch():
    state = [(torch.full((2, 3), float("nan")), torch.zeros(2, 3))]
    assert carry_state(state, None, 2) is None
    fine = [(torch.ones(2, 3), torch.zeros(2, 3))]
    assert carry_state(fine, None, 2) is fine


def test_an_estimator_with_a_hopeless_learning_rate_fails_clearly():
    series = torch.sin(torch.arange(60) / 3.0).numpy() * 100
    est = Forecaster(lookback=6, horizon=3, lr=1e9, optimizer="sgd", clip_norm=None, epochs=30,
                     hidden_size=4, num_layers=1, validation_fraction=0)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(TrainingError, match=r"updates in a row had a non-finite loss"):
            est.fit(series)
