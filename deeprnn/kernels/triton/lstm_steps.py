"""Triton kernels of one LSTM step, forward and BPTT: all the element-wise and layer-norm work.

Step t, given a_x (B, 4H) the hoisted input part (every additive bias and LN_hh's bias folded
in) and v = W_hh (m * h_{t-1}) (B, 4H) from one cuBLAS product:

    i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of a_x + [gamma_hh * LN](v)
    c~ = f * c_{t-1} + i * g;    h~ = o * tanh([LN_c](c~))
    c_t = c_{t-1} + u^c (c~ - c_{t-1});    h_t = h_{t-1} + u^h (h~ - h_{t-1})

Each program holds ROWS rows of the batch, all four gates of a row in registers (BLOCK >= H),
so the layer norms over 4H and H are reductions within the program. Forward keeps, per step,
the gates, c~ (or with LN_c its normalised x^_c), v's normalised x^_hh and the rstds; BPTT
recomputes tanh([LN_c] c~) from them. Kernels compute in the tensors' dtype.
"""

from __future__ import annotations

import triton
import triton.language as tl

INTERPRETED = bool(triton.knobs.runtime.interpret)  # decided when the kernels are decorated


@triton.jit
def sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def tanh(x):
    e = tl.exp(-2.0 * tl.abs(x))  # never overflows; exact sign
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x < 0, -t, t)


