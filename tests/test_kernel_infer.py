"""The few-row inference loop (deeprnn/kernels/infer.py, csrc/infer.cpp) against torch's
kernels it stands in for and the NumPy reference; when it runs, and its packed-weight cache."""

import gc

import numpy as np
import pytest
import torch
from torch import _VF

from deeprnn import DeepRNN
from deeprnn.estimators import SequenceClassifier
from deeprnn.kernels import extension, infer

from .helpers import flatten_state, reference_outputs

pytestmark = pytest.mark.skipif(extension.ops() is None, reason="needs the C++ build")

GATES = {_VF.lstm: 4, _VF.gru: 3, _VF.rnn_tanh: 1, _VF.rnn_relu: 1}
KERNELS = list(GATES)


def kernel_args(kernel, rows, time, inputs, hidden, layers, bi, bias, seed=0):
    g = torch.Generator().manual_seed(seed)
    gates, d = GATES[kernel], 2 if bi else 1
    weights = []
    for layer in range(layers):
        for _ in range(d):
            width = inputs if layer == 0 else d * hidden
            weights += [torch.randn(gates * hidden, width, generator=g) * 0.3,
                        torch.randn(gates * hidden, hidden, generator=g) * 0.3]  # fmt: skip
            if bias:
                weights += [torch.randn(gates * hidden, generator=g) * 0.3 for _ in range(2)]
    x = torch.randn(rows, time, inputs, generator=g)
    h = torch.randn(layers * d, rows, hidden, generator=g)
    hx = (h, torch.randn(layers * d, rows, hidden, generator=g)) if kernel is _VF.lstm else h
    return x, hx, weights


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.__name__)
@pytest.mark.parametrize(
    "rows, time, inputs, hidden, layers, bi, bias",
    [(1, 9, 3, 5, 1, False, True), (1, 7, 4, 20, 2, True, True), (3, 5, 6, 16, 3, True, False),
     (8, 6, 2, 33, 2, False, True), (7, 1, 5, 70, 1, True, True)],
)  # fmt: skip
def test_equals_torch_kernel(kernel, rows, time, inputs, hidden, layers, bi, bias):
    """Every kind, odd widths (padded panels), 1-3 layers, both directions, 1-8 rows."""
    x, hx, weights = kernel_args(kernel, rows, time, inputs, hidden, layers, bi, bias)
    with torch.no_grad():
        assert infer.applies(kernel, x, weights)
        got = infer.run_kernel(kernel, x, hx, weights, bias, layers, bi)
        want = kernel(x, hx, weights, bias, layers, 0.0, False, bi, True)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel", [_VF.gru, _VF.rnn_tanh, _VF.rnn_relu], ids=lambda k: k.__name__)
def test_gru_and_rnn_take_up_to_64_rows(kernel):
    """Their torch kernels are slow at every batch size measured: the loop runs to 64 rows."""
    x, hx, weights = kernel_args(kernel, 64, 4, 3, 10, 2, True, True)
    with torch.no_grad():
        assert infer.applies(kernel, x, weights)
        assert not infer.applies(kernel, torch.cat([x, x[:1]]), weights)
        got = infer.run_kernel(kernel, x, hx, weights, True, 2, True)
        want = kernel(x, hx, weights, True, 2, 0.0, False, True, True)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell, nonlinearity", [("lstm", "tanh"), ("gru", "tanh"),
                                                ("rnn", "tanh"), ("rnn", "relu")])  # fmt: skip
@pytest.mark.parametrize("bidirectional", [False, True])
def test_deeprnn_inference_equals_reference(cell, nonlinearity, bidirectional, monkeypatch):
    """A float32 DeepRNN under no_grad runs the loop; outputs and final states equal the
    float64 NumPy reference (inference has no gradients to check)."""
    torch.manual_seed(0)
    net = DeepRNN(3, 12, num_layers=2, cell=cell, nonlinearity=nonlinearity,
                  bidirectional=bidirectional).eval()  # fmt: skip
    x = torch.randn(2, 11, 3)
    packed = []
    monkeypatch.setattr(infer, "packed", lambda w: packed.append(w) or infer.pack(w))
    with torch.no_grad():
        out, final = net(x)
    assert len(packed) == 2 * (2 if bidirectional else 1)  # the loop ran: one W_hh each
    ref_out, ref_final = reference_outputs(net, x)
    torch.testing.assert_close(out.double(), ref_out, rtol=1e-5, atol=1e-5)
    for a, b in zip(flatten_state(final), flatten_state(ref_final)):
        torch.testing.assert_close(a.double(), b, rtol=1e-5, atol=1e-5)


