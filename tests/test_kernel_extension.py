"""The C++ step loops (deeprnn/kernels/csrc) against the TorchScript loops they replace.

Both compute the same LSTM and GRU recurrences; every other fused test (test_kernels.py, the
oracle tests) runs through whichever path is active, and test_kernels.py runs on both.
"""

import itertools
import shutil
import subprocess
import sys
from collections import Counter

import pytest
import torch

from deeprnn.kernels import extension, gru, lstm
from deeprnn.kernels.projection import block_steps


def _run_seeded(net, x, lengths):
    """Outputs and gradients of `net`, every call seeded alike: the same dropout / zoneout
    masks on both paths."""
    from .helpers import run_with_grads

    def seeded(x, lengths=None):
        torch.manual_seed(7)
        return net(x, lengths=lengths)

    seeded.named_parameters = net.named_parameters
    return run_with_grads(seeded, x, lengths)


def test_the_cpp_loops_build_where_a_compiler_is():
    if shutil.which("c++") and shutil.which("ninja"):
        assert extension.ops() is not None
        assert extension.takes(torch.zeros(1)) and extension.takes(torch.zeros(1).double())
        assert not extension.takes(torch.zeros(1, dtype=torch.bfloat16))
    else:  # no toolchain: the TorchScript loops run, after one warning
        assert extension.ops() is None


def test_without_the_extension_a_warning_names_the_fallback(monkeypatch):
    from torch.utils import cpp_extension

    def broken(**_):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(cpp_extension, "load", broken)
    extension.ops.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="TorchScript loops run instead"):
            assert extension.ops() is None
        assert not extension.takes(torch.zeros(1))
    finally:
        extension.ops.cache_clear()
    monkeypatch.setenv("DEEPRNN_NO_EXT", "1")
    try:
        assert extension.ops() is None
    finally:
        extension.ops.cache_clear()


