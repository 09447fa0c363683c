"""The LSTM recurrence as one autograd Function with an explicit BPTT backward.

Given the hoisted input part a_x,t = [LN_ih](W_ih x_t) + every bias (T, B, 4H), step t is

    i, f, g, o = act(a_x,t + [LN_hh](W_hh (m * h_{t-1})))      sigmoid, sigmoid, tanh, sigmoid
    c~ = f * c_{t-1} + i * g;    h~ = o * tanh([LN_c](c~))
    c_t = c_{t-1} + u^c_t (c~ - c_{t-1});    h_t = h_{t-1} + u^h_t (h~ - h_{t-1})

u = update weights (zoneout times the length mask; None means 1). The g rows of a_x and
of the recurrent projection come in DOUBLED, so that one sigmoid covers all four gates:
g = tanh(x) = 2 sigmoid(2x) - 1 (torch's CPU tanh is ~3x slower than its sigmoid).

Backward: the local derivatives of a block of steps are computed at once (blocks small
enough to stay in cache); the loop over the block's steps only multiplies them with the
carried dL/dh, dL/dc and does one matrix product for dL/dh_{t-1}. Per block, one matrix
product recomputes W_hh m h_{t-1} for LN_hh and one adds the block's share of dW_hh
(`deeprnn.kernels.projection`), so that no (T, B, 4H) tensor is kept besides z and d_z.

Where the C++ step loops are built (`extension.py`, CPU float32 / float64), the same math
runs in csrc/lstm.cpp instead of the TorchScript `_forward` / `_backward` below: for the
configurations without layer norm through `LSTMRecurrence` itself, and for the layer-norm
LSTM through `LayerNormLSTMRecurrence`, which moves LN_ih into the loop too, keeps v =
W_hh m h_{t-1} instead of z and recomputes the gates in BPTT (element-wise work instead of
the matrix product that recomputes v here).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from deeprnn.kernels import extension
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
    c0: Tensor,
    weight_t: Tensor,
    gamma_hh: Tensor | None,
    gamma_c: Tensor | None,
    beta_c: Tensor | None,
    drop: Tensor | None,
    u_h: Tensor | None,
    u_c: Tensor | None,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """-> z (i, f, g, o after their nonlinearities), c~, c, tanh([LN_c] c~), h, LN stats.

    Kept for all steps only where BPTT needs them: with LN_c, c~ and not its tanh (BPTT
    recomputes it from c~ and the stats: one tanh a step against (T, B, H) kept); without,
    the tanh and not c~ (only LN_c's backward reads c~; without zoneout it is c anyway).
    The others have one step (1, B, H), reused."""
    T, B, G = a_x.shape
    H = G // 4
    z = a_x.new_empty(T, B, G)
    c = a_x.new_empty(T, B, H)
    c_new = c if u_c is None else a_x.new_empty(T if gamma_c is not None else 1, B, H)
    tanh_c = a_x.new_empty(1 if gamma_c is not None else T, B, H)
    h = a_x.new_empty(T, B, H)
    stats_hh = new_stats(a_x, T, B, gamma_hh is not None)
    stats_c = new_stats(a_x, T, B, gamma_c is not None)
    a_s, z_s, c_s, h_s = a_x.unbind(0), z.unbind(0), c.unbind(0), h.unbind(0)
    cn_s = c_new.unbind(0) if c_new.shape[0] == T else [c_new[0]] * T
    tc_s = tanh_c.unbind(0) if tanh_c.shape[0] == T else [tanh_c[0]] * T
    shh_s = stats_hh.unbind(0) if gamma_hh is not None else [stats_hh] * T
    sc_s = stats_c.unbind(0) if gamma_c is not None else [stats_c] * T
    gates = z.chunk(4, dim=-1)
    i_s, f_s = gates[0].unbind(0), gates[1].unbind(0)
    g_s, o_s = gates[2].unbind(0), gates[3].unbind(0)
    minus_one = a_x.new_full((), -1.0)
    h_prev, c_prev = h0, c0
    for t in range(T):
        project(h_prev, weight_t, gamma_hh, None, drop, eps, a_s[t], z_s[t], shh_s[t])
        z_s[t].sigmoid_()
        torch.add(minus_one, g_s[t], alpha=2, out=g_s[t])  # tanh(x) = 2 sigmoid(2x) - 1
        torch.mul(f_s[t], c_prev, out=cn_s[t]).addcmul_(i_s[t], g_s[t])
        if gamma_c is None:
            torch.tanh(cn_s[t], out=tc_s[t])
        else:
            c_out, mean, rstd = torch.native_layer_norm(cn_s[t], [H], gamma_c, beta_c, eps)
            torch.stack([mean, rstd], out=sc_s[t])  # see `project`
            torch.tanh(c_out, out=tc_s[t])
        if u_h is None:
            torch.mul(o_s[t], tc_s[t], out=h_s[t])
        else:
            torch.lerp(h_prev, o_s[t] * tc_s[t], u_h[t], out=h_s[t])
        if u_c is not None:
            torch.lerp(c_prev, cn_s[t], u_c[t], out=c_s[t])
        h_prev, c_prev = h_s[t], c_s[t]
    return z, c_new, c, tanh_c, h, stats_hh, stats_c


@scripted
def _backward(
    d_h: Tensor,
    d_hT: Tensor,
    d_cT: Tensor,
    h0: Tensor,
    c0: Tensor,
    z: Tensor,
    c_new: Tensor,
    c: Tensor,
    tanh_c: Tensor,
    h: Tensor,
    weight: Tensor,
    gamma_hh: Tensor | None,
    gamma_c: Tensor | None,
    beta_c: Tensor | None,
    drop: Tensor | None,
    u_h: Tensor | None,
    u_c: Tensor | None,
    stats_hh: Tensor,
    stats_c: Tensor,
    block: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """-> dL/da_x, dL/dh0, dL/dc0, dL/dW_hh, and with layer norm dL/d gamma_hh, gamma_c,
    beta_c; the parameter gradients are summed block by block."""
    T, B, H = h.shape
    d_z = torch.empty_like(z)  # dL/d(pre-activation gates) = dL/da_x
    d_z_s, dh_s = d_z.unbind(0), d_h.unbind(0)
    d_ifg_s = d_z[:, :, : 3 * H].unflatten(-1, (3, H)).unbind(0)
    d_o_s = d_z[:, :, 3 * H :].unbind(0)
    d_weight = torch.zeros_like(weight)
    d_gamma: Tensor | None = None if gamma_hh is None else torch.zeros_like(gamma_hh)
    d_gamma_c: Tensor | None = None
    d_beta_c: Tensor | None = None
    d_cout = c_new.new_empty(0)  # dL/d[LN_c](c~) of a block's steps
    if gamma_c is not None:
        d_gamma_c, d_beta_c = torch.zeros_like(gamma_c), torch.zeros_like(gamma_c)
        d_cout = c_new.new_empty(min(block, T), B, H)
    mean_hh_s, rstd_hh_s = step_stats(stats_hh, T, gamma_hh is not None)
    mean_c_s, rstd_c_s = step_stats(stats_c, T, gamma_c is not None)
    dh = dh_s[T - 1] + d_hT
    dc = d_cT
    for k in range((T - 1) // block, -1, -1):
        start, stop = k * block, min(k * block + block, T)
        # Local derivatives of the block's steps at once; u^h folds into those behind h~.
        gates = z[start:stop].chunk(4, dim=-1)
        i, f, g, o = gates[0], gates[1], gates[2], gates[3]
        tc = tanh_c[start:stop]
        x_hat_c = tc  # with LN_c: its normalised c~ of the block (for d gamma_c)
        if gamma_c is not None:
            x_hat_c = (c_new[start:stop] - stats_c[start:stop, 0]).mul_(stats_c[start:stop, 1])
            tc = x_hat_c * gamma_c
            if beta_c is not None:
                tc.add_(beta_c)
            tc.tanh_()
        c_prev = (
            c[start - 1 : stop - 1] if start > 0 else torch.cat([c0.unsqueeze(0), c[: stop - 1]])
        )
        k_o = (1 - o).mul_(o).mul_(tc)  # dL/da_o = dL/dh_t * k_o
        k_c = (tc * tc).sub_(1).mul_(o).neg_()  # dL/d[LN_c](c~) = dL/dh_t * k_c
        keep_h: Tensor | None = None  # 1 - u: the direct paths h_{t-1} -> h_t, c_{t-1} -> c_t
        keep_c: Tensor | None = None
        if u_h is not None:
            k_o.mul_(u_h[start:stop])
            k_c.mul_(u_h[start:stop])
            keep_h = 1 - u_h[start:stop]
        if u_c is not None:
            keep_c = 1 - u_c[start:stop]
        k_ifg = torch.cat(  # dL/da_{i,f,g} = dL/dc~ * k_{i,f,g}; g doubled: (1 - g^2) / 2
            [(1 - i).mul_(i).mul_(g), (1 - f).mul_(f).mul_(c_prev),
             (g * g).sub_(1).mul_(i).mul_(-0.5)], dim=-1,
        ).unflatten(-1, (3, H))  # fmt: skip
        # m * h_{t-1} for dW_hh, and with LN_hh the block's W_hh m h_{t-1} again (not kept)
        h_in = block_inputs(h0, h, start, stop, drop)
        pre = h_in.matmul(weight.t()) if gamma_hh is not None else h_in
        d_vs: list[Tensor] = []  # dL/d(W_hh m h_{t-1}) of the block's steps, backwards
        for j in range(stop - start - 1, -1, -1):
            t = start + j
            d_cn = dc if u_c is None else dc * u_c[t]  # via c_t = .. + u^c c~
            if gamma_c is None:
                d_cn = torch.addcmul(d_cn, dh, k_c[j])
            else:
                d_co = torch.mul(dh, k_c[j], out=d_cout[j])
                d_cn = torch.ops.aten.native_layer_norm_backward(
                    d_co, c_new[t], [H], mean_c_s[t], rstd_c_s[t], gamma_c, None,
                    [True, False, False],
                )[0].add_(d_cn)  # fmt: skip
            torch.mul(k_ifg[j], d_cn.unsqueeze(1), out=d_ifg_s[t])
            torch.mul(k_o[j], dh, out=d_o_s[t])
            dc_next = d_cn * f[j]
            dc = dc_next if keep_c is None else dc_next.addcmul_(dc, keep_c[j])
            add: Tensor | None = dh_s[t - 1] if t > 0 else None
            if keep_h is not None:
                add = dh * keep_h[j] if add is None else torch.addcmul(add, dh, keep_h[j])
            dh, d_v = project_backward(
                d_z_s[t], weight, gamma_hh, drop, pre[j], mean_hh_s[t], rstd_hh_s[t], add
            )
            if gamma_hh is not None:
                d_vs.append(d_v)
        d_pre = d_z[start:stop]
        if gamma_hh is not None:
            d_vs.reverse()
            d_pre = torch.stack(d_vs)
        block_grads(d_weight, d_gamma, d_z[start:stop], d_pre, h_in, pre, stats_hh[start:stop])
        if d_gamma_c is not None and d_beta_c is not None:
            d_co = d_cout[: stop - start]
            d_gamma_c.add_(x_hat_c.mul_(d_co).sum((0, 1)))
            d_beta_c.add_(d_co.sum((0, 1)))
    return d_z, dh, dc, d_weight, d_gamma, d_gamma_c, d_beta_c


class LSTMRecurrence(Function):
    """apply(a_x, h0, c0, weight_hh, gamma_hh, gamma_c, beta_c, drop, update_h, update_c, eps)
    -> (h (T, B, H) every step's carried h, h_T (B, H), c_T (B, H)).

    a_x (T, B, 4H), and weight_hh (4H, H) or, with layer norm, gamma_hh (4H,): g rows doubled.
    """

    @staticmethod
    def forward(ctx, a_x, h0, c0, weight_hh, gamma_hh, gamma_c, beta_c, drop, u_h, u_c, eps):
        # the C++ loops take the configurations without layer norm (which has its own below)
        ctx.fast = gamma_hh is None and gamma_c is None and extension.takes(a_x)
        if ctx.fast:
            z, c_new, c, tanh_c, h, stats_hh = extension.ops().lstm_forward(
                a_x, h0, c0, weight_hh.t(), drop, u_h, u_c, any(ctx.needs_input_grad)
            )
            stats_c = stats_hh
        else:
            z, c_new, c, tanh_c, h, stats_hh, stats_c = _forward(
                a_x, h0, c0, weight_hh.t(), gamma_hh, gamma_c, beta_c, drop, u_h, u_c, eps
            )
        ctx.save_for_backward(h0, c0, z, c_new, c, tanh_c, h, weight_hh, gamma_hh, gamma_c,
                              beta_c, drop, u_h, u_c, stats_hh, stats_c)  # fmt: skip
        return h, h[-1].clone(), c[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_h, d_hT, d_cT):
        saved = ctx.saved_tensors
        h0, c0, z, c_new, c, tanh_c, h, weight, gamma_hh, gamma_c, beta_c = saved[:11]
        drop, u_h, u_c, stats_hh, stats_c = saved[11:]
        T, B, H = h.shape
        if ctx.fast:
            d_z, dh0, dc0, d_weight = extension.ops().lstm_backward(
                d_h, d_hT, d_cT, h0, c0, z, c_new, c, tanh_c, h, weight, drop, u_h, u_c,
                block_steps(T, B * H),
            )[:4]  # fmt: skip
            return d_z, dh0, dc0, d_weight, None, None, None, None, None, None, None
        d_z, dh0, dc0, d_weight, d_gamma, d_gamma_c, d_beta_c = _backward(
            d_h, d_hT, d_cT, h0, c0, z, c_new, c, tanh_c, h, weight, gamma_hh, gamma_c, beta_c,
            drop, u_h, u_c, stats_hh, stats_c, block_steps(T, B * H),
        )  # fmt: skip
        return d_z, dh0, dc0, d_weight, d_gamma, d_gamma_c, d_beta_c, None, None, None, None


class LayerNormLSTMRecurrence(Function):
    """The layer-normalised LSTM on the C++ loops (`extension.takes`), input LN included:

    apply(u, h0, c0, weight_hh, gamma_ih, beta, gamma_hh, gamma_c, beta_c, drop, update_h,
          update_c, eps_ih, eps) -> (h (T, B, H), h_T, c_T)

    u = W_ih x (T, B, 4H) without bias; beta (4H,) folds LN_ih's and LN_hh's biases and
    b_ih + b_hh; the g rows of gamma_ih, beta, gamma_hh come doubled (see the module doc).
    Keeps u, v = W_hh m h_{t-1} and the LN statistics of every step: BPTT recomputes the
    gates from them, where `LSTMRecurrence` keeps the gates and recomputes v (one matrix
    product more; it runs where the C++ loops can't be built).
    """

    @staticmethod
    def forward(ctx, u, h0, c0, weight_hh, gamma_ih, beta, gamma_hh, gamma_c, beta_c, drop,
                u_h, u_c, eps_ih, eps):  # fmt: skip
        v, c_new, c, _, h, stats = extension.ops().ln_lstm_forward(
            u, h0, c0, weight_hh.t(), gamma_ih, beta, gamma_hh, gamma_c, beta_c, drop, u_h,
            u_c, eps_ih, eps, any(ctx.needs_input_grad),  # keep for BPTT only where needed
        )  # fmt: skip
        ctx.save_for_backward(u, h0, c0, v, c_new, c, h, weight_hh, gamma_ih, beta, gamma_hh,
                              gamma_c, beta_c, drop, u_h, u_c, stats)  # fmt: skip
        return h, h[-1].clone(), c[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_h, d_hT, d_cT):
        saved = ctx.saved_tensors
        u, h0, c0, v, c_new, c, h, weight, gamma_ih, beta, gamma_hh, gamma_c = saved[:12]
        beta_c, drop, u_h, u_c, stats = saved[12:]
        T, B, H = h.shape
        grads = extension.ops().ln_lstm_backward(
            d_h, d_hT, d_cT, h0, c0, u, v, c_new, c, h, weight, gamma_ih, beta, gamma_hh,
            gamma_c, beta_c, drop, u_h, u_c, stats, block_steps(T, B * H),
        )  # fmt: skip
        d_beta_c = None if beta_c is None else grads[8]
        return (*grads[:8], d_beta_c, None, None, None, None, None)
