"""The C++ step loops (deeprnn/kernels/csrc) against the TorchScript loops they replace.

Both compute the same LSTM recurrence; every other fused test (test_kernels.py, the oracle
tests) runs through whichever path is active, and test_kernels.py runs on both.
"""

import itertools
import shutil
import subprocess
import sys

import pytest
import torch

from deeprnn.kernels import extension, lstm
from deeprnn.kernels.projection import block_steps


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


def _inputs(dtype, ln, drop, zoneout, T=9, B=3, H=5, seed=0):
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
        gamma_hh=1 + r(4 * H, scale=0.2) if ln else None,
        gamma_c=1 + r(H, scale=0.2) if ln else None,
        beta_c=r(H, scale=0.2) if ln == "bias" else None,
        drop=(torch.rand(B, H, generator=g) < 0.75).to(dtype) / 0.75 if drop else None,
        u_h=u_h, u_c=u_c, d_h=r(T, B, H), d_hT=r(B, H), d_cT=r(B, H),
    )  # fmt: skip


def _run(ops, x, block):
    fwd, bwd = (lstm._forward, lstm._backward) if ops is None else (
        ops.lstm_forward, ops.lstm_backward)  # fmt: skip
    saved = fwd(x["a_x"], x["h0"], x["c0"], x["weight"].t(), x["gamma_hh"], x["gamma_c"],
                x["beta_c"], x["drop"], x["u_h"], x["u_c"], 1e-5)  # fmt: skip
    z, c_new, c, tanh_c, h, stats_hh, stats_c = saved
    grads = bwd(x["d_h"], x["d_hT"], x["d_cT"], x["h0"], x["c0"], z, c_new, c, tanh_c, h,
                x["weight"], x["gamma_hh"], x["gamma_c"], x["beta_c"], x["drop"], x["u_h"],
                x["u_c"], stats_hh, stats_c, block)  # fmt: skip
    # gradients of absent parameters: None or zeros from TorchScript, empty from C++
    present = [True] * 4 + [x[k] is not None for k in ("gamma_hh", "gamma_c", "beta_c")]
    grads = [d for d, keep in zip(grads, present) if keep]
    return [t for t in (*saved, *grads) if t.numel()]


CASES = list(itertools.product([None, True, "bias"], [False, True],
                               [None, "mask", "lengths", "eval"]))  # fmt: skip


@pytest.mark.skipif(extension.ops() is None, reason="no C++ toolchain: covered by the test above")
@pytest.mark.parametrize("ln, drop, zoneout", CASES)
@pytest.mark.parametrize("block", [1, 4, 100])
def test_cpp_equals_torchscript_in_float64(ln, drop, zoneout, block):
    x = _inputs(torch.float64, ln, drop, zoneout)
    ours, script = _run(extension.ops(), x, block), _run(None, x, block)
    assert len(ours) == len(script)
    for a, b in zip(ours, script):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(extension.ops() is None, reason="no C++ toolchain: covered by the test above")
@pytest.mark.parametrize("ln, drop, zoneout", [(None, False, None), ("bias", True, "mask")])
def test_cpp_and_torchscript_in_float32_are_close_to_float64(ln, drop, zoneout):
    """float32 against the float64 result: both loops within 5e-5 of its scale (measured:
    C++ 1e-6 to 9e-6, TorchScript 3e-7 to 9e-6, by output / gradient)."""
    x64 = _inputs(torch.float64, ln, drop, zoneout, T=40, B=8, H=16)
    x32 = {k: None if v is None else v.float() for k, v in x64.items()}
    block = block_steps(40, 8 * 16, block_size=512)  # several blocks
    truth = _run(None, x64, block)
    for a, b, t in zip(_run(extension.ops(), x32, block), _run(None, x32, block), truth):
        scale = float(t.abs().max()) + 1e-12
        err_cpp = float((a.double() - t).abs().max()) / scale
        err_script = float((b.double() - t).abs().max()) / scale
        assert err_cpp < 5e-5 and err_script < 5e-5, (err_cpp, err_script)