def test_loading_the_library_keeps_subnormal_floats():
    """-ffast-math must not have linked flush-to-zero start-up code into the library."""
    code = (
        "import torch\nfrom deeprnn.kernels import extension\nextension.ops()\n"
        "assert float(torch.tensor(1e-40) * 1) > 0, 'flushed'\n"
        "assert float(torch.tensor(1e-310, dtype=torch.float64) * 1) > 0, 'flushed'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def _inputs(dtype, drop, zoneout, T=9, B=3, H=5, seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g)).to(dtype)

    u_h = u_c = None
    if zoneout == "mask":  # training: a 0 / 1 draw per unit and step
        u_h = (torch.rand(T, B, H, generator=g) < 0.7).to(dtype)
        u_c = (torch.rand(T, B, H, generator=g) < 0.6).to(dtype)
    elif zoneout == "lengths":  # a length mask (T, B, 1), broadcast over units
        u_h = u_c = (torch.arange(T)[:, None, None] < torch.tensor([T, 4, 0])[:, None]).to(dtype)
    elif zoneout == "eval":  # eval: the expectation, an expanded scalar
        u_h = torch.full((1, 1, 1), 0.8, dtype=dtype).expand(T, B, 1)
    return dict(
        a_x=r(T, B, 4 * H), h0=r(B, H), c0=r(B, H), weight=r(4 * H, H, scale=0.4),
        drop=(torch.rand(B, H, generator=g) < 0.75).to(dtype) / 0.75 if drop else None,
        u_h=u_h, u_c=u_c, d_h=r(T, B, H), d_hT=r(B, H), d_cT=r(B, H),
    )  # fmt: skip


def _run(cpp, x, block):
    """Forward and backward of the plain mode: (saved tensors, gradients) as one list."""
    a_x, h0, c0, weight, drop, u_h, u_c = (
        x[k] for k in ("a_x", "h0", "c0", "weight", "drop", "u_h", "u_c"))  # fmt: skip
    if cpp:
        saved = extension.ops().lstm_forward(a_x, h0, c0, weight.t(), drop, u_h, u_c, True)[:5]
        ln_args, stats = (), ()
    else:
        *saved, s_hh, s_c = lstm._forward(
            a_x, h0, c0, weight.t(), None, None, None, drop, u_h, u_c, 1e-5)  # fmt: skip
        ln_args, stats = (None, None, None), (s_hh, s_c)
    backward = extension.ops().lstm_backward if cpp else lstm._backward
    grads = backward(x["d_h"], x["d_hT"], x["d_cT"], h0, c0, *saved, weight, *ln_args, drop,
                     u_h, u_c, *stats, block)  # fmt: skip
    if cpp:
        assert all(t.numel() == 0 for t in grads[4:])  # no layer-norm parameters here
    z, c_new, c, tanh_c, h = saved
    c_new = c_new[:0] if u_c is not None else c_new  # a scratch buffer where zoneout is on
    return [z, c_new, c, tanh_c, h, *grads[:4]]


needs_cpp = pytest.mark.skipif(
    extension.ops() is None, reason="no C++ toolchain: the test above covers that case"
)


@needs_cpp
@pytest.mark.parametrize(
    "drop, zoneout", list(itertools.product([False, True], [None, "mask", "lengths", "eval"]))
)
@pytest.mark.parametrize("block", [1, 4, 100])
def test_plain_mode_equals_torchscript_in_float64(drop, zoneout, block):
    x = _inputs(torch.float64, drop, zoneout)
    ours, script = _run(True, x, block), _run(False, x, block)
    for a, b in zip(ours, script):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@needs_cpp
@pytest.mark.parametrize("drop, zoneout", [(False, None), (True, "mask")])
def test_plain_mode_and_torchscript_in_float32_are_close_to_float64(drop, zoneout):
    """float32 against the float64 result: both loops within 5e-5 of its scale."""
    x64 = _inputs(torch.float64, drop, zoneout, T=40, B=8, H=16)
    x32 = {k: None if v is None else v.float() for k, v in x64.items()}
    block = block_steps(40, 8 * 16, block_size=512)  # several blocks
    truth = _run(False, x64, block)
    for a, b, t in zip(_run(True, x32, block), _run(False, x32, block), truth):
        if not t.numel():
            continue
        scale = float(t.abs().max()) + 1e-12
        err_cpp = float((a.double() - t).abs().max()) / scale
        err_script = float((b.double() - t).abs().max()) / scale
        assert err_cpp < 5e-5 and err_script < 5e-5, (err_cpp, err_script)


def _ln_net_grads(cpp: bool, monkeypatch, block: int, **kw):
    """Outputs, final states and every gradient of a 2-layer LN-LSTM (float64) on the C++
    layer-norm mode or on the TorchScript loops, BPTT in blocks of `block` steps."""
    from deeprnn import DeepRNN

    from .helpers import random_batch

    torch.manual_seed(0)
    net = DeepRNN(5, 4, num_layers=2, cell="lstm", layer_norm=True, **kw).double()
    assert {r["path"] for r in net.explain()} == {"fused"}
    x, lengths = random_batch(3, 11, 5, with_lengths=True)
    with monkeypatch.context() as m:
        m.setattr(lstm, "block_steps", lambda *_: block)
        if not cpp:
            m.setattr(extension, "takes", lambda _: False)
        return _run_seeded(net, x, lengths)


@needs_cpp
@pytest.mark.parametrize("kw", [dict(), dict(recurrent_dropout=0.3, zoneout=(0.2, 0.3))])
@pytest.mark.parametrize("block", [1, 3, 100])
def test_layer_norm_mode_equals_torchscript_across_blocks(monkeypatch, kw, block):
    """The C++ layer-norm mode (input LN inside, gates recomputed in BPTT) against the
    TorchScript loops (input LN outside, v recomputed): BPTT split into blocks of 1, 3 and
    all steps; test_kernels.py compares both with the cell loop and the NumPy reference."""
    out_a, st_a, g_a = _ln_net_grads(True, monkeypatch, block, **kw)
    out_b, st_b, g_b = _ln_net_grads(False, monkeypatch, block, **kw)
    torch.testing.assert_close(out_a, out_b, rtol=1e-10, atol=1e-12)
    for s, t in zip(st_a, st_b):
        torch.testing.assert_close(s, t, rtol=1e-10, atol=1e-12)
    assert g_a.keys() == g_b.keys() and len(g_a) > 10
    for name in g_a:
        torch.testing.assert_close(g_a[name], g_b[name], rtol=1e-10, atol=1e-12, msg=name)


@needs_cpp
@pytest.mark.parametrize("kw", [dict(layer_norm=True), dict(zoneout=0.2),
                                dict(layer_norm=True, zoneout=(0.1, 0.3))])  # fmt: skip
def test_inference_keeps_nothing_for_bptt_and_computes_the_same(kw):
    """Under no_grad the C++ loops keep one step's gates / v instead of all T (`keep`):
    outputs and final states equal those of the run that keeps everything."""
    from deeprnn import DeepRNN

    from .helpers import random_batch

    torch.manual_seed(0)
    net = DeepRNN(5, 4, num_layers=2, cell="lstm", **kw).double().eval()
    x, lengths = random_batch(3, 11, 5, with_lengths=True)
    out_a, state_a = net(x.requires_grad_(), lengths=lengths)
    with torch.no_grad():
        out_b, state_b = net(x, lengths=lengths)
    torch.testing.assert_close(out_a.detach(), out_b, rtol=1e-13, atol=1e-13)
    for a, b in zip(state_a, state_b):
        for s, t in zip(a, b):
            torch.testing.assert_close(s.detach(), t, rtol=1e-13, atol=1e-13)


@needs_cpp
def test_reused_buffers_never_alias_live_tensors():
    """Large buffers go back to a cache when freed and are handed out again: outputs still
    alive must keep their values while later calls reuse freed buffers."""
    from deeprnn import DeepRNN

    torch.manual_seed(0)
    net = DeepRNN(8, 32, num_layers=2, cell="lstm", layer_norm=True)  # (T, B, 4H) > 1 MiB
    xs = [torch.randn(16, 600, 8) for _ in range(3)]
    first, _ = net(xs[0])
    kept = first.detach().clone()
    for x in xs[1:]:  # trains: saved buffers and gradients are freed into the cache
        out, _ = net(x)
        out.square().mean().backward()
        assert not torch.equal(out.detach(), kept)
    torch.testing.assert_close(first.detach(), kept, rtol=0, atol=0)
    again, _ = net(xs[0])
    torch.testing.assert_close(again.detach(), kept, rtol=0, atol=0)
    assert extension.empty_cache() > 0  # something was kept for reuse, and is now released
    assert extension.empty_cache() == 0


# --- the GRU: csrc/gru.cpp against gru.py's TorchScript loops ------------------------------


def _gru_inputs(dtype, layer_norm, drop, zoneout, bias=True, T=9, B=3, H=5, seed=0):
    """GRURecurrence's inputs and output gradients; zoneout as in `_inputs` (u_h only)."""
    x = _inputs(dtype, drop, zoneout, T, B, H, seed)
    g = torch.Generator().manual_seed(seed + 1)

    def r(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g)).to(dtype)

    return dict(
        a_x=r(T, B, 3 * H), h0=x["h0"], weight=r(3 * H, H, scale=0.4),
        beta=r(3 * H, scale=0.5) if bias else None,
        gamma=(1 + 0.3 * r(3 * H)) if layer_norm else None,
        drop=x["drop"], u_h=x["u_h"], d_h=x["d_h"], d_hT=x["d_hT"],
    )  # fmt: skip


