"""The Elman recurrence as one autograd Function with an explicit BPTT backward.

Given the hoisted input part a_x,t = [LN_ih](W_ih x_t) + every bias (T, B, H), step t is

    h~ = f(a_x,t + [LN_hh](W_hh (m * h_{t-1})));    h_t = h_{t-1} + u_t (h~ - h_{t-1})

with f in {tanh, relu, sigmoid}. Backward as in `deeprnn.kernels.lstm`.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from deeprnn.kernels.projection import (
    block_grads,
    block_inputs,
    block_steps,
    new_stats,
    project,
    project_backward,
    step_stats,
)
from deeprnn.kernels.script import scripted


@scripted
def _forward(
    a_x: Tensor,
    h0: Tensor,
    weight_t: Tensor,
    gamma_hh: Tensor | None,
    drop: Tensor | None,
    u_h: Tensor | None,
    nonlinearity: str,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """-> h~ (f of the pre-activation), the carried h, LN stats."""
    T, B, H = a_x.shape
    y = a_x.new_empty(T, B, H)
    h = y if u_h is None else a_x.new_empty(T, B, H)
    a_s, y_s, h_s = a_x.unbind(0), y.unbind(0), h.unbind(0)
    stats = new_stats(a_x, T, B, gamma_hh is not None)
    stats_s = stats.unbind(0) if gamma_hh is not None else [stats] * T
    h_prev = h0
    for t in range(T):
        project(h_prev, weight_t, gamma_hh, None, drop, eps, a_s[t], y_s[t], stats_s[t])
        if nonlinearity == "tanh":
            y_s[t].tanh_()
        elif nonlinearity == "sigmoid":
            y_s[t].sigmoid_()
        else:
            y_s[t].relu_()
        if u_h is not None:
            torch.lerp(h_prev, y_s[t], u_h[t], out=h_s[t])
        h_prev = h_s[t]
    return y, h, stats


@scripted
def _backward(
    d_h: Tensor,
    d_hT: Tensor,
    h0: Tensor,
    y: Tensor,
    h: Tensor,
    weight: Tensor,
    gamma_hh: Tensor | None,
    drop: Tensor | None,
    u_h: Tensor | None,
    stats: Tensor,
    nonlinearity: str,
    block: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """-> dL/da_x, dL/dh0, dL/dW_hh, dL/d gamma_hh (summed block by block)."""
    T = y.shape[0]
    d_a = torch.empty_like(y)
    d_a_s, dh_s = d_a.unbind(0), d_h.unbind(0)
    d_weight = torch.zeros_like(weight)
    mean_s, rstd_s = step_stats(stats, T, gamma_hh is not None)
    d_gamma: Tensor | None = None if gamma_hh is None else torch.zeros_like(gamma_hh)
    dh = dh_s[T - 1] + d_hT
    for k in range((T - 1) // block, -1, -1):
        start, stop = k * block, min(k * block + block, T)
        y_b = y[start:stop]  # dL/da = dL/dh_t * f'(a) u, f' written through y = f(a)
        if nonlinearity == "tanh":
            k_a = (y_b * y_b).sub_(1).neg_()
        elif nonlinearity == "sigmoid":
            k_a = (1 - y_b).mul_(y_b)
        else:
            k_a = (y_b > 0).to(y_b.dtype)  # relu'(0) = 0, as torch's
        keep: Tensor | None = None  # 1 - u: the direct path h_{t-1} -> h_t
        if u_h is not None:
            k_a.mul_(u_h[start:stop])
            keep = 1 - u_h[start:stop]
        # m * h_{t-1} for dW_hh, and with LN_hh the block's W_hh m h_{t-1} again (not kept)
        h_in = block_inputs(h0, h, start, stop, drop)
        pre = h_in.matmul(weight.t()) if gamma_hh is not None else h_in
        d_vs: list[Tensor] = []  # dL/d(W_hh m h_{t-1}) of the block's steps, backwards
        for j in range(stop - start - 1, -1, -1):
            t = start + j
            torch.mul(k_a[j], dh, out=d_a_s[t])
            add: Tensor | None = dh_s[t - 1] if t > 0 else None
            if keep is not None:
                add = dh * keep[j] if add is None else torch.addcmul(add, dh, keep[j])
            dh, d_v = project_backward(
                d_a_s[t], weight, gamma_hh, drop, pre[j], mean_s[t], rstd_s[t], add
            )
            if gamma_hh is not None:
                d_vs.append(d_v)
        d_pre = d_a[start:stop]
        if gamma_hh is not None:
            d_vs.reverse()
            d_pre = torch.stack(d_vs)
        block_grads(d_weight, d_gamma, d_a[start:stop], d_pre, h_in, pre, stats[start:stop])
    return d_a, dh, d_weight, d_gamma


class RNNRecurrence(Function):
    """apply(a_x, h0, weight_hh, gamma_hh, drop, update_h, nonlinearity, eps)
    -> (h (T, B, H) every step's carried h, h_T (B, H)).
    """

    @staticmethod
    def forward(ctx, a_x, h0, weight_hh, gamma_hh, drop, u_h, nonlinearity, eps):
        y, h, stats = _forward(a_x, h0, weight_hh.t(), gamma_hh, drop, u_h, nonlinearity, eps)
        ctx.nonlinearity = nonlinearity
        ctx.save_for_backward(h0, y, h, weight_hh, gamma_hh, drop, u_h, stats)
        return h, h[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_h, d_hT):
        h0, y, h, weight, gamma_hh, drop, u_h, stats = ctx.saved_tensors
        T, B, H = h.shape
        d_a, dh0, d_weight, d_gamma = _backward(
            d_h, d_hT, h0, y, h, weight, gamma_hh, drop, u_h, stats, ctx.nonlinearity,
            block_steps(T, B * H),
        )  # fmt: skip
        return d_a, dh0, d_weight, d_gamma, None, None, None, None
