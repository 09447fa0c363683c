"""What the fused recurrences keep for BPTT, and that their backward leaves it intact."""

import pytest
import torch

from deeprnn.kernels.gru import GRURecurrence
from deeprnn.kernels.lstm import LSTMRecurrence
from deeprnn.kernels.rnn import RNNRecurrence

T, B, H = 40, 3, 5


def _t(*shape):
    return torch.randn(*shape, dtype=torch.float64, requires_grad=True)


def _lstm(layer_norm: bool, zoneout: bool):
    torch.manual_seed(0)
    u = torch.rand(T, B, H, dtype=torch.float64).round() if zoneout else None
    drop = torch.rand(B, H, dtype=torch.float64).round() * 2
    gammas = (_t(4 * H), _t(H), _t(H)) if layer_norm else (None, None, None)
    inputs = (_t(T, B, 4 * H), _t(B, H), _t(B, H), _t(4 * H, H), *gammas)
    masks = (u, None if u is None else 1 - u)
    out = LSTMRecurrence.apply(*inputs, drop, *masks, 1e-5)
    return out, [x for x in inputs if x is not None], [m for m in masks if m is not None]


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("zoneout", [False, True])
def test_lstm_keeps_z_and_one_or_two_step_sized_tensors_per_step(layer_norm, zoneout):
    """z (4H) and h, c per step; plus c~ with zoneout and LN_c, or tanh c~ without LN_c.
    Not W_hh h_{t-1} (4H, recomputed) nor tanh([LN_c] c~) (recomputed)."""
    (h, _, _), _, masks = _lstm(layer_norm, zoneout)
    storages = {t.untyped_storage().data_ptr(): t.numel() for t in h.grad_fn.saved_tensors
                if t is not None}  # fmt: skip
    for m in masks:  # the caller's zoneout masks
        storages.pop(m.untyped_storage().data_ptr())
    kept = sum(storages.values())
    per_step = B * (4 * H + 3 * H) + (4 * B if layer_norm else 0)  # + LN means, rstds
    assert kept <= T * per_step + 2 * B * H + 8 * H * H


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("zoneout", [False, True])
def test_lstm_backward_twice_with_retained_graph_gives_the_same_gradients(layer_norm, zoneout):
    (h, h_last, c_last), inputs, _ = _lstm(layer_norm, zoneout)
    loss = h.square().sum() + h_last.sum() + c_last.square().sum()
    first = torch.autograd.grad(loss, inputs, retain_graph=True)
    second = torch.autograd.grad(loss, inputs)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_gru_and_rnn_backward_twice_give_the_same_gradients(layer_norm):
    torch.manual_seed(1)
    u = torch.rand(T, B, H, dtype=torch.float64).round()
    drop = torch.rand(B, H, dtype=torch.float64).round() * 2
    gru_in = (_t(T, B, 3 * H), _t(B, H), _t(3 * H, H), _t(3 * H))
    gamma = _t(3 * H) if layer_norm else None
    h, _ = GRURecurrence.apply(*gru_in, gamma, drop, u, 1e-5)
    rnn_in = (_t(T, B, H), _t(B, H), _t(H, H))
    gamma_r = _t(H) if layer_norm else None
    h_r, _ = RNNRecurrence.apply(*rnn_in, gamma_r, drop, u, "tanh", 1e-5)
    inputs = [x for x in (*gru_in, gamma, *rnn_in, gamma_r) if x is not None]
    loss = h.square().sum() + h_r.square().sum()
    first = torch.autograd.grad(loss, inputs, retain_graph=True)
    second = torch.autograd.grad(loss, inputs)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
