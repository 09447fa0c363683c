"""The input projection of all steps, W_ih x + b, on the library that multiplies fastest here.

On AMD CPUs ATen's fp32 BLAS (MKL) runs the (T B, I) x (I, G H) product and its two backward
products at ~100 GFLOP/s a core, oneDNN in 0.42-0.46 of that time (`benchmarks/gemm.py`;
torch's own LSTM already multiplies through oneDNN). `linear` is F.linear with the products
on csrc/common.h's `gemm` (oneDNN where `backend()` says so) and its large outputs in the C++
loops' buffer cache, so that a training step does not page-fault them in again.

`backend()` / `set_backend()` read and set which library runs them ("auto": oneDNN on AMD
CPUs, where that was measured; "onednn"; "blas"); DEEPRNN_GEMM sets it when the library loads.
Float64, other devices, tracing and a missing C++ build take F.linear. Like the recurrences
it feeds, it is differentiable once (no double backward).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from deeprnn.kernels import extension


def backend() -> str:
    """The library that runs the large fp32 products now: "onednn" or "blas" (ATen's)."""
    lib = extension.ops()
    return "blas" if lib is None else str(lib.gemm_backend())


def set_backend(name: str, min_macs: int | None = None) -> str:
    """Choose the library for the large fp32 products ("auto", "blas" or "onednn"); returns
    the previous setting. Products under `min_macs` multiply-adds stay on ATen (default
    2**22: the per-step products are as fast there). Results agree to float32 rounding."""
    if name not in extension.GEMM_BACKENDS:
        choices = ", ".join(extension.GEMM_BACKENDS)
        raise ValueError(f"unknown GEMM backend {name!r}; expected one of {choices}")
    if min_macs is not None and min_macs < 0:
        raise ValueError(f"min_macs must be >= 0, got {min_macs}")
    lib = extension.ops()
    if lib is None:
        if name == "onednn":
            raise RuntimeError("the C++ loops are not built, so oneDNN cannot be chosen here")
        return "auto"
    previous = str(lib.gemm_setting())
    lib.set_gemm_backend(name, -1 if min_macs is None else int(min_macs))
    return previous


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        flat = x.reshape(-1, x.shape[-1])
        ctx.save_for_backward(flat, weight)
        ctx.shape, ctx.has_bias = x.shape, bias is not None
        out = extension.ops().linear(flat, weight, bias)
        return out.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out: Tensor):
        flat, weight = ctx.saved_tensors
        lib = extension.ops()
        d = d_out.reshape(-1, weight.shape[0])
        d_x = lib.mm(d, weight).view(ctx.shape) if ctx.needs_input_grad[0] else None
        d_w = lib.mm(d.t(), flat) if ctx.needs_input_grad[1] else None
        d_b = d.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return d_x, d_w, d_b


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """F.linear(x, weight, bias) with its products on `backend()` (see the module doc)."""
    if (
        x.dtype == torch.float32
        and weight.dtype == torch.float32
        and extension.takes(x)
        and not torch.jit.is_tracing()
    ):
        return _Linear.apply(x, weight, bias)
    return F.linear(x, weight, bias)