@triton.jit
def lstm_forward_step(
    ax, v, h_prev, c_prev, gamma_hh, gamma_c, beta_c, u_h, u_c, drop,
    z, cn, h, c, hm, xhat, rstd_hh, rstd_c,
    B, H, uh_b, uh_h, uc_b, uc_h, eps_hh, eps_c,
    LN_HH: tl.constexpr, LN_C: tl.constexpr, BETA_C: tl.constexpr, ZONE_H: tl.constexpr,
    ZONE_C: tl.constexpr, DROP: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Writes z = (i, f, g, o) (B, 4H), cn = c~ or x^_c, h, c (B, H), hm = m * h (DROP),
    xhat = x^_hh (B, 4H) and rstd_hh (B,) (LN_HH), rstd_c (B,) (LN_C)."""
    row = tl.program_id(0) * ROWS + tl.arange(0, ROWS)[:, None]  # (ROWS, 1)
    col = tl.arange(0, BLOCK)[None, :]  # (1, BLOCK)
    mask = (row < B) & (col < H)
    gate = row * 4 * H + col  # gate i of (B, 4H); f, g, o follow at +H, +2H, +3H
    unit = row * H + col  # (B, H)
    v_i = tl.load(v + gate, mask=mask, other=0.0)
    v_f = tl.load(v + gate + H, mask=mask, other=0.0)
    v_g = tl.load(v + gate + 2 * H, mask=mask, other=0.0)
    v_o = tl.load(v + gate + 3 * H, mask=mask, other=0.0)
    if LN_HH:
        n = 4 * H
        mean = (tl.sum(v_i, 1) + tl.sum(v_f, 1) + tl.sum(v_g, 1) + tl.sum(v_o, 1)) / n
        mean = mean[:, None]
        v_i = tl.where(mask, v_i - mean, 0.0)
        v_f = tl.where(mask, v_f - mean, 0.0)
        v_g = tl.where(mask, v_g - mean, 0.0)
        v_o = tl.where(mask, v_o - mean, 0.0)
        sq = tl.sum(v_i * v_i, 1) + tl.sum(v_f * v_f, 1) + tl.sum(v_g * v_g, 1)
        var = (sq + tl.sum(v_o * v_o, 1)) / n
        r = (1.0 / tl.sqrt(var + eps_hh))[:, None]
        v_i, v_f, v_g, v_o = v_i * r, v_f * r, v_g * r, v_o * r
        tl.store(xhat + gate, v_i, mask=mask)
        tl.store(xhat + gate + H, v_f, mask=mask)
        tl.store(xhat + gate + 2 * H, v_g, mask=mask)
        tl.store(xhat + gate + 3 * H, v_o, mask=mask)
        tl.store(rstd_hh + row, r, mask=row < B)
        g_mask = col < H
        v_i = v_i * tl.load(gamma_hh + col, mask=g_mask, other=0.0)
        v_f = v_f * tl.load(gamma_hh + H + col, mask=g_mask, other=0.0)
        v_g = v_g * tl.load(gamma_hh + 2 * H + col, mask=g_mask, other=0.0)
        v_o = v_o * tl.load(gamma_hh + 3 * H + col, mask=g_mask, other=0.0)
    i = sigmoid(tl.load(ax + gate, mask=mask, other=0.0) + v_i)
    f = sigmoid(tl.load(ax + gate + H, mask=mask, other=0.0) + v_f)
    g = tanh(tl.load(ax + gate + 2 * H, mask=mask, other=0.0) + v_g)
    o = sigmoid(tl.load(ax + gate + 3 * H, mask=mask, other=0.0) + v_o)
    tl.store(z + gate, i, mask=mask)
    tl.store(z + gate + H, f, mask=mask)
    tl.store(z + gate + 2 * H, g, mask=mask)
    tl.store(z + gate + 3 * H, o, mask=mask)
    cp = tl.load(c_prev + unit, mask=mask, other=0.0)
    c_new = f * cp + i * g
    c_out = c_new
    if LN_C:
        mean_c = (tl.sum(c_new, 1) / H)[:, None]
        x_c = tl.where(mask, c_new - mean_c, 0.0)
        r_c = (1.0 / tl.sqrt(tl.sum(x_c * x_c, 1) / H + eps_c))[:, None]
        x_c = x_c * r_c
        tl.store(rstd_c + row, r_c, mask=row < B)
        tl.store(cn + unit, x_c, mask=mask)
        c_out = x_c * tl.load(gamma_c + col, mask=col < H, other=0.0)
        if BETA_C:
            c_out = c_out + tl.load(beta_c + col, mask=col < H, other=0.0)
    else:
        tl.store(cn + unit, c_new, mask=mask)
    h_new = o * tanh(c_out)
    if ZONE_H:
        hp = tl.load(h_prev + unit, mask=mask, other=0.0)
        h_new = hp + tl.load(u_h + row * uh_b + col * uh_h, mask=mask, other=0.0) * (h_new - hp)
    if ZONE_C:
        c_new = cp + tl.load(u_c + row * uc_b + col * uc_h, mask=mask, other=0.0) * (c_new - cp)
    tl.store(h + unit, h_new, mask=mask)
    tl.store(c + unit, c_new, mask=mask)
    if DROP:
        tl.store(hm + unit, h_new * tl.load(drop + unit, mask=mask, other=0.0), mask=mask)


@triton.jit
def lstm_backward_step(
    dh_seq, dh_mm, dh_dir, dc, z, cn, c_prev, gamma_hh, gamma_c, beta_c, u_h, u_c, drop,
    xhat, rstd_hh, rstd_c, d_ax, d_v, d_cout,
    B, H, uh_b, uh_h, uc_b, uc_h,
    LN_HH: tl.constexpr, LN_C: tl.constexpr, BETA_C: tl.constexpr, ZONE_H: tl.constexpr,
    ZONE_C: tl.constexpr, DROP: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """From dL/dh_t = dh_seq + m * dh_mm (dh_mm = dL/dv_{t+1} W_hh) + dh_dir and dL/dc_t = dc:
    writes d_ax = dL/d(pre-activation gates) (B, 4H), d_v = dL/dv (LN_HH; else d_ax is it),
    d_cout = dL/d[LN_c](c~) (LN_C, for d gamma_c), and in place dh_dir = (1 - u^h) dL/dh_t
    (ZONE_H) and dc = dL/dc_{t-1}."""
    row = tl.program_id(0) * ROWS + tl.arange(0, ROWS)[:, None]
    col = tl.arange(0, BLOCK)[None, :]
    mask = (row < B) & (col < H)
    gate = row * 4 * H + col
    unit = row * H + col
    carried = tl.load(dh_mm + unit, mask=mask, other=0.0)
    if DROP:
        carried = carried * tl.load(drop + unit, mask=mask, other=0.0)
    dh = tl.load(dh_seq + unit, mask=mask, other=0.0) + carried
    if ZONE_H:
        dh = dh + tl.load(dh_dir + unit, mask=mask, other=0.0)
        d_new = dh * tl.load(u_h + row * uh_b + col * uh_h, mask=mask, other=0.0)
        tl.store(dh_dir + unit, dh - d_new, mask=mask)
        dh = d_new  # dL/dh~
    i = tl.load(z + gate, mask=mask, other=0.0)
    f = tl.load(z + gate + H, mask=mask, other=0.0)
    g = tl.load(z + gate + 2 * H, mask=mask, other=0.0)
    o = tl.load(z + gate + 3 * H, mask=mask, other=0.0)
    x_c = tl.load(cn + unit, mask=mask, other=0.0)
    c_out = x_c
    if LN_C:
        gam_c = tl.load(gamma_c + col, mask=col < H, other=0.0)
        c_out = x_c * gam_c
        if BETA_C:
            c_out = c_out + tl.load(beta_c + col, mask=col < H, other=0.0)
    tc = tanh(c_out)
    d_o = dh * tc * o * (1.0 - o)
    d_cn = dh * o * (1.0 - tc * tc)  # dL/d[LN_c](c~)
    if LN_C:
        tl.store(d_cout + unit, d_cn, mask=mask)
        gx = d_cn * gam_c
        m1 = (tl.sum(gx, 1) / H)[:, None]
        m2 = (tl.sum(gx * x_c, 1) / H)[:, None]
        r_c = tl.load(rstd_c + row, mask=row < B, other=0.0)
        d_cn = tl.where(mask, r_c * (gx - m1 - x_c * m2), 0.0)
    dcv = tl.load(dc + unit, mask=mask, other=0.0)
    if ZONE_C:
        uc = tl.load(u_c + row * uc_b + col * uc_h, mask=mask, other=0.0)
        d_cn = d_cn + dcv * uc
        dc_prev = dcv - dcv * uc
    else:
        d_cn = d_cn + dcv
        dc_prev = dcv * 0.0
    cp = tl.load(c_prev + unit, mask=mask, other=0.0)
    d_i = d_cn * g * i * (1.0 - i)
    d_f = d_cn * cp * f * (1.0 - f)
    d_g = d_cn * i * (1.0 - g * g)
    tl.store(dc + unit, dc_prev + d_cn * f, mask=mask)
    tl.store(d_ax + gate, d_i, mask=mask)
    tl.store(d_ax + gate + H, d_f, mask=mask)
    tl.store(d_ax + gate + 2 * H, d_g, mask=mask)
    tl.store(d_ax + gate + 3 * H, d_o, mask=mask)
    if LN_HH:
        g_mask = col < H
        g_i = d_i * tl.load(gamma_hh + col, mask=g_mask, other=0.0)
        g_f = d_f * tl.load(gamma_hh + H + col, mask=g_mask, other=0.0)
        g_g = d_g * tl.load(gamma_hh + 2 * H + col, mask=g_mask, other=0.0)
        g_o = d_o * tl.load(gamma_hh + 3 * H + col, mask=g_mask, other=0.0)
        x_i = tl.load(xhat + gate, mask=mask, other=0.0)
        x_f = tl.load(xhat + gate + H, mask=mask, other=0.0)
        x_g = tl.load(xhat + gate + 2 * H, mask=mask, other=0.0)
        x_o = tl.load(xhat + gate + 3 * H, mask=mask, other=0.0)
        n = 4 * H
        m1 = (tl.sum(g_i, 1) + tl.sum(g_f, 1) + tl.sum(g_g, 1) + tl.sum(g_o, 1)) / n
        m2 = tl.sum(g_i * x_i, 1) + tl.sum(g_f * x_f, 1) + tl.sum(g_g * x_g, 1)
        m2 = (m2 + tl.sum(g_o * x_o, 1)) / n
        m1, m2 = m1[:, None], m2[:, None]
        r = tl.load(rstd_hh + row, mask=row < B, other=0.0)
        tl.store(d_v + gate, r * (g_i - m1 - x_i * m2), mask=mask)
        tl.store(d_v + gate + H, r * (g_f - m1 - x_f * m2), mask=mask)
        tl.store(d_v + gate + 2 * H, r * (g_g - m1 - x_g * m2), mask=mask)
        tl.store(d_v + gate + 3 * H, r * (g_o - m1 - x_o * m2), mask=mask)
