"""DeepRNN, heads and losses against the NumPy reference: every output and every gradient.

Each case is one call of `assert_matches_reference`, which also checks the reference
itself by finite differences.
"""

import itertools

import pytest
import torch

from deeprnn import DeepRNN, Head, SequenceModel

from .helpers import assert_matches_reference, random_batch

CROSS = list(
    itertools.product(["lstm", "gru", "rnn"], ["stack", "skip"], [False, True], [False, True])
)


@pytest.mark.parametrize("cell, wiring, residual, bidirectional", CROSS)
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("native", [True, False])
def test_cross_product_native_and_loop_match_reference(
    cell, wiring, residual, bidirectional, with_lengths, native
):
    torch.manual_seed(0)
    hidden = 2 if bidirectional else 4  # width 4 == input size: residual from x applies
    net = DeepRNN(4, hidden, num_layers=2, cell=cell, wiring=wiring, residual=residual,
                  bidirectional=bidirectional).use_native(native)  # fmt: skip
    x, lengths = random_batch(3, 4, 4, with_lengths)
    assert_matches_reference(net, x, lengths, fd=not native)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(cell="lstm", layer_norm=True),
        dict(cell="gru", layer_norm=True, bidirectional=True),
        dict(cell="rnn", layer_norm=True, nonlinearity="relu"),
        dict(cell="rnn", nonlinearity="sigmoid", wiring="skip"),
        dict(cell="rnn", nonlinearity="relu", residual=True),
        dict(cell="lstm", between="relu", outputs="all"),
        dict(cell="gru", between="tanh", wiring="skip", residual=True),
        dict(cell="lstm", between="sigmoid", bidirectional=True, outputs="all"),
        dict(cell="lstm", between="linear", layer_norm=True, wiring="skip"),
        dict(cell=["lstm", "gru", "rnn"], hidden_size=[5, 3, 4]),
        dict(cell=["gru", "lstm"], hidden_size=[3, 5], bidirectional=True, wiring="skip"),
        dict(cell="lstm", bias=False, layer_norm=True),
        dict(cell="gru", bias=False),
    ],
    ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()),
)
def test_options_match_reference(kwargs):
    torch.manual_seed(1)
    defaults = (
        {"hidden_size": 4} if "hidden_size" in kwargs else {"hidden_size": 4, "num_layers": 2}
    )
    kwargs = {**defaults, **kwargs}
    net = DeepRNN(4, **kwargs)
    x, lengths = random_batch(3, 5, 4, with_lengths=True, seed=3)
    assert_matches_reference(net, x, lengths)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_initial_state_gradients_match_reference(cell, bidirectional):
    torch.manual_seed(2)
    net = DeepRNN(3, 4, num_layers=2, cell=cell, bidirectional=bidirectional, wiring="skip")
    x, lengths = random_batch(3, 4, 3, with_lengths=True, seed=5)
    shape = (2, 3, 4) if bidirectional else (3, 4)
    state = [
        (torch.randn(shape), torch.randn(shape)) if cell == "lstm" else torch.randn(shape)
        for _ in range(2)
    ]
    assert_matches_reference(net, x, lengths, state=state)


@pytest.mark.parametrize("pooling", ["last", "mean", "attention"])
@pytest.mark.parametrize("loss", ["ce", "bce", "mse"])
def test_heads_and_losses_match_reference(pooling, loss):
    torch.manual_seed(3)
    net = DeepRNN(3, 4, num_layers=2, cell="gru", bidirectional=True)
    model = SequenceModel(net, Head(8, 3, pooling, "softmax" if loss == "ce" else None))
    x, lengths = random_batch(4, 5, 3, with_lengths=True, seed=6)
    target = torch.tensor([0, 2, 1, 1]) if loss == "ce" else torch.rand(4, 3)
    assert_matches_reference(model, x, lengths, target=target, loss=loss)


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_per_step_head_masked_loss_matches_reference(loss):
    torch.manual_seed(4)
    model = SequenceModel(DeepRNN(3, 4, cell="lstm", layer_norm=True), Head(4, 3, "every"))
    x, lengths = random_batch(3, 5, 3, with_lengths=True, seed=8)
    target = torch.randint(0, 3, (3, 5)) if loss == "ce" else torch.randn(3, 5, 3)
    assert_matches_reference(model, x, lengths, target=target, loss=loss)


def test_oracle_detects_a_module_that_differs_from_the_reference():
    from dataclasses import replace

    net = DeepRNN(3, 4, cell="rnn")
    net.config = replace(net.config, nonlinearity="relu")  # the cells still compute tanh
    x, _ = random_batch(2, 3, 3, with_lengths=False)
    with pytest.raises(AssertionError):
        assert_matches_reference(net, x, fd=False)