def _gru_run(cpp, x, block):
    """Forward and backward of one GRU recurrence: [gates, h, a_h[n], every gradient]."""
    a_x, h0, weight, beta, gamma, drop, u_h = (
        x[k] for k in ("a_x", "h0", "weight", "beta", "gamma", "drop", "u_h"))  # fmt: skip
    H = h0.shape[1]
    if cpp:
        gates, kept, h, stats = extension.ops().gru_forward(
            a_x, h0, weight.t(), beta, gamma, drop, u_h, 1e-5, True
        )
        d_ax, dh0, d_w, d_gamma, d_beta = extension.ops().gru_backward(
            x["d_h"], x["d_hT"], h0, gates, kept, h, weight, beta, gamma, drop, u_h, stats, block
        )
        if gamma is None:  # a_h[n] kept; no layer-norm statistics or d gamma
            a_n = kept
            assert stats.numel() == 0 and d_gamma.numel() == 0
        else:  # v = W_hh m h_{t-1} kept: a_h[n] = LN_hh(v)[n] + beta[n]
            h_prev = torch.cat([h0[None], h[:-1]])
            v = (h_prev if drop is None else h_prev * drop) @ weight.t()
            torch.testing.assert_close(kept, v, rtol=1e-12, atol=1e-12)
            mean, rstd = stats[:, 0, :, None], stats[:, 1, :, None]
            a_n = (((v - mean) * rstd) * gamma + (0 if beta is None else beta))[..., 2 * H :]
    else:
        a_h, gates, h, stats = gru._forward(a_x, h0, weight.t(), beta, gamma, drop, u_h, 1e-5)
        d_ax, dh0, d_w, d_gamma, d_beta = gru._backward(
            x["d_h"], x["d_hT"], h0, a_h, gates, h, weight, gamma, drop, u_h, stats, block
        )
        a_n = a_h[..., 2 * H :]
    d_gamma = torch.zeros(0, dtype=a_x.dtype) if d_gamma is None else d_gamma
    return [gates, h, a_n, d_ax, dh0, d_w, d_gamma, d_beta]


