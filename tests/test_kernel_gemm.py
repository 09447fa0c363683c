"""The loops' large products on oneDNN or ATen's BLAS (deeprnn/kernels/gemm.py, csrc/common.h's
`gemm`): both give the float64 results to float32 rounding, outputs and every gradient.

`set_backend("onednn", min_macs=0)` sends every routed product through oneDNN, however small,
so that the small nets here take the path the large ones take (and "blas" the other one).
"""

import copy
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import _VF

from deeprnn import DeepRNN
from deeprnn.kernels import extension, gemm, infer

from .helpers import random_batch, run_with_grads

pytestmark = pytest.mark.skipif(extension.ops() is None, reason="needs the C++ build")


@pytest.fixture
def backend():
    """Sets a backend (with every product routed: min_macs=0) and restores "auto" after."""

    def use(name):
        gemm.set_backend(name, min_macs=0)
        return gemm.backend()

    yield use
    gemm.set_backend("auto")


def _close(a, truth, tol=1e-4):
    a, truth = a.detach().double(), truth.detach().double()
    scale = float(truth.abs().max()) + 1e-12
    return float((a - truth).abs().max()) / scale < tol


@pytest.mark.parametrize("name", ["blas", "onednn"])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_equals_float64_with_its_gradients(backend, name, bias):
    assert backend(name) == name
    g = torch.Generator().manual_seed(0)
    x64 = torch.randn(7, 5, 6, dtype=torch.float64, generator=g)
    w64 = torch.randn(12, 6, dtype=torch.float64, generator=g)
    b64 = torch.randn(12, dtype=torch.float64, generator=g) if bias else None
    d64 = torch.randn(5, 7, 12, dtype=torch.float64, generator=g)  # dL/d out, time-major
    leaves = [t.float().requires_grad_(True) for t in (x64, w64) + ((b64,) if bias else ())]
    x = leaves[0].transpose(0, 1)  # a strided input, as fused.py passes (T, B, I)
    out = gemm.linear(x, leaves[1], leaves[2] if bias else None)
    out.backward(d64.float())
    ref = F.linear(x64.transpose(0, 1), w64, b64)
    assert out.dtype == torch.float32 and out.shape == ref.shape and _close(out, ref)
    flat_d = d64.reshape(-1, 12)
    flat_x = x64.transpose(0, 1).reshape(-1, 6)
    assert _close(leaves[0].grad, (d64 @ w64).transpose(0, 1))
    assert _close(leaves[1].grad, flat_d.t() @ flat_x)
    if bias:
        assert _close(leaves[2].grad, flat_d.sum(0))


def test_float64_keeps_torch_linear(backend):
    backend("onednn")
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 4, dtype=torch.float64)
    out = gemm.linear(x, w)
    assert out.grad_fn.name() != "_LinearBackward"  # F.linear's own autograd
    torch.testing.assert_close(out, F.linear(x, w))


NETS = {  # on the fused recurrences in eval mode too (no masks: float64 is the same function)
    "ln_lstm": dict(cell="lstm", layer_norm=True),
    "ln_gru": dict(cell="gru", layer_norm=True),
    "ln_lstm_bi": dict(cell="lstm", layer_norm=True, bidirectional=True),
    "ln_rnn": dict(cell="rnn", layer_norm=True),
}
NOISY = {"zoneout": dict(cell="lstm", zoneout=0.2), "drop": dict(cell="gru", recurrent_dropout=0.3)}


def _seeded(net, x, lengths):
    def call(x, lengths=None):
        torch.manual_seed(7)  # the same dropout / zoneout masks in every run
        return net(x, lengths=lengths)

    call.named_parameters = net.named_parameters
    return run_with_grads(call, x, lengths)


def _flat(run):
    out, states, grads = run
    return [out, *states, *grads.values()]


@pytest.mark.parametrize("kw", list(NETS.values()), ids=list(NETS))
def test_fused_nets_on_both_backends_equal_float64(backend, kw):
    """The fused recurrences (input projection, its dX / dW, BPTT's block dW_hh) in float32 on
    oneDNN and on BLAS: each within 1e-4 of the float64 run, with ragged and zero lengths;
    the two float32 runs differ (so two paths ran)."""
    torch.manual_seed(0)
    net = DeepRNN(5, 9, num_layers=2, **kw).train()
    x, lengths = random_batch(4, 13, 5, with_lengths=True)
    truth = _flat(_seeded(copy.deepcopy(net).double(), x, lengths))
    runs = {}
    for name in ("blas", "onednn"):
        assert backend(name) == name
        runs[name] = _flat(_seeded(net.float(), x.float(), lengths))
        for a, t in zip(runs[name], truth):
            assert a.dtype == torch.float32 and a.shape == t.shape
            assert _close(a, t), name
    assert any(not torch.equal(a, b) for a, b in zip(runs["blas"], runs["onednn"]))


@pytest.mark.parametrize("kw", list(NOISY.values()), ids=list(NOISY))
def test_noisy_training_runs_agree_across_backends(backend, kw):
    """With zoneout / recurrent-dropout masks (drawn per dtype, so no float64 twin) the two
    float32 backends agree to rounding, and differ (so two paths ran)."""
    torch.manual_seed(0)
    net = DeepRNN(5, 9, num_layers=2, **kw).train()
    x, lengths = random_batch(4, 13, 5, with_lengths=True)
    runs = []
    for name in ("blas", "onednn"):
        backend(name)
        runs.append(_flat(_seeded(net.float(), x.float(), lengths)))
    for a, b in zip(*runs):
        assert _close(a, b.double())
    assert any(not torch.equal(a, b) for a, b in zip(*runs))


def test_inference_loop_on_onednn_equals_torch(backend):
    backend("onednn")
    g = torch.Generator().manual_seed(0)
    weights = []
    for layer in range(2):
        for _ in range(2):
            weights += [torch.randn(4 * 16, 6 if layer == 0 else 32, generator=g) * 0.3,
                        torch.randn(4 * 16, 16, generator=g) * 0.3,
                        torch.randn(4 * 16, generator=g) * 0.3,
                        torch.randn(4 * 16, generator=g) * 0.3]  # fmt: skip
    x = torch.randn(2, 9, 6, generator=g)
    hx = (torch.randn(4, 2, 16, generator=g), torch.randn(4, 2, 16, generator=g))
    with torch.no_grad():
        assert infer.applies(_VF.lstm, x, weights)
        got = infer.run_kernel(_VF.lstm, x, hx, weights, True, 2, True)
        want = _VF.lstm(x, hx, weights, True, 2, 0.0, False, True, True)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_bad_settings_get_clear_errors(backend):
    with pytest.raises(ValueError, match="expected one of auto, blas, onednn"):
        gemm.set_backend("mkl")
    with pytest.raises(ValueError, match="min_macs must be >= 0"):
        gemm.set_backend("blas", min_macs=-3)
    assert gemm.set_backend("blas") == "auto"
    assert gemm.backend() == "blas"
    assert gemm.set_backend("auto") == "blas"


def test_the_environment_chooses_the_backend_and_a_bad_value_is_named():
    code = "from deeprnn.kernels import gemm; print(gemm.backend())"
    ok = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        env={**os.environ, "DEEPRNN_GEMM": "blas"})  # fmt: skip
    assert ok.returncode == 0 and ok.stdout.strip() == "blas"
    bad = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "DEEPRNN_GEMM": "fast"})  # fmt: skip
    assert bad.returncode != 0 and "DEEPRNN_GEMM='fast'" in bad.stderr
