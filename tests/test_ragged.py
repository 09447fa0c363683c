"""Variable lengths on the padded native kernels (deeprnn.ragged) against the oracle."""

from __future__ import annotations

import pytest
import torch

import deeprnn
from deeprnn import ragged
from tests.helpers import assert_matches_reference, assert_same_outputs_and_grads


def _cut_cost(lengths, ends, call_cost, recompute=False):
    starts = [0, *ends[:-1]]
    cost = 0.0
    for s, e in zip(starts, ends):
        cost += call_cost + sum(n > s for n in lengths) * (e - s)
        cost += recompute * sum(n - s for n in lengths if s < n < e)
    return cost


def test_segment_ends_is_the_cheapest_cut():
    lengths = [7, 3, 3, 0, 12, 11, 2, 9]
    assert ragged.segment_ends(lengths, call_cost=0) == [2, 3, 7, 9, 11, 12]  # every length
    assert ragged.segment_ends(lengths, call_cost=1e9) == [12]  # one call
    assert ragged.segment_ends([0, 0]) == []
    distinct = [2, 3, 7, 9, 11]
    for call_cost in (1, 4, 10, 30):  # against every subset of the distinct lengths
        for recompute in (False, True):
            got = ragged.segment_ends(lengths, call_cost, recompute)
            assert got[-1] == 12
            for mask in range(2 ** len(distinct)):
                ends = [n for k, n in enumerate(distinct) if mask >> k & 1] + [12]
                assert _cut_cost(lengths, got, call_cost, recompute) <= _cut_cost(
                    lengths, ends, call_cost, recompute
                )


def _lengths(batch: int, time: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, time + 1, (batch,), generator=g)
    lengths[0], lengths[-1], lengths[2] = time, 0, lengths[1]  # full, empty, a tie
    return lengths


@pytest.mark.parametrize("call_cost", [0.0, 8.0, 1e9])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_ragged_native_matches_reference(monkeypatch, call_cost, cell, bidirectional):
    monkeypatch.setattr(ragged, "CALL_COST", call_cost)
    torch.manual_seed(0)
    net = deeprnn.DeepRNN(3, 5, num_layers=2, cell=cell, bidirectional=bidirectional)
    assert all(row["path"] == "native" for row in net.explain())
    x = torch.randn(7, 9, 3, dtype=torch.float64)
    assert_matches_reference(net, x, _lengths(7, 9, seed=int(call_cost) % 97), fd=False)


@pytest.mark.parametrize("call_cost", [0.0, 12.0, 1e9])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_ragged_native_equals_the_loop(monkeypatch, call_cost, cell):
    monkeypatch.setattr(ragged, "CALL_COST", call_cost)
    torch.manual_seed(1)
    fast = deeprnn.DeepRNN(4, [6, 5], cell=cell, bidirectional=True, residual=False).double()
    slow = deeprnn.DeepRNN(4, [6, 5], cell=cell, bidirectional=True).double()
    slow.load_state_dict(fast.state_dict())
    slow.use_native(False)
    x = torch.randn(10, 13, 4, dtype=torch.float64)
    assert_same_outputs_and_grads(fast, slow, x, _lengths(10, 13, seed=int(call_cost) % 97))


def test_ragged_equals_torch_packed_lstm():
    torch.manual_seed(2)
    lstm = torch.nn.LSTM(4, 6, batch_first=True)
    net = deeprnn.DeepRNN(4, 6, num_layers=1, cell="lstm")
    with torch.no_grad():
        for name, p in net.layers[0].cell.named_parameters():
            p.copy_(getattr(lstm, f"{name}_l0"))
    x = torch.randn(8, 20, 4)
    lengths = torch.tensor([20, 1, 5, 5, 19, 11, 3, 14])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, True, enforce_sorted=False)
    want, (h, c) = lstm(packed)
    want, _ = torch.nn.utils.rnn.pad_packed_sequence(want, True, total_length=20)
    out, state = net(x, lengths=lengths)
    h2, c2 = state[0]
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h2, h[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(c2, c[0], rtol=1e-5, atol=1e-6)


def test_ragged_all_rows_empty_keep_the_initial_state():
    net = deeprnn.DeepRNN(2, 3, num_layers=1, cell="lstm").double()
    x = torch.randn(3, 4, 2, dtype=torch.float64)
    h0 = (torch.randn(3, 3, dtype=torch.float64), torch.randn(3, 3, dtype=torch.float64))
    out, state = net(x, state=[h0], lengths=torch.zeros(3, dtype=torch.long))
    assert torch.count_nonzero(out) == 0
    torch.testing.assert_close(state[0][0], h0[0])
    torch.testing.assert_close(state[0][1], h0[1])


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_rows_without_steps_keep_every_weight_in_the_graph(cell):
    # A TBPTT window past every row's end: DDP needs a gradient of every parameter on
    # every rank, or the ranks' all-reduces fall out of step.
    torch.manual_seed(0)
    net = deeprnn.DeepRNN(3, 4, num_layers=2, cell=cell)
    x = torch.randn(2, 3, 3, requires_grad=True)
    out, state = net(x, lengths=torch.tensor([0, 0]))
    assert torch.count_nonzero(out) == 0
    (
        out.sum()
        + sum(s.sum() for layer in state for s in (layer if isinstance(layer, tuple) else (layer,)))
    ).backward()
    assert x.grad is not None
    assert [n for n, p in net.named_parameters() if p.grad is None] == []
