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

from deeprnn.kernels.projection import block_steps, project, project_backward, projection_grads
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
) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
    """-> h~ (f of the pre-activation), the carried h, LN pre-norm and stats."""
    T, B, H = a_x.shape
    y = a_x.new_empty(T, B, H)
    h = y if u_h is None else a_x.new_empty(T, B, H)
    pre = a_x.new_empty(T, B, H) if gamma_hh is not None else a_x.new_empty(T, 0, 0)
    a_s, y_s, h_s, pre_s = a_x.unbind(0), y.unbind(0), h.unbind(0), pre.unbind(0)
    stats: list[Tensor] = []
    h_prev = h0
    for t in range(T):
        project(h_prev, weight_t, gamma_hh, None, drop, eps, a_s[t], y_s[t], pre_s[t], stats)
        if nonlinearity == "tanh":
            y_s[t].tanh_()
        elif nonlinearity == "sigmoid":
            y_s[t].sigmoid_()
        else:
            y_s[t].relu_()
        if u_h is not None:
            torch.lerp(h_prev, y_s[t], u_h[t], out=h_s[t])
        h_prev = h_s[t]
    return y, h, pre, stats


@scripted
def _backward(
    d_h: Tensor,
    d_hT: Tensor,
    y: Tensor,
    weight: Tensor,
    gamma_hh: Tensor | None,
    drop: Tensor | None,
    u_h: Tensor | None,
    pre: Tensor,
    stats: list[Tensor],
    nonlinearity: str,
    block: int,
) -> tuple[Tensor, Tensor, list[Tensor]]:
    """-> dL/da_x, dL/dh0, dL/d(W_hh m h) per step (backwards in time)."""
    T = y.shape[0]
    d_a = torch.empty_like(y)
    d_a_s, dh_s = d_a.unbind(0), d_h.unbind(0)
    d_pre: list[Tensor] = []
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
        for j in range(stop - start - 1, -1, -1):
            t = start + j
            torch.mul(k_a[j], dh, out=d_a_s[t])
            add: Tensor | None = dh_s[t - 1] if t > 0 else None
            if keep is not None:
                add = dh * keep[j] if add is None else torch.addcmul(add, dh, keep[j])
            mean, rstd = (stats[2 * t], stats[2 * t + 1]) if gamma_hh is not None else (dh, dh)
            dh, d_v = project_backward(d_a_s[t], weight, gamma_hh, drop, pre[t], mean, rstd, add)
            if gamma_hh is not None:
                d_pre.append(d_v)
    return d_a, dh, d_pre


class RNNRecurrence(Function):
    """apply(a_x, h0, weight_hh, gamma_hh, drop, update_h, nonlinearity, eps)
    -> (h (T, B, H) every step's carried h, h_T (B, H)).
    """

    @staticmethod
    def forward(ctx, a_x, h0, weight_hh, gamma_hh, drop, u_h, nonlinearity, eps):
        y, h, pre, stats = _forward(a_x, h0, weight_hh.t(), gamma_hh, drop, u_h, nonlinearity, eps)
        ctx.stats, ctx.nonlinearity = stats, nonlinearity
        ctx.save_for_backward(h0, y, h, weight_hh, gamma_hh, pre, drop, u_h)
        return h, h[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_h, d_hT):
        h0, y, h, weight, gamma_hh, pre, drop, u_h = ctx.saved_tensors
        T, B, H = h.shape
        d_a, dh0, d_pre = _backward(
            d_h, d_hT, y, weight, gamma_hh, drop, u_h, pre, ctx.stats, ctx.nonlinearity,
            block_steps(T, B * H),
        )  # fmt: skip
        d_weight, d_gamma, _ = projection_grads(d_a, d_pre, h0, h, drop, gamma_hh, pre, ctx.stats)
        return d_a, dh0, d_weight, d_gamma, None, None, None, None