GRU_CASES = [  # (layer_norm, drop, zoneout, bias)
    *itertools.product([False, True], [False, True], [None, "mask", "lengths", "eval"], [True]),
    (False, False, None, False), (True, True, "lengths", False),
]  # fmt: skip


@needs_cpp
@pytest.mark.parametrize("layer_norm, drop, zoneout, bias", GRU_CASES)
@pytest.mark.parametrize("block", [1, 4, 100])
def test_gru_loops_equal_torchscript_in_float64(layer_norm, drop, zoneout, bias, block):
    """Outputs, the kept gates and a_h[n], and dL/d a_x, h0, W_hh, gamma_hh, beta: with and
    without LN_hh, recurrent dropout, zoneout masks, lengths (a zero-length row), eval
    zoneout, without biases; BPTT in blocks of 1, 4 and all steps."""
    x = _gru_inputs(torch.float64, layer_norm, drop, zoneout, bias)
    ours, script = _gru_run(True, x, block), _gru_run(False, x, block)
    assert ours[-2].numel() == (15 if layer_norm else 0)  # d gamma_hh only with layer norm
    for a, b in zip(ours, script):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    if zoneout == "lengths":  # the zero-length row keeps h0 at every step, exactly
        assert torch.equal(ours[1][:, 2], x["h0"][2].expand(9, 5))


@needs_cpp
@pytest.mark.parametrize("layer_norm, drop, zoneout", [(False, False, None), (True, True, "mask"),
                                                       (True, False, "eval")])  # fmt: skip
def test_gru_loops_and_torchscript_in_float32_are_close_to_float64(layer_norm, drop, zoneout):
    """float32 against the float64 result: both loops within 5e-5 of its scale."""
    x64 = _gru_inputs(torch.float64, layer_norm, drop, zoneout, T=40, B=8, H=16)
    x32 = {k: None if v is None else v.float() for k, v in x64.items()}
    block = block_steps(40, 8 * 16, block_size=512)  # several blocks
    truth = _gru_run(False, x64, block)
    for a, b, t in zip(_gru_run(True, x32, block), _gru_run(False, x32, block), truth):
        assert a.dtype == torch.float32 and a.shape == t.shape
        if not t.numel():
            continue
        scale = float(t.abs().max()) + 1e-12
        err_cpp = float((a.double() - t).abs().max()) / scale
        err_script = float((b.double() - t).abs().max()) / scale
        assert err_cpp < 5e-5 and err_script < 5e-5, (err_cpp, err_script)


