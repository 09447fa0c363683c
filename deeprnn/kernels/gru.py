"""The GRU recurrence as one autograd Function with an explicit BPTT backward.

Given the hoisted input part a_x,t = [LN_ih](W_ih x_t) + b_ih (T, B, 3H), step t is

    a_h = [LN_hh](W_hh (m * h_{t-1})) + beta      (beta = b_hh, plus LN_hh's own bias)
    r = sigmoid(a_x[r] + a_h[r]);  z = sigmoid(a_x[z] + a_h[z]);  n = tanh(a_x[n] + r * a_h[n])
    h~ = (1 - z) * n + z * h_{t-1};    h_t = h_{t-1} + u_t (h~ - h_{t-1})

b_hh cannot join the hoisted part: its n slice is multiplied by r. Backward as in
`deeprnn.kernels.lstm`: local derivatives of a block of steps at once, then a short loop.

Where the C++ step loops are built (`extension.py`, CPU float32 / float64), the same math
runs in csrc/gru.cpp instead of the TorchScript `_forward` / `_backward` below: one matrix
product a step and one fused pass over the rows for LN_hh, the gates and the update. It
keeps a_h[n] (T, B, H) instead of all of a_h, and with layer norm v = W_hh m h_{t-1} instead
of a_h, so that BPTT recomputes LN_hh element-wise rather than v with a matrix product.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from deeprnn.kernels import extension
from deeprnn.kernels.projection import (
    block_grads,
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
    beta: Tensor | None,
    gamma_hh: Tensor | None,
    drop: Tensor | None,
    u_h: Tensor | None,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """-> a_h (r * a_h[n] needs it), gates (r, z, n after their nonlinearities), h, LN."""
    T, B, G = a_x.shape
    H = G // 3
    a_h = a_x.new_empty(T, B, G)
    gates = a_x.new_empty(T, B, G)
    h = a_x.new_empty(T, B, H)
    ah_s, h_s = a_h.unbind(0), h.unbind(0)
    ax_rz, ax_n = a_x[:, :, : 2 * H].unbind(0), a_x[:, :, 2 * H :].unbind(0)
    ah_rz, ah_n = a_h[:, :, : 2 * H].unbind(0), a_h[:, :, 2 * H :].unbind(0)
    rz_s, n_s = gates[:, :, : 2 * H].unbind(0), gates[:, :, 2 * H :].unbind(0)
    r_s, z_s = gates[:, :, :H].unbind(0), gates[:, :, H : 2 * H].unbind(0)
    stats = new_stats(a_x, T, B, gamma_hh is not None)
    stats_s = stats.unbind(0) if gamma_hh is not None else [stats] * T
    h_prev = h0
    for t in range(T):
        project(h_prev, weight_t, gamma_hh, beta, drop, eps, None, ah_s[t], stats_s[t])
        torch.add(ax_rz[t], ah_rz[t], out=rz_s[t]).sigmoid_()
        torch.addcmul(ax_n[t], r_s[t], ah_n[t], out=n_s[t]).tanh_()
        if u_h is None:
            torch.lerp(n_s[t], h_prev, z_s[t], out=h_s[t])
        else:
            torch.lerp(h_prev, torch.lerp(n_s[t], h_prev, z_s[t]), u_h[t], out=h_s[t])
        h_prev = h_s[t]
    return a_h, gates, h, stats


@scripted
def _backward(
    d_h: Tensor,
    d_hT: Tensor,
    h0: Tensor,
    a_h: Tensor,
    gates: Tensor,
    h: Tensor,
    weight: Tensor,
    gamma_hh: Tensor | None,
    drop: Tensor | None,
    u_h: Tensor | None,
    stats: Tensor,
    block: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor]:
    """-> dL/da_x, dL/dh0, dL/dW_hh, dL/d gamma_hh, dL/d beta (summed block by block)."""
    T, B, H = h.shape
    d_ax = torch.empty_like(gates)
    d_ax_s = d_ax.unflatten(-1, (3, H)).unbind(0)
    d_ah = gates.new_empty(min(block, T), B, 3 * H)  # dL/da_h of a block's steps
    d_ah3_s, d_ah_s = d_ah.unflatten(-1, (3, H)).unbind(0), d_ah.unbind(0)
    dh_s = d_h.unbind(0)
    d_weight = torch.zeros_like(weight)
    mean_s, rstd_s = step_stats(stats, T, gamma_hh is not None)
    d_gamma: Tensor | None = None if gamma_hh is None else torch.zeros_like(gamma_hh)
    d_beta = gates.new_zeros(3 * H)
    dh = dh_s[T - 1] + d_hT
    for k in range((T - 1) // block, -1, -1):
        start, stop = k * block, min(k * block + block, T)
        # Local derivatives of the block's steps at once, u folded in: dL/da_x = dh * k_x
        parts = gates[start:stop].chunk(3, dim=-1)
        r, z, n = parts[0], parts[1], parts[2]
        if start > 0:
            h_prev = h[start - 1 : stop - 1]
        else:
            h_prev = torch.cat([h0.unsqueeze(0), h[: stop - 1]])
        k_n = (n * n).sub_(1).mul_(z - 1)  # (1 - z)(1 - n^2)
        k_z = (h_prev - n).mul_(z).mul_(1 - z)
        k_prev = z  # the direct path h_{t-1} -> h_t: 1 - u (1 - z)
        if u_h is not None:
            u = u_h[start:stop]
            k_n.mul_(u)
            k_z.mul_(u)
            k_prev = (z - 1).mul_(u).add_(1)
        k_r = (1 - r).mul_(r).mul_(a_h[start:stop, :, 2 * H :]).mul_(k_n)
        k_x = torch.cat([k_r, k_z, k_n], dim=-1).unflatten(-1, (3, H))
        k_h = torch.cat([k_r, k_z, k_n * r], dim=-1).unflatten(-1, (3, H))
        # m * h_{t-1} for dW_hh, and with LN_hh the block's W_hh m h_{t-1} again (not kept)
        h_in = h_prev if drop is None else h_prev * drop
        pre = h_in.matmul(weight.t()) if gamma_hh is not None else h_in
        d_vs: list[Tensor] = []  # dL/d(W_hh m h_{t-1}) of the block's steps, backwards
        for j in range(stop - start - 1, -1, -1):
            t = start + j
            dh3 = dh.unsqueeze(1)
            torch.mul(k_x[j], dh3, out=d_ax_s[t])
            torch.mul(k_h[j], dh3, out=d_ah3_s[j])
            if t > 0:
                add = torch.addcmul(dh_s[t - 1], dh, k_prev[j])
            else:
                add = dh * k_prev[j]
            dh, d_v = project_backward(
                d_ah_s[j], weight, gamma_hh, drop, pre[j], mean_s[t], rstd_s[t], add
            )
            if gamma_hh is not None:
                d_vs.append(d_v)
        d_out = d_ah[: stop - start]
        d_pre = d_out
        if gamma_hh is not None:
            d_vs.reverse()
            d_pre = torch.stack(d_vs)
        d_beta.add_(d_out.sum((0, 1)))
        block_grads(d_weight, d_gamma, d_out, d_pre, h_in, pre, stats[start:stop])
    return d_ax, dh, d_weight, d_gamma, d_beta


class GRURecurrence(Function):
    """apply(a_x, h0, weight_hh, beta, gamma_hh, drop, update_h, eps)
    -> (h (T, B, H) every step's carried h, h_T (B, H)).
    """

    @staticmethod
    def forward(ctx, a_x, h0, weight_hh, beta, gamma_hh, drop, u_h, eps):
        ctx.fast = extension.takes(a_x)
        if ctx.fast:  # a_h is a_h[n], or v with layer norm (see the module doc)
            gates, a_h, h, stats = extension.ops().gru_forward(
                a_x, h0, weight_hh.t(), beta, gamma_hh, drop, u_h, eps,
                any(ctx.needs_input_grad),  # keep for BPTT only where needed
            )  # fmt: skip
        else:
            a_h, gates, h, stats = _forward(a_x, h0, weight_hh.t(), beta, gamma_hh, drop, u_h, eps)
        ctx.save_for_backward(h0, a_h, gates, h, weight_hh, beta, gamma_hh, drop, u_h, stats)
        return h, h[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_h, d_hT):
        h0, a_h, gates, h, weight, beta, gamma_hh, drop, u_h, stats = ctx.saved_tensors
        T, B, H = h.shape
        if ctx.fast:
            d_ax, dh0, d_weight, d_gamma, d_beta = extension.ops().gru_backward(
                d_h, d_hT, h0, gates, a_h, h, weight, beta, gamma_hh, drop, u_h, stats,
                block_steps(T, B * H),
            )  # fmt: skip
            d_gamma = None if gamma_hh is None else d_gamma
            return d_ax, dh0, d_weight, d_beta, d_gamma, None, None, None
        d_ax, dh0, d_weight, d_gamma, d_beta = _backward(
            d_h, d_hT, h0, a_h, gates, h, weight, gamma_hh, drop, u_h, stats,
            block_steps(T, B * H),
        )  # fmt: skip
        return d_ax, dh0, d_weight, d_beta, d_gamma, None, None, None