def test_runs_in_inference_only():
    """Gradients, float64, many rows, empty sequences or other kernels go to torch."""
    x, hx, weights = kernel_args(_VF.lstm, 2, 4, 3, 8, 1, False, True)
    w_grad = [w.clone().requires_grad_(True) for w in weights]
    assert not infer.applies(_VF.lstm, x, w_grad)  # grad mode on, weights need grads
    with torch.no_grad():
        assert infer.applies(_VF.lstm, x, w_grad)
        assert not infer.applies(_VF.lstm, x.double(), [w.double() for w in weights])
        big = torch.randn(infer.MAX_ROWS["lstm"] + 1, 4, 3)
        assert not infer.applies(_VF.lstm, big, weights)
        assert not infer.applies(_VF.lstm, x[:, :0], weights)
        assert not infer.applies(_VF.lstm_cell, x, weights)
    with torch.inference_mode():
        assert infer.applies(_VF.lstm, x, weights)
    # with grads, torch's kernel runs: the result still has a graph
    out = infer.run_kernel(_VF.lstm, x, hx, w_grad, True, 1, False)[0]
    assert out.requires_grad


def test_training_step_gradients_unaffected():
    """A model trained after predicting gets torch's gradients (the loop never runs there)."""
    torch.manual_seed(0)
    net = DeepRNN(3, 8, num_layers=2)
    x = torch.randn(1, 5, 3)
    with torch.no_grad():
        before = net(x)[0]
    out = net(x)[0]
    torch.testing.assert_close(out.detach(), before, rtol=1e-5, atol=1e-6)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_packed_weights_follow_in_place_changes():
    """The packed W_hh is redone after an in-place update (optimizer step, load_state_dict)."""
    torch.manual_seed(0)
    net = DeepRNN(3, 8, num_layers=1).eval()
    other = DeepRNN(3, 8, num_layers=1).eval()
    x = torch.randn(1, 6, 3)
    with torch.no_grad():
        first = net(x)[0]
        net.load_state_dict(other.state_dict())
        loaded = net(x)[0]
        want = other.use_native(False)(x)[0]
        torch.testing.assert_close(loaded, want, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(loaded, first)
        for p in net.parameters():
            p.mul_(0.5)
        halved = net(x)[0]
        torch.testing.assert_close(halved, net.use_native(False)(x)[0], rtol=1e-5, atol=1e-6)


def test_cache_lets_weights_go():
    """The cache holds weights weakly: a deleted model's panels are dropped."""
    net = DeepRNN(3, 8, num_layers=2, bidirectional=True).eval()
    with torch.no_grad():
        net(torch.randn(1, 4, 3))
    ids = {id(c.weight_hh) for layer in net.layers for c in layer.cells}
    assert ids <= set(infer._PACKED)
    del net
    gc.collect()
    assert not ids & set(infer._PACKED)


def test_bad_packed_weights_are_refused():
    x, hx, weights = kernel_args(_VF.gru, 1, 3, 2, 8, 1, False, True)
    with pytest.raises(RuntimeError, match="pack_panels"):
        extension.ops().rnn_infer(x, [hx], weights, [weights[1]], True, 1, False, 1)


def test_estimator_predict_same_either_way(monkeypatch):
    """One-sequence predict (the loop) equals a batch predict (torch's kernel)."""
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((30, 2)).astype(np.float32) for _ in range(12)]
    est = SequenceClassifier(hidden_size=16, epochs=2, validation_fraction=0.0).fit(
        seqs, [0, 1] * 6
    )
    one = np.stack([est.predict_proba([s])[0] for s in seqs])
    monkeypatch.setattr(infer, "MAX_ROWS", dict.fromkeys(infer.MAX_ROWS, 0))
    np.testing.assert_allclose(one, est.predict_proba(seqs), rtol=1e-5, atol=1e-6)