class _Counting:
    """torch.ops.deeprnn, counting the calls of each op (to show which loops ran)."""

    def __init__(self, lib):
        self.lib, self.calls = lib, Counter()

    def __getattr__(self, name):
        op = getattr(self.lib, name)

        def call(*args):
            self.calls[name] += 1
            return op(*args)

        return call


def _gru_net_grads(cpp: bool, monkeypatch, block: int, **kw):
    """Outputs, final states and every gradient (x and each parameter) of a 2-layer GRU
    (float64, ragged lengths with a zero-length row) on the C++ loops or on TorchScript;
    the op calls counted."""
    from deeprnn import DeepRNN

    from .helpers import random_batch

    torch.manual_seed(0)
    net = DeepRNN(5, 4, num_layers=2, cell="gru", **kw).double()
    for layer in net.layers:
        layer.torch_kernel = False  # our fused path, also where torch's kernel could run
    assert {r["path"] for r in net.explain()} == {"fused"}
    x, lengths = random_batch(4, 11, 5, with_lengths=True)
    counting = _Counting(extension.ops())
    with monkeypatch.context() as m:
        m.setattr(gru, "block_steps", lambda *_: block)
        m.setattr(extension, "ops", lambda: counting)
        if not cpp:
            m.setattr(extension, "takes", lambda _: False)
        return (*_run_seeded(net, x, lengths), counting.calls)


GRU_NETS = [dict(layer_norm=True), dict(layer_norm=True, recurrent_dropout=0.3, zoneout=0.25),
            dict(recurrent_dropout=0.3), dict(zoneout=0.3, bidirectional=True),
            dict(layer_norm=True, zoneout=0.2, bidirectional=True, bias=False)]  # fmt: skip


