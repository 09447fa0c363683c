"""fit / evaluate / predict: learning, truncated BPTT, early stopping, clipping, schedules."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest
import torch
from torch import nn

from deeprnn import DeepRNN, Head, SequenceModel
from deeprnn.errors import InputError
from deeprnn.train import TensorBatches, TrainConfig, evaluate, fit, make_optimizer, predict
from deeprnn.train import progress as progress_module
from deeprnn.train.bptt import carry_state, train_batch, windows
from deeprnn.train.optim import Schedule
from deeprnn.train.progress import bar_enabled


@pytest.fixture(autouse=True)
def one_thread():
    """Two OpenMP threads on two busy cores are ~50x slower for these tiny models."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def classifier(seed: int = 0, dropout: float = 0.0, layers: int = 1) -> SequenceModel:
    torch.manual_seed(seed)
    return SequenceModel(
        DeepRNN(3, 8, num_layers=layers, cell="gru", dropout=dropout),
        Head(8, 2, activation="softmax"),
    )


def sign_task(n: int = 64, t: int = 6, seed: int = 0):
    """Label = whether the first feature sums to more than 0 over time."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, t, 3, generator=g)
    return x, (x[:, :, 0].sum(1) > 0).long()


def tagger(seed: int = 0, cell: str = "lstm") -> SequenceModel:
    torch.manual_seed(seed)
    return SequenceModel(DeepRNN(3, 5, cell=cell), Head(5, 3, pooling="every"))


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_tiny_classifier_learns():
    x, y = sign_task()
    model = classifier()
    train = TensorBatches(x, y, batch_size=16, shuffle=True)
    before = evaluate(model, train, "classification")
    config = TrainConfig(epochs=12, lr=0.03, verbose=0)
    history = fit(model, train, TensorBatches(x, y, batch_size=64), config)
    assert len(history) == 12
    assert history["train_loss"][-1] < 0.6 * history["train_loss"][0]
    assert history["val_accuracy"][-1] >= 0.85 > before["accuracy"]
    assert history.best("val_accuracy")[1] == max(history["val_accuracy"])
    probs = predict(model, TensorBatches(x, batch_size=20))
    assert probs.shape == (64, 2)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert set(history.keys()) >= {"epoch", "train_loss", "lr", "grad_norm", "seconds"}


@pytest.mark.parametrize("task", ["binary", "regression", "lm"])
def test_other_tasks_learn(task):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 6, 2, generator=g)
    lengths = None
    torch.manual_seed(0)
    config = TrainConfig(epochs=6, lr=0.05, verbose=0)
    if task == "binary":  # pooled, one sigmoid output, weighted classes
        model = SequenceModel(DeepRNN(2, 6, cell="gru"), Head(6, 1, activation="sigmoid"))
        y = (x[:, :, 0].mean(1) > 0).float()
        config = TrainConfig(epochs=6, lr=0.05, class_weights=(1.0, 2.0), verbose=0)
    elif task == "regression":  # per step, padded rows, truncated BPTT
        model = SequenceModel(DeepRNN(2, 6, cell="lstm"), Head(6, 1, pooling="every"))
        y, lengths = x[:, :, 0].cumsum(1), torch.randint(1, 7, (32,), generator=g)
        config = TrainConfig(epochs=6, lr=0.05, tbptt_k1=3, verbose=0)
    else:  # next token of a cyclic sequence, stateful truncated BPTT with k2 > k1
        model = SequenceModel(
            DeepRNN(4, 8, cell="gru"), Head(8, 5, pooling="every"), nn.Embedding(5, 4)
        )
        ids = (torch.arange(25).repeat(8, 1) + torch.randint(0, 5, (8, 1), generator=g)) % 5
        x, y = ids[:, :-1], ids[:, 1:]
        config = TrainConfig(epochs=6, lr=0.05, tbptt_k1=8, tbptt_k2=12, stateful=True, verbose=0)
    train = TensorBatches(x, y, lengths, batch_size=8)
    history = fit(model, train, train, config, task=task)
    assert history["val_loss"][-1] < 0.8 * history["val_loss"][0]
    out = predict(model, train)
    assert out.shape[0] == x.shape[0] and np.isfinite(out).all()


def test_language_model_metrics_are_consistent():
    torch.manual_seed(0)
    model = SequenceModel(
        DeepRNN(4, 6, cell="gru"), Head(6, 5, pooling="every"), nn.Embedding(5, 4)
    )
    ids = torch.randint(0, 5, (8, 7))
    lengths = torch.tensor([7, 7, 5, 3, 7, 1, 6, 7])
    data = TensorBatches(ids[:, :-1], ids[:, 1:], lengths - 1 + (lengths == 1), batch_size=4)
    got = evaluate(model, data, "lm")
    assert got["perplexity"] == pytest.approx(math.exp(got["loss"]), rel=1e-5)
    assert got["bpc"] == pytest.approx(got["loss"] / math.log(2), rel=1e-5)


def test_same_seed_same_run():
    x, y = sign_task(n=32)
    runs = []
    for _ in range(2):
        model = classifier(dropout=0.3, layers=2)
        data = TensorBatches(x, y, batch_size=8, shuffle=True, seed=3)
        runs.append((model, fit(model, data, config=TrainConfig(epochs=2, seed=5, verbose=0))))
    assert same_weights(runs[0][0], runs[1][0])
    assert runs[0][1]["train_loss"] == runs[1][1]["train_loss"]


def _tag_batch(b: int = 3, t: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, 3, generator=g), torch.randint(0, 3, (b, t), generator=g)


def test_tbptt_with_k_covering_the_sequence_equals_full_bptt():
    x, y = _tag_batch()
    lengths = torch.tensor([8, 5, 7])
    grads = {}
    results = []
    for k in (None, 8):
        model = tagger()
        config = TrainConfig(epochs=1, tbptt_k1=k, optimizer="sgd", lr=0.1, verbose=0)

        def keep_grads(event, state, k=k):
            grads[k] = {n: p.grad.clone() for n, p in state["model"].named_parameters()}

        history = fit(
            model, [(x, lengths, y)], config=config, task="tagging", callbacks=[keep_grads]
        )
        results.append((model, history["train_loss"]))
    assert results[0][1] == results[1][1]
    assert same_weights(results[0][0], results[1][0])
    for name in grads[None]:
        torch.testing.assert_close(grads[None][name], grads[8][name], rtol=0, atol=0)


@pytest.mark.parametrize("k2, flows", [(None, False), (8, True)])
def test_tbptt_gradient_stops_at_the_chunk_boundary(k2, flows):
    x, y = _tag_batch()
    x.requires_grad_(True)
    model = tagger()
    config = TrainConfig(tbptt_k1=4, tbptt_k2=k2, optimizer="sgd", lr=0.0)
    optimizer = make_optimizer(model, config)
    chunks = train_batch(
        model, x, None, y, None, "tagging", config, optimizer, Schedule(optimizer, config)
    )
    next(chunks)
    after_first = x.grad.clone()
    assert after_first[:, :4].abs().sum() > 0 and after_first[:, 4:].abs().sum() == 0
    next(chunks)  # its loss covers steps 4..7 only
    second = x.grad - after_first
    assert second[:, 4:].abs().sum() > 0
    assert (second[:, :4].abs().sum() > 0) == flows  # k2 = k1: no gradient past the cut
    assert windows(10, 4, None) == [(0, 0, 4), (4, 4, 8), (8, 8, 10)]
    assert windows(10, 4, 6) == [(0, 0, 4), (2, 4, 8), (6, 8, 10)]


def test_stateful_batches_equal_one_truncated_stream():
    x, y = _tag_batch(t=8)
    stream = tagger()
    fit(stream, [(x, None, y)], config=TrainConfig(epochs=1, tbptt_k1=4, verbose=0), task="tagging")
    halves = [(x[:, :4], None, y[:, :4]), (x[:, 4:], None, y[:, 4:])]
    carried = tagger()
    fit(carried, halves, config=TrainConfig(epochs=1, stateful=True, verbose=0), task="tagging")
    torch.testing.assert_close(stream.state_dict(), carried.state_dict(), rtol=1e-6, atol=1e-7)
    fresh = tagger()
    fit(fresh, halves, config=TrainConfig(epochs=1, verbose=0), task="tagging")
    reset = tagger()
    resets = [(*halves[0], None), (*halves[1], torch.ones(3, dtype=torch.bool))]
    fit(reset, resets, config=TrainConfig(epochs=1, stateful=True, verbose=0), task="tagging")
    torch.testing.assert_close(fresh.state_dict(), reset.state_dict(), rtol=0, atol=0)
    assert not torch.allclose(
        fresh.body.layers[0].cell.weight_hh, carried.body.layers[0].cell.weight_hh
    )


def test_carry_state_resets_rows_and_drops_on_batch_change():
    h, c = torch.ones(3, 2), torch.ones(3, 2)
    got = carry_state([(h, c)], torch.tensor([False, True, False]), 3)
    torch.testing.assert_close(got[0][0], torch.tensor([[1.0, 1], [0, 0], [1, 1]]))
    assert carry_state([(h, c)], None, 2) is None


def test_early_stopping_stops_and_restores_the_best_weights():
    x, y = sign_task(n=16)
    data = [(x, None, y)]
    model = classifier()
    seen = {}

    def snapshot(event, state):
        if event == "epoch_end":
            seen[state["epoch"]] = copy.deepcopy(state["model"].state_dict())

    # The loss falls every epoch, so with mode="max" only epoch 1 is ever the best.
    config = TrainConfig(epochs=10, lr=0.01, patience=2, mode="max", verbose=0)
    history = fit(model, data, data, config, callbacks=[snapshot])
    assert history["epoch"] == [1, 2, 3]
    assert history["val_loss"][2] < history["val_loss"][0]
    torch.testing.assert_close(model.state_dict(), seen[1], rtol=0, atol=0)
    assert not torch.equal(model.head.linear.weight, seen[3]["head.linear.weight"])


def test_clipping_bounds_the_gradient():
    x, y = sign_task(n=32)
    norms, pre = [], []

    def measure(event, state):
        if event == "batch_end":
            grads = [p.grad for p in state["model"].parameters()]
            norms.append(float(torch.nn.utils.get_total_norm(grads)))
            pre.append(state["grad_norm"])
            assert max(float(g.abs().max()) for g in grads) <= 0.05 + 1e-7

    config = TrainConfig(epochs=2, lr=0.1, clip_norm=0.1, clip_value=0.05, verbose=0)
    fit(classifier(), TensorBatches(x, y, batch_size=8), config=config, callbacks=[measure])
    assert max(norms) <= 0.1 + 1e-6
    assert max(pre) > 0.1  # clipping had work to do


def _lrs(config: TrainConfig, batches: int = 1, per_step: bool = False) -> list[float]:
    x, y = sign_task(n=4 * batches)
    seen = []
    fit(classifier(), TensorBatches(x, y, batch_size=4), config=config,
        callbacks=[lambda e, s: seen.append(s["lr"]) if e == "batch_end" else None])  # fmt: skip
    return seen


def test_schedules_change_the_learning_rate_as_documented():
    step = TrainConfig(epochs=5, lr=0.1, schedule="step", step_size=2, gamma=0.5, verbose=0)
    assert _lrs(step) == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    cosine = TrainConfig(epochs=4, lr=0.1, schedule="cosine", min_lr=0.01, verbose=0)
    want = [0.01 + 0.09 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert _lrs(cosine) == pytest.approx(want)
    warm = TrainConfig(epochs=1, lr=0.1, warmup_steps=3, verbose=0)
    assert _lrs(warm, batches=5) == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1])
    # train_loss keeps falling, so with mode="max" every epoch after the first is "bad".
    plateau = TrainConfig(epochs=6, lr=0.1, schedule="plateau", plateau_patience=1,
                          gamma=0.5, monitor="train_loss", mode="max", verbose=0)  # fmt: skip
    assert _lrs(plateau) == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025])


def test_progress_without_a_terminal_is_one_plain_line_per_epoch(capsys):
    class Tty:
        def isatty(self):
            return True

    assert bar_enabled(1, Tty()) and not bar_enabled(0, Tty())
    x, y = sign_task(n=8)
    fit(classifier(), [(x, None, y)], config=TrainConfig(epochs=2, verbose=1))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and "\r" not in "".join(lines)  # no bar redrawing in a log
    assert re.fullmatch(r"epoch 2/2: train_loss [\d.e+-]+, \d+ samples/s, [\d.]+ s", lines[1])
    fit(classifier(), [(x, None, y)], config=TrainConfig(epochs=2, verbose=0))
    assert capsys.readouterr().err == ""


def test_a_long_epoch_in_a_log_also_prints_a_line_every_few_seconds(capsys, monkeypatch):
    monkeypatch.setattr(progress_module, "LINE_EVERY", 0.0)  # every update counts as "long"
    x, y = sign_task(n=8)
    batches = [(x[:4], None, y[:4]), (x[4:], None, y[4:])]
    fit(classifier(), batches, config=TrainConfig(epochs=1, verbose=1))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3, lines
    assert re.fullmatch(r"epoch 1/1: batch 1/2, loss [\d.e+-]+, \d+ samples/s", lines[0])
    assert lines[1].startswith("epoch 1/1: batch 2/2, loss ")
    assert lines[2].startswith("epoch 1/1: train_loss ")


def test_early_stopping_says_why_in_the_history_and_on_stderr(capsys):
    x, y = sign_task(n=16)
    config = TrainConfig(epochs=30, patience=2, min_delta=10.0, monitor="val_loss", verbose=1)
    history = fit(classifier(), [(x, None, y)], [(x, None, y)], config)  # no epoch gains 10
    stop = history.stop
    assert stop["reason"] == "early_stopping" and stop["epoch"] == 3 and stop["best_epoch"] == 1
    expected = "early stopping at epoch 3 of 30: val_loss did not improve for 2 epochs "
    assert stop["message"].startswith(expected + "(patience=2); best epoch 1 (val_loss ")
    assert "fit: early stopping at epoch 3 of 30" in capsys.readouterr().err
    done = fit(classifier(), [(x, None, y)], config=TrainConfig(epochs=2, verbose=0))
    assert done.stop["reason"] == "completed" and done.stop["message"] == "trained all 2 epochs"


def test_history_reads_like_a_mapping_and_a_data_frame():
    x, y = sign_task(n=8)
    history = fit(classifier(), [(x, None, y)], config=TrainConfig(epochs=3, verbose=0))
    assert "train_loss" in history and "nope" not in history and len(history) == 3
    assert list(history) == history.keys() and dict(history.items())["epoch"] == [1, 2, 3]
    assert history.get("nope", 5) == 5 and history.values()[0] == [1, 2, 3]
    frame = history.to_frame()
    assert list(frame.index) == [1, 2, 3] and frame["train_loss"].tolist() == history["train_loss"]


def test_bad_arguments_are_explained():
    x, y = sign_task(n=8)
    with pytest.raises(InputError, match="tbptt_k2"):
        fit(classifier(), [(x, None, y)], config=TrainConfig(tbptt_k1=4, tbptt_k2=2))
    with pytest.raises(InputError, match="val"):
        fit(classifier(), [(x, None, y)], config=TrainConfig(patience=2))
    with pytest.raises(InputError, match="pooling='every'"):
        fit(classifier(), [(x, None, y)], config=TrainConfig(tbptt_k1=2, verbose=0))
    with pytest.raises(InputError, match="no batches"):
        fit(classifier(), (b for b in [(x, None, y)]), config=TrainConfig(epochs=2, verbose=0))
    with pytest.raises(InputError, match="task"):
        fit(classifier(), [(x, None, y)], task="ranking")
