"""The recurrences on the Triton step kernels: autograd Functions with an explicit BPTT.

Forward, step t: v = (m * h_{t-1}) W_hh^T (one cuBLAS product into a reused buffer), then one
kernel (`lstm_steps`, `gru_steps`) that does the rest of the step and writes m * h_t for the
next product. Backward, step t (from T - 1 down): one kernel gives dL/da_x,t and dL/dv_t from
dL/dh_t = dL/dy_t + m * (dL/dv_{t+1} W_hh) + the direct paths (zoneout, the GRU's z), then
one product dL/dv_t W_hh. After the loop, dW_hh is ONE product over all steps and the
layer-norm gains are sums over all steps. Same equations and arguments as `deeprnn.kernels`'
`LSTMRecurrence` / `GRURecurrence` / `RNNRecurrence` (without the LSTM's doubled g rows).
"""

from __future__ import annotations

import torch
import triton
from torch import Tensor
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from deeprnn.kernels.fused import _input_part, _update
from deeprnn.kernels.noise import Noise
from deeprnn.kernels.triton import gru_steps, lstm_steps

ACTS = {"tanh": 0, "sigmoid": 1, "relu": 2}


def launch(batch: int, hidden: int, gates: int) -> dict:
    """Grid and tile: ROWS rows of BLOCK >= H units a program (one program in the interpreter,
    where each program costs milliseconds)."""
    block = triton.next_power_of_2(hidden)
    rows = triton.next_power_of_2(batch)
    if not lstm_steps.INTERPRETED:
        rows = max(1, min(rows, 2048 // (block * gates)))
    grid = (triton.cdiv(batch, rows),)
    warps = 4 if rows * block * gates <= 4096 else 8
    return {"grid": grid, "ROWS": rows, "BLOCK": block, "num_warps": warps}


def _update_strides(u: Tensor | None, shape: tuple[int, ...]) -> tuple[Tensor | None, int, int]:
    """u (T, B, 1 or H), maybe broadcast, as (T, B, H) with its batch and unit strides."""
    if u is None:
        return None, 0, 0
    u = u.expand(shape)
    return u, u.stride(1), u.stride(2)


def _or(t: Tensor | None, dummy: Tensor) -> Tensor:
    """A pointer for the kernels: `dummy` stands for an absent tensor (its flag is off)."""
    return dummy if t is None else t


def _h_inputs(h0: Tensor, h: Tensor, drop: Tensor | None) -> Tensor:
    """m * h_{t-1} of all steps (T * B, H): what dW_hh is the product with."""
    h_in = torch.cat([h0.unsqueeze(0), h[:-1]])
    return (h_in if drop is None else h_in * drop).flatten(0, 1)


class TritonLSTM(Function):
    """apply(a_x, h0, c0, weight_hh, gamma_hh, gamma_c, beta_c, drop, u_h, u_c, eps_hh, eps_c)
    -> (h (T, B, H), h_T, c_T); a_x (T, B, 4H) with every bias and LN_hh's bias folded in."""

    @staticmethod
    def forward(ctx, a_x, h0, c0, weight_hh, gamma_hh, gamma_c, beta_c, drop, u_h, u_c,
                eps_hh, eps_c):  # fmt: skip
        T, B, G = a_x.shape
        H = G // 4
        keep = T if any(ctx.needs_input_grad) else 1  # what BPTT reads, kept for every step
        a_x, h0, c0 = a_x.contiguous(), h0.contiguous(), c0.contiguous()
        z, cn = a_x.new_empty(keep, B, G), a_x.new_empty(keep, B, H)
        h, c = a_x.new_empty(T, B, H), a_x.new_empty(T, B, H)
        xhat = a_x.new_empty(keep, B, G) if gamma_hh is not None else None
        rstd_hh, rstd_c = a_x.new_empty(keep, B), a_x.new_empty(keep, B)
        u_h, uh_b, uh_h = _update_strides(u_h, (T, B, H))
        u_c, uc_b, uc_h = _update_strides(u_c, (T, B, H))
        v, hm = a_x.new_empty(B, G), a_x.new_empty(B, H)
        weight_t, cfg = weight_hh.t(), launch(B, H, 4)
        flags = dict(LN_HH=gamma_hh is not None, LN_C=gamma_c is not None,
                     BETA_C=beta_c is not None, ZONE_H=u_h is not None, ZONE_C=u_c is not None,
                     DROP=drop is not None)  # fmt: skip
        h_prev, c_prev = h0, c0
        h_in = h0 if drop is None else h0 * drop
        for t in range(T):
            k = t if keep > 1 else 0
            torch.mm(h_in, weight_t, out=v)
            lstm_steps.lstm_forward_step[cfg["grid"]](
                a_x[t], v, h_prev, c_prev, _or(gamma_hh, v), _or(gamma_c, v), _or(beta_c, v),
                _or(u_h, a_x)[t], _or(u_c, a_x)[t], _or(drop, v),
                z[k], cn[k], h[t], c[t], hm, _or(xhat, z)[k], rstd_hh[k], rstd_c[k],
                B, H, uh_b, uh_h, uc_b, uc_h, eps_hh, eps_c,
                **flags, ROWS=cfg["ROWS"], BLOCK=cfg["BLOCK"], num_warps=cfg["num_warps"],
            )  # fmt: skip
            h_prev, c_prev = h[t], c[t]
            h_in = h[t] if drop is None else hm
        ctx.flags, ctx.cfg = flags, cfg
        ctx.strides = (uh_b, uh_h, uc_b, uc_h)
        ctx.save_for_backward(h0, c0, z, cn, h, c, weight_hh, gamma_hh, gamma_c, beta_c, drop,
                              u_h, u_c, xhat, rstd_hh, rstd_c)  # fmt: skip
        return h, h[-1].clone(), c[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_h, d_hT, d_cT):
        h0, c0, z, cn, h, c, weight, gamma_hh, gamma_c, beta_c, drop = ctx.saved_tensors[:11]
        u_h, u_c, xhat, rstd_hh, rstd_c = ctx.saved_tensors[11:]
        flags, cfg = ctx.flags, ctx.cfg
        T, B, H = h.shape
        d_h = d_h.contiguous().clone()
        d_h[-1] += d_hT
        d_ax = torch.empty_like(z)
        d_v = torch.empty_like(z) if gamma_hh is not None else d_ax
        d_cout = torch.empty_like(cn) if gamma_c is not None else None
        dh_mm, dh_dir, dc = h0.new_zeros(B, H), h0.new_zeros(B, H), d_cT.contiguous().clone()
        dummy = dh_mm
        for t in range(T - 1, -1, -1):
            lstm_steps.lstm_backward_step[cfg["grid"]](
                d_h[t], dh_mm, dh_dir, dc, z[t], cn[t], c[t - 1] if t else c0,
                _or(gamma_hh, dummy), _or(gamma_c, dummy), _or(beta_c, dummy),
                _or(u_h, dummy.expand(T, B, H))[t], _or(u_c, dummy.expand(T, B, H))[t],
                _or(drop, dummy), _or(xhat, d_ax)[t], rstd_hh[t], rstd_c[t],
                d_ax[t], d_v[t], _or(d_cout, d_ax)[t],
                B, H, *ctx.strides,
                **flags, ROWS=cfg["ROWS"], BLOCK=cfg["BLOCK"], num_warps=cfg["num_warps"],
            )  # fmt: skip
            torch.mm(d_v[t], weight, out=dh_mm)
        dh0 = (dh_mm if drop is None else dh_mm * drop) + dh_dir
        d_weight = d_v.flatten(0, 1).t().mm(_h_inputs(h0, h, drop))
        d_gamma_hh = None if gamma_hh is None else (d_ax * xhat).sum((0, 1))
        d_gamma_c = d_beta_c = None
        if gamma_c is not None:
            d_gamma_c = (d_cout * cn).sum((0, 1))
            d_beta_c = None if beta_c is None else d_cout.sum((0, 1))
        return (d_ax, dh0, dc, d_weight, d_gamma_hh, d_gamma_c, d_beta_c,
                None, None, None, None, None)  # fmt: skip


class TritonGRU(Function):
    """apply(a_x, h0, weight_hh, beta, gamma_hh, drop, u_h, eps) -> (h (T, B, H), h_T);
    a_x (T, B, 3H) = [LN_ih](W_ih x) + b_ih, beta = b_hh (+ LN_hh's bias) or None."""

    @staticmethod
    def forward(ctx, a_x, h0, weight_hh, beta, gamma_hh, drop, u_h, eps):
        T, B, G = a_x.shape
        H = G // 3
        keep = T if any(ctx.needs_input_grad) else 1
        a_x, h0 = a_x.contiguous(), h0.contiguous()
        gates, ahn = a_x.new_empty(keep, B, G), a_x.new_empty(keep, B, H)
        h = a_x.new_empty(T, B, H)
        xhat = a_x.new_empty(keep, B, G) if gamma_hh is not None else None
        rstd = a_x.new_empty(keep, B)
        u_h, uh_b, uh_h = _update_strides(u_h, (T, B, H))
        v, hm = a_x.new_empty(B, G), a_x.new_empty(B, H)
        weight_t, cfg = weight_hh.t(), launch(B, H, 3)
        flags = dict(LN_HH=gamma_hh is not None, BETA=beta is not None, ZONE_H=u_h is not None,
                     DROP=drop is not None)  # fmt: skip
        h_prev = h0
        h_in = h0 if drop is None else h0 * drop
        for t in range(T):
            k = t if keep > 1 else 0
            torch.mm(h_in, weight_t, out=v)
            gru_steps.gru_forward_step[cfg["grid"]](
                a_x[t], v, h_prev, _or(gamma_hh, v), _or(beta, v), _or(u_h, a_x)[t],
                _or(drop, v), gates[k], ahn[k], h[t], hm, _or(xhat, gates)[k], rstd[k],
                B, H, uh_b, uh_h, eps,
                **flags, ROWS=cfg["ROWS"], BLOCK=cfg["BLOCK"], num_warps=cfg["num_warps"],
            )  # fmt: skip
            h_prev = h[t]
            h_in = h[t] if drop is None else hm
        ctx.flags, ctx.cfg, ctx.strides = flags, cfg, (uh_b, uh_h)
        ctx.has_beta = beta is not None
        ctx.save_for_backward(h0, gates, ahn, h, weight_hh, gamma_hh, drop, u_h, xhat, rstd)
        return h, h[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_h, d_hT):
        h0, gates, ahn, h, weight, gamma_hh, drop, u_h, xhat, rstd = ctx.saved_tensors
        flags, cfg = ctx.flags, ctx.cfg
        T, B, H = h.shape
        d_h = d_h.contiguous().clone()
        d_h[-1] += d_hT
        d_ax, d_ah = torch.empty_like(gates), torch.empty_like(gates)
        d_v = torch.empty_like(gates) if gamma_hh is not None else d_ah
        dh_mm, dh_dir = h0.new_zeros(B, H), h0.new_zeros(B, H)
        for t in range(T - 1, -1, -1):
            gru_steps.gru_backward_step[cfg["grid"]](
                d_h[t], dh_mm, dh_dir, gates[t], ahn[t], h[t - 1] if t else h0,
                _or(gamma_hh, dh_mm), _or(u_h, dh_mm.expand(T, B, H))[t], _or(drop, dh_mm),
                _or(xhat, d_ax)[t], rstd[t], d_ax[t], d_ah[t], d_v[t],
                B, H, *ctx.strides,
                **flags, ROWS=cfg["ROWS"], BLOCK=cfg["BLOCK"], num_warps=cfg["num_warps"],
            )  # fmt: skip
            torch.mm(d_v[t], weight, out=dh_mm)
        dh0 = (dh_mm if drop is None else dh_mm * drop) + dh_dir
        d_weight = d_v.flatten(0, 1).t().mm(_h_inputs(h0, h, drop))
        d_beta = d_ah.sum((0, 1)) if ctx.has_beta else None
        d_gamma = None if gamma_hh is None else (d_ah * xhat).sum((0, 1))
        return d_ax, dh0, d_weight, d_beta, d_gamma, None, None, None


class TritonRNN(Function):
    """apply(a_x, h0, weight_hh, gamma_hh, drop, u_h, nonlinearity, eps) -> (h (T, B, H), h_T);
    a_x (T, B, H) with every bias folded in."""

    @staticmethod
    def forward(ctx, a_x, h0, weight_hh, gamma_hh, drop, u_h, nonlinearity, eps):
        T, B, H = a_x.shape
        keep = T if any(ctx.needs_input_grad) else 1
        a_x, h0 = a_x.contiguous(), h0.contiguous()
        h = a_x.new_empty(T, B, H)
        y = h if u_h is None else a_x.new_empty(T, B, H)  # BPTT reads y = h~ of every step
        xhat = a_x.new_empty(keep, B, H) if gamma_hh is not None else None
        rstd = a_x.new_empty(keep, B)
        u_h, uh_b, uh_h = _update_strides(u_h, (T, B, H))
        v, hm = a_x.new_empty(B, H), a_x.new_empty(B, H)
        weight_t, cfg = weight_hh.t(), launch(B, H, 1)
        flags = dict(ACT=ACTS[nonlinearity], LN_HH=gamma_hh is not None,
                     ZONE_H=u_h is not None, DROP=drop is not None)  # fmt: skip
        h_prev = h0
        h_in = h0 if drop is None else h0 * drop
        for t in range(T):
            k = t if keep > 1 else 0
            torch.mm(h_in, weight_t, out=v)
            gru_steps.rnn_forward_step[cfg["grid"]](
                a_x[t], v, h_prev, _or(gamma_hh, v), _or(u_h, a_x)[t], _or(drop, v), y[t],
                h[t], hm, _or(xhat, a_x)[k], rstd[k],
                B, H, uh_b, uh_h, eps,
                **flags, ROWS=cfg["ROWS"], BLOCK=cfg["BLOCK"], num_warps=cfg["num_warps"],
            )  # fmt: skip
            h_prev = h[t]
            h_in = h[t] if drop is None else hm
        ctx.flags, ctx.cfg, ctx.strides = flags, cfg, (uh_b, uh_h)
        ctx.save_for_backward(h0, y, h, weight_hh, gamma_hh, drop, u_h, xhat, rstd)
        return h, h[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_h, d_hT):
        h0, y, h, weight, gamma_hh, drop, u_h, xhat, rstd = ctx.saved_tensors
        flags, cfg = ctx.flags, ctx.cfg
        T, B, H = h.shape
        d_h = d_h.contiguous().clone()
        d_h[-1] += d_hT
        d_ax = torch.empty_like(y)
        d_v = torch.empty_like(y) if gamma_hh is not None else d_ax
        dh_mm, dh_dir = h0.new_zeros(B, H), h0.new_zeros(B, H)
        for t in range(T - 1, -1, -1):
            gru_steps.rnn_backward_step[cfg["grid"]](
                d_h[t], dh_mm, dh_dir, y[t], _or(gamma_hh, dh_mm),
                _or(u_h, dh_mm.expand(T, B, H))[t], _or(drop, dh_mm), _or(xhat, d_ax)[t],
                rstd[t], d_ax[t], d_v[t],
                B, H, *ctx.strides,
                **flags, ROWS=cfg["ROWS"], BLOCK=cfg["BLOCK"], num_warps=cfg["num_warps"],
            )  # fmt: skip
            torch.mm(d_v[t], weight, out=dh_mm)
        dh0 = (dh_mm if drop is None else dh_mm * drop) + dh_dir
        d_weight = d_v.flatten(0, 1).t().mm(_h_inputs(h0, h, drop))
        d_gamma = None if gamma_hh is None else (d_ax * xhat).sum((0, 1))
        return d_ax, dh0, d_weight, d_gamma, None, None, None, None


def direction(cell, x: Tensor, state, valid: Tensor | None, noise: Noise | None):
    """One direction of one layer on the Triton kernels: `deeprnn.kernels.fused_direction`'s
    arguments and results (x (B, T, I) -> outputs (B, T, H), final state)."""
    x = x.transpose(0, 1)  # (T, B, I)
    noise = noise or Noise()
    u_h = _update(noise.update_h, valid, x)
    a_x = _input_part(cell, x, None)
    gamma_hh, eps = None, 0.0
    if cell.layer_norm:
        gamma_hh, eps = cell.ln_hh.weight, cell.ln_hh.eps
    if cell.kind == "lstm":
        gamma_c = beta_c = None
        eps_c = 0.0
        if cell.layer_norm:
            gamma_c, beta_c, eps_c = cell.ln_c.weight, cell.ln_c.bias, cell.ln_c.eps
        u_c = _update(noise.update_c, valid, x)
        h, h_last, c_last = TritonLSTM.apply(
            a_x, *state, cell.weight_hh, gamma_hh, gamma_c, beta_c, noise.drop, u_h, u_c, eps,
            eps_c,
        )  # fmt: skip
        final = (h_last, c_last)
    elif cell.kind == "gru":
        beta = cell.bias_hh
        if cell.layer_norm:
            beta = cell.ln_hh.bias if beta is None else cell.ln_hh.bias + beta
        h, final = TritonGRU.apply(a_x, state, cell.weight_hh, beta, gamma_hh, noise.drop, u_h, eps)
    else:
        h, final = TritonRNN.apply(
            a_x, state, cell.weight_hh, gamma_hh, noise.drop, u_h, cell.nonlinearity, eps
        )
    return (h if valid is None else h * valid).transpose(0, 1), final