@needs_cpp
@pytest.mark.parametrize("kw", GRU_NETS, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
@pytest.mark.parametrize("block", [1, 3, 100])
def test_gru_net_on_the_cpp_loops_equals_torchscript(monkeypatch, kw, block):
    """A whole GRU net (training mode: dropout and zoneout masks drawn) on both loops: its
    outputs, final states and the gradients of x and of every parameter."""
    out_a, st_a, g_a, calls_a = _gru_net_grads(True, monkeypatch, block, **kw)
    out_b, st_b, g_b, calls_b = _gru_net_grads(False, monkeypatch, block, **kw)
    directions = 4 if kw.get("bidirectional") else 2
    assert calls_a["gru_forward"] == calls_a["gru_backward"] == directions
    assert not calls_b  # the TorchScript run called no C++ op
    torch.testing.assert_close(out_a, out_b, rtol=1e-10, atol=1e-12)
    assert len(st_a) == len(st_b) == 2
    for s, t in zip(st_a, st_b):
        torch.testing.assert_close(s, t, rtol=1e-10, atol=1e-12)
    assert g_a.keys() == g_b.keys() and len(g_a) >= 7
    for name in g_a:
        assert g_a[name].abs().sum() > 0, name  # every parameter is reached
        torch.testing.assert_close(g_a[name], g_b[name], rtol=1e-10, atol=1e-12, msg=name)


@needs_cpp
@pytest.mark.parametrize("kw", [dict(layer_norm=True, bidirectional=True, zoneout=0.3),
                                dict(layer_norm=True, bias=False)])  # fmt: skip
def test_gru_net_on_the_cpp_loops_matches_the_reference(monkeypatch, kw):
    """The layer-norm GRU on the C++ loops against the NumPy reference (eval: zoneout's
    expectation), outputs and every gradient incl. the initial state's, ragged lengths."""
    from deeprnn import DeepRNN

    from .helpers import assert_matches_reference, random_batch

    torch.manual_seed(3)
    net = DeepRNN(5, 4, num_layers=2, cell="gru", **kw)
    x, lengths = random_batch(4, 7, 5, with_lengths=True)
    d = 2 if kw.get("bidirectional") else 1
    state = [layer.initial_state(4, x).normal_() for layer in net.layers]  # (d, B, H) / (B, H)
    counting = _Counting(extension.ops())
    monkeypatch.setattr(extension, "ops", lambda: counting)
    assert_matches_reference(net, x, lengths, state=state, rtol=1e-9, atol=1e-11, fd=False)
    assert counting.calls["gru_forward"] == counting.calls["gru_backward"] == 2 * d


@needs_cpp
@pytest.mark.parametrize("kw", [dict(layer_norm=True), dict(zoneout=0.2, bidirectional=True),
                                dict(layer_norm=True, zoneout=0.3)])  # fmt: skip
def test_gru_inference_keeps_nothing_for_bptt_and_computes_the_same(kw):
    """Under no_grad gru_forward keeps no gates / a_h (`keep`): the same outputs and states."""
    from deeprnn import DeepRNN

    from .helpers import random_batch

    torch.manual_seed(0)
    net = DeepRNN(5, 4, num_layers=2, cell="gru", **kw).double().eval()
    x, lengths = random_batch(3, 11, 5, with_lengths=True)
    out_a, state_a = net(x.requires_grad_(), lengths=lengths)
    with torch.no_grad():
        out_b, state_b = net(x, lengths=lengths)
    torch.testing.assert_close(out_a.detach(), out_b, rtol=1e-13, atol=1e-13)
    for a, b in zip(state_a, state_b):
        torch.testing.assert_close(a.detach(), b, rtol=1e-13, atol=1e-13)
    a_x, h0, w = torch.randn(6, 2, 12), torch.randn(2, 4), torch.randn(12, 4)
    gates, kept, h, stats = extension.ops().gru_forward(a_x, h0, w.t(), None, torch.ones(12),
                                                        None, None, 1e-5, False)  # fmt: skip
    assert gates.shape[0] == kept.shape[0] == stats.shape[0] == 0 and h.shape == (6, 2, 4)


@needs_cpp
def test_gru_buffers_share_the_one_cache_that_empty_cache_releases():
    """gru.cpp takes its large buffers from the cache of common.h, the same one as lstm.cpp:
    after a GRU train step alone, empty_cache has something to release."""
    from deeprnn import DeepRNN

    extension.empty_cache()
    torch.manual_seed(0)
    net = DeepRNN(8, 32, num_layers=2, cell="gru", layer_norm=True)  # (T, B, 3H) > 1 MiB
    counting = _Counting(extension.ops())
    with pytest.MonkeyPatch.context() as m:
        m.setattr(extension, "ops", lambda: counting)
        out, _ = net(torch.randn(16, 600, 8))
        out.square().mean().backward()
        del out
    assert counting.calls["gru_backward"] == 2 and not counting.calls["ln_lstm_forward"]
    assert extension.empty_cache() > 0
    assert extension.empty_cache() == 0


@needs_cpp
@pytest.mark.parametrize("rows", [3, 16, 40])  # W_hh products on packed panels (<= 16), or not
@pytest.mark.parametrize("hidden", [7, 16])  # (dropout / zoneout masks differ by dtype)
def test_layer_norm_mode_in_float32_is_close_to_float64(rows, hidden):
    """The float32 C++ layer-norm LSTM (its W_hh products on packed panels up to 16 rows)
    against the same net in float64: outputs, final states and every gradient, with ragged
    and zero lengths, an odd width (padded panels) and a full one."""
    import copy

    from deeprnn import DeepRNN

    from .helpers import random_batch

    torch.manual_seed(0)
    net = DeepRNN(5, hidden, num_layers=2, cell="lstm", layer_norm=True)
    x, lengths = random_batch(rows, 11, 5, with_lengths=True)
    truth = _run_seeded(copy.deepcopy(net).double(), x, lengths)
    got = _run_seeded(net.float(), x.float(), lengths)
    flat = [lambda r: [r[0]], lambda r: list(r[1]), lambda r: list(r[2].values())]
    for pick in flat:
        for a, t in zip(pick(got), pick(truth)):
            assert a.dtype == torch.float32
            scale = float(t.abs().max()) + 1e-12
            assert float((a.double() - t).abs().max()) / scale < 1e-4
