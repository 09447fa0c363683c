"""Triton kernels of one GRU step and one Elman (RNN) step, forward and BPTT.

GRU, given a_x (B, 3H) = [LN_ih](W_ih x_t) + b_ih and v = W_hh (m * h_{t-1}) (B, 3H):

    a_h = [gamma_hh * LN](v) + beta      (beta = b_hh, plus LN_hh's bias; not foldable: r * a_h[n])
    r = sigmoid(a_x[r] + a_h[r]);  z = sigmoid(a_x[z] + a_h[z]);  n = tanh(a_x[n] + r * a_h[n])
    h~ = n + z (h_{t-1} - n);    h_t = h_{t-1} + u (h~ - h_{t-1})

RNN, given a_x (B, H) with every bias and v (B, H):  h~ = f(a_x + [gamma_hh * LN](v)),
f = tanh (ACT 0), sigmoid (1) or relu (2);  h_t = h_{t-1} + u (h~ - h_{t-1}).

Layout and conventions as in `lstm_steps`.
"""

from __future__ import annotations

import triton
import triton.language as tl

from deeprnn.kernels.triton.lstm_steps import sigmoid, tanh


@triton.jit
def gru_forward_step(
    ax, v, h_prev, gamma_hh, beta, u_h, drop, gates, ahn, h, hm, xhat, rstd_hh,
    B, H, uh_b, uh_h, eps_hh,
    LN_HH: tl.constexpr, BETA: tl.constexpr, ZONE_H: tl.constexpr, DROP: tl.constexpr,
    ROWS: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Writes gates = (r, z, n) (B, 3H), ahn = a_h[n] (B, H), h, hm = m * h (DROP), and with
    LN_HH xhat (B, 3H) and rstd_hh (B,)."""
    row = tl.program_id(0) * ROWS + tl.arange(0, ROWS)[:, None]
    col = tl.arange(0, BLOCK)[None, :]
    mask = (row < B) & (col < H)
    gate = row * 3 * H + col
    unit = row * H + col
    g_mask = col < H
    v_r = tl.load(v + gate, mask=mask, other=0.0)
    v_z = tl.load(v + gate + H, mask=mask, other=0.0)
    v_n = tl.load(v + gate + 2 * H, mask=mask, other=0.0)
    if LN_HH:
        n3 = 3 * H
        mean = ((tl.sum(v_r, 1) + tl.sum(v_z, 1) + tl.sum(v_n, 1)) / n3)[:, None]
        v_r = tl.where(mask, v_r - mean, 0.0)
        v_z = tl.where(mask, v_z - mean, 0.0)
        v_n = tl.where(mask, v_n - mean, 0.0)
        var = (tl.sum(v_r * v_r, 1) + tl.sum(v_z * v_z, 1) + tl.sum(v_n * v_n, 1)) / n3
        r = (1.0 / tl.sqrt(var + eps_hh))[:, None]
        v_r, v_z, v_n = v_r * r, v_z * r, v_n * r
        tl.store(xhat + gate, v_r, mask=mask)
        tl.store(xhat + gate + H, v_z, mask=mask)
        tl.store(xhat + gate + 2 * H, v_n, mask=mask)
        tl.store(rstd_hh + row, r, mask=row < B)
        v_r = v_r * tl.load(gamma_hh + col, mask=g_mask, other=0.0)
        v_z = v_z * tl.load(gamma_hh + H + col, mask=g_mask, other=0.0)
        v_n = v_n * tl.load(gamma_hh + 2 * H + col, mask=g_mask, other=0.0)
    if BETA:
        v_r = v_r + tl.load(beta + col, mask=g_mask, other=0.0)
        v_z = v_z + tl.load(beta + H + col, mask=g_mask, other=0.0)
        v_n = v_n + tl.load(beta + 2 * H + col, mask=g_mask, other=0.0)
    r_g = sigmoid(tl.load(ax + gate, mask=mask, other=0.0) + v_r)
    z_g = sigmoid(tl.load(ax + gate + H, mask=mask, other=0.0) + v_z)
    n_g = tanh(tl.load(ax + gate + 2 * H, mask=mask, other=0.0) + r_g * v_n)
    tl.store(gates + gate, r_g, mask=mask)
    tl.store(gates + gate + H, z_g, mask=mask)
    tl.store(gates + gate + 2 * H, n_g, mask=mask)
    tl.store(ahn + unit, v_n, mask=mask)
    hp = tl.load(h_prev + unit, mask=mask, other=0.0)
    h_new = n_g + z_g * (hp - n_g)
    if ZONE_H:
        h_new = hp + tl.load(u_h + row * uh_b + col * uh_h, mask=mask, other=0.0) * (h_new - hp)
    tl.store(h + unit, h_new, mask=mask)
    if DROP:
        tl.store(hm + unit, h_new * tl.load(drop + unit, mask=mask, other=0.0), mask=mask)


@triton.jit
def gru_backward_step(
    dh_seq, dh_mm, dh_dir, gates, ahn, h_prev, gamma_hh, u_h, drop, xhat, rstd_hh,
    d_ax, d_ah, d_v,
    B, H, uh_b, uh_h,
    LN_HH: tl.constexpr, ZONE_H: tl.constexpr, DROP: tl.constexpr, ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
):  # fmt: skip
    """From dL/dh_t = dh_seq + m * dh_mm + dh_dir: writes d_ax (B, 3H), d_ah = dL/da_h
    (B, 3H), d_v = dL/dv (LN_HH; else d_ah is it), and in place dh_dir = dL/dh_{t-1} along
    the direct path, (1 - u (1 - z)) dL/dh_t."""
    row = tl.program_id(0) * ROWS + tl.arange(0, ROWS)[:, None]
    col = tl.arange(0, BLOCK)[None, :]
    mask = (row < B) & (col < H)
    gate = row * 3 * H + col
    unit = row * H + col
    carried = tl.load(dh_mm + unit, mask=mask, other=0.0)
    if DROP:
        carried = carried * tl.load(drop + unit, mask=mask, other=0.0)
    dh = tl.load(dh_seq + unit, mask=mask, other=0.0) + carried
    dh = dh + tl.load(dh_dir + unit, mask=mask, other=0.0)
    r_g = tl.load(gates + gate, mask=mask, other=0.0)
    z_g = tl.load(gates + gate + H, mask=mask, other=0.0)
    n_g = tl.load(gates + gate + 2 * H, mask=mask, other=0.0)
    d_new = dh  # dL/dh~
    if ZONE_H:
        d_new = dh * tl.load(u_h + row * uh_b + col * uh_h, mask=mask, other=0.0)
    tl.store(dh_dir + unit, dh - d_new + d_new * z_g, mask=mask)
    hp = tl.load(h_prev + unit, mask=mask, other=0.0)
    d_an = d_new * (1.0 - z_g) * (1.0 - n_g * n_g)
    d_az = d_new * (hp - n_g) * z_g * (1.0 - z_g)
    d_ar = d_an * tl.load(ahn + unit, mask=mask, other=0.0) * r_g * (1.0 - r_g)
    d_ahn = d_an * r_g
    tl.store(d_ax + gate, d_ar, mask=mask)
    tl.store(d_ax + gate + H, d_az, mask=mask)
    tl.store(d_ax + gate + 2 * H, d_an, mask=mask)
    tl.store(d_ah + gate, d_ar, mask=mask)
    tl.store(d_ah + gate + H, d_az, mask=mask)
    tl.store(d_ah + gate + 2 * H, d_ahn, mask=mask)
    if LN_HH:
        g_mask = col < H
        g_r = d_ar * tl.load(gamma_hh + col, mask=g_mask, other=0.0)
        g_z = d_az * tl.load(gamma_hh + H + col, mask=g_mask, other=0.0)
        g_n = d_ahn * tl.load(gamma_hh + 2 * H + col, mask=g_mask, other=0.0)
        x_r = tl.load(xhat + gate, mask=mask, other=0.0)
        x_z = tl.load(xhat + gate + H, mask=mask, other=0.0)
        x_n = tl.load(xhat + gate + 2 * H, mask=mask, other=0.0)
        n3 = 3 * H
        m1 = ((tl.sum(g_r, 1) + tl.sum(g_z, 1) + tl.sum(g_n, 1)) / n3)[:, None]
        m2 = tl.sum(g_r * x_r, 1) + tl.sum(g_z * x_z, 1) + tl.sum(g_n * x_n, 1)
        m2 = (m2 / n3)[:, None]
        r = tl.load(rstd_hh + row, mask=row < B, other=0.0)
        tl.store(d_v + gate, r * (g_r - m1 - x_r * m2), mask=mask)
        tl.store(d_v + gate + H, r * (g_z - m1 - x_z * m2), mask=mask)
        tl.store(d_v + gate + 2 * H, r * (g_n - m1 - x_n * m2), mask=mask)


@triton.jit
def rnn_forward_step(
    ax, v, h_prev, gamma_hh, u_h, drop, y, h, hm, xhat, rstd_hh,
    B, H, uh_b, uh_h, eps_hh,
    ACT: tl.constexpr, LN_HH: tl.constexpr, ZONE_H: tl.constexpr, DROP: tl.constexpr,
    ROWS: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Writes y = h~ (B, H), h (the same tensor as y without zoneout), hm = m * h (DROP),
    and with LN_HH xhat (B, H) and rstd_hh (B,)."""
    row = tl.program_id(0) * ROWS + tl.arange(0, ROWS)[:, None]
    col = tl.arange(0, BLOCK)[None, :]
    mask = (row < B) & (col < H)
    unit = row * H + col
    pre = tl.load(v + unit, mask=mask, other=0.0)
    if LN_HH:
        mean = (tl.sum(pre, 1) / H)[:, None]
        pre = tl.where(mask, pre - mean, 0.0)
        r = (1.0 / tl.sqrt(tl.sum(pre * pre, 1) / H + eps_hh))[:, None]
        pre = pre * r
        tl.store(xhat + unit, pre, mask=mask)
        tl.store(rstd_hh + row, r, mask=row < B)
        pre = pre * tl.load(gamma_hh + col, mask=col < H, other=0.0)
    pre = pre + tl.load(ax + unit, mask=mask, other=0.0)
    if ACT == 0:
        out = tanh(pre)
    elif ACT == 1:
        out = sigmoid(pre)
    else:
        out = tl.maximum(pre, 0.0)
    tl.store(y + unit, out, mask=mask)
    if ZONE_H:
        hp = tl.load(h_prev + unit, mask=mask, other=0.0)
        out = hp + tl.load(u_h + row * uh_b + col * uh_h, mask=mask, other=0.0) * (out - hp)
        tl.store(h + unit, out, mask=mask)
    if DROP:
        tl.store(hm + unit, out * tl.load(drop + unit, mask=mask, other=0.0), mask=mask)


@triton.jit
def rnn_backward_step(
    dh_seq, dh_mm, dh_dir, y, gamma_hh, u_h, drop, xhat, rstd_hh, d_ax, d_v,
    B, H, uh_b, uh_h,
    ACT: tl.constexpr, LN_HH: tl.constexpr, ZONE_H: tl.constexpr, DROP: tl.constexpr,
    ROWS: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """From dL/dh_t = dh_seq + m * dh_mm (+ dh_dir with ZONE_H): writes d_ax (B, H), d_v
    (LN_HH), and in place dh_dir = (1 - u) dL/dh_t (ZONE_H)."""
    row = tl.program_id(0) * ROWS + tl.arange(0, ROWS)[:, None]
    col = tl.arange(0, BLOCK)[None, :]
    mask = (row < B) & (col < H)
    unit = row * H + col
    carried = tl.load(dh_mm + unit, mask=mask, other=0.0)
    if DROP:
        carried = carried * tl.load(drop + unit, mask=mask, other=0.0)
    dh = tl.load(dh_seq + unit, mask=mask, other=0.0) + carried
    if ZONE_H:
        dh = dh + tl.load(dh_dir + unit, mask=mask, other=0.0)
        d_new = dh * tl.load(u_h + row * uh_b + col * uh_h, mask=mask, other=0.0)
        tl.store(dh_dir + unit, dh - d_new, mask=mask)
        dh = d_new
    out = tl.load(y + unit, mask=mask, other=0.0)
    if ACT == 0:
        d_pre = dh * (1.0 - out * out)
    elif ACT == 1:
        d_pre = dh * out * (1.0 - out)
    else:
        d_pre = tl.where(out > 0, dh, 0.0)  # relu'(0) = 0, as torch's
    tl.store(d_ax + unit, d_pre, mask=mask)
    if LN_HH:
        g = d_pre * tl.load(gamma_hh + col, mask=col < H, other=0.0)
        x = tl.load(xhat + unit, mask=mask, other=0.0)
        m1 = (tl.sum(g, 1) / H)[:, None]
        m2 = (tl.sum(g * x, 1) / H)[:, None]
        r = tl.load(rstd_hh + row, mask=row < B, other=0.0)
        tl.store(d_v + unit, r * (g - m1 - x * m2), mask=mask)
