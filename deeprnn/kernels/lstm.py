"""The LSTM recurrence as one autograd Function with an explicit BPTT backward.

Given the hoisted input part a_x,t = [LN_ih](W_ih x_t) + every bias (T, B, 4H), step t is

    i, f, g, o = act(a_x,t + [LN_hh](W_hh (m * h_{t-1})))      sigmoid, sigmoid, tanh, sigmoid
    c~ = f * c_{t-1} + i * g;    h~ = o * tanh([LN_c](c~))
    c_t = c_{t-1} + u^c_t (c~ - c_{t-1});    h_t = h_{t-1} + u^h_t (h~ - h_{t-1})

u = update weights (zoneout times the length mask; None means 1). The g rows of a_x and
of the recurrent projection come in DOUBLED, so that one sigmoid covers all four gates:
g = tanh(x) = 2 sigmoid(2x) - 1 (torch's CPU tanh is ~3x slower than its sigmoid).

Backward: all local derivatives are computed at once over (T, B); the loop over time only
multiplies them with the carried dL/dh, dL/dc and does one matrix product for dL/dh_{t-1}.
"""

from __future__ import annotations

import torch
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from deeprnn.kernels.projection import RecurrentProjection


class LSTMRecurrence(Function):
    """apply(a_x, h0, c0, weight_hh, gamma_hh, gamma_c, beta_c, drop, update_h, update_c, eps)
    -> (h (T, B, H) every step's carried h, h_T (B, H), c_T (B, H)).

    a_x (T, B, 4H), and weight_hh (4H, H) or, with layer norm, gamma_hh (4H,): g rows doubled.
    """

    @staticmethod
    def forward(ctx, a_x, h0, c0, weight_hh, gamma_hh, gamma_c, beta_c, drop, u_h, u_c, eps):
        T, B, G = a_x.shape
        H = G // 4
        proj = RecurrentProjection(weight_hh, gamma_hh, None, drop, eps, B, T)
        z = a_x.new_empty(T, B, G)  # i, f, g, o after their nonlinearities
        c_new = a_x.new_empty(T, B, H)  # c~_t
        c = c_new if u_c is None else a_x.new_empty(T, B, H)  # carried c_t
        tanh_c = a_x.new_empty(T, B, H)  # tanh([LN_c](c~_t))
        h = a_x.new_empty(T, B, H)  # carried h_t
        a_s, z_s, cn_s, c_s, tc_s, h_s = (v.unbind(0) for v in (a_x, z, c_new, c, tanh_c, h))
        i_s, f_s, g_s, o_s = (v.unbind(0) for v in z.chunk(4, dim=-1))
        minus_one = a_x.new_full((), -1.0)
        uh_s = None if u_h is None else u_h.unbind(0)
        uc_s = None if u_c is None else u_c.unbind(0)
        ln_c = gamma_c is not None
        c_means, c_rstds = [], []
        h_prev, c_prev = h0, c0
        for t in range(T):
            proj.forward(t, h_prev, z_s[t], add=a_s[t])
            z_s[t].sigmoid_()
            torch.add(minus_one, g_s[t], alpha=2, out=g_s[t])  # tanh(x) = 2 sigmoid(2x) - 1
            torch.mul(f_s[t], c_prev, out=cn_s[t]).addcmul_(i_s[t], g_s[t])
            c_out = cn_s[t]
            if ln_c:
                c_out, mean, rstd = torch.native_layer_norm(c_out, [H], gamma_c, beta_c, eps)
                c_means.append(mean)
                c_rstds.append(rstd)
            torch.tanh(c_out, out=tc_s[t])
            if uh_s is None:
                torch.mul(o_s[t], tc_s[t], out=h_s[t])
            else:
                torch.lerp(h_prev, o_s[t] * tc_s[t], uh_s[t], out=h_s[t])
            if uc_s is not None:
                torch.lerp(c_prev, cn_s[t], uc_s[t], out=c_s[t])
            h_prev, c_prev = h_s[t], c_s[t]
        ctx.proj, ctx.ln_c, ctx.c_stats = proj, ln_c, (c_means, c_rstds)
        ctx.save_for_backward(h0, c0, z, c_new, c, tanh_c, h, gamma_c, u_h, u_c)
        return h, h[-1].clone(), c[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_h, d_hT, d_cT):
        h0, c0, z, c_new, c, tanh_c, h, gamma_c, u_h, u_c = ctx.saved_tensors
        proj = ctx.proj
        T, B, H = h.shape
        i, f, g, o = z.chunk(4, dim=-1)
        c_prev = torch.cat([c0.unsqueeze(0), c[:-1]])
        # Local derivatives of all steps at once; u^h folds into those behind h~.
        k_o = (1 - o).mul_(o).mul_(tanh_c)  # dL/da_o = dL/dh_t * k_o
        k_c = (tanh_c * tanh_c).sub_(1).mul_(o).neg_()  # dL/d[LN_c](c~) = dL/dh_t * k_c
        if u_h is not None:
            k_o.mul_(u_h)
            k_c.mul_(u_h)
        k_ifg = z.new_empty(T, B, 3 * H)  # dL/da_{i,f,g} = dL/dc~ * k_{i,f,g}
        k_i, k_f, k_g = k_ifg.chunk(3, dim=-1)
        torch.mul(1 - i, i, out=k_i).mul_(g)
        torch.mul(1 - f, f, out=k_f).mul_(c_prev)
        torch.mul(g, g, out=k_g).sub_(1).mul_(i).mul_(-0.5)  # 2x doubled input: (1 - g^2) / 2
        d_z = torch.empty_like(z)  # dL/d(pre-activation gates) = dL/da_x
        d_ifg_s = d_z[..., : 3 * H].unflatten(-1, (3, H)).unbind(0)
        d_o_s = d_z[..., 3 * H :].unbind(0)
        d_z_s = d_z.unbind(0)
        k_ifg_s = k_ifg.unflatten(-1, (3, H)).unbind(0)
        k_o_s, k_c_s, f_s, dh_s = k_o.unbind(0), k_c.unbind(0), f.unbind(0), d_h.unbind(0)
        keep_h = None if u_h is None else (1 - u_h).unbind(0)
        keep_c = None if u_c is None else (1 - u_c).unbind(0)
        uc_s = None if u_c is None else u_c.unbind(0)
        if ctx.ln_c:
            cn_s = c_new.unbind(0)
            means, rstds = ctx.c_stats  # per step: the kernel wants them contiguous
            d_cout_all = []
        dh = dh_s[T - 1] + d_hT
        dc = d_cT
        for t in reversed(range(T)):
            dc_in = dc if uc_s is None else dc * uc_s[t]  # via c_t = .. + u^c c~
            if ctx.ln_c:
                d_cout = dh * k_c_s[t]
                d_cout_all.append(d_cout)
                d_cn = torch.ops.aten.native_layer_norm_backward(
                    d_cout, cn_s[t], [H], means[t], rstds[t], gamma_c, None,
                    [True, False, False],
                )[0].add_(dc_in)  # fmt: skip
            else:
                d_cn = torch.addcmul(dc_in, dh, k_c_s[t])
            torch.mul(k_ifg_s[t], d_cn.unsqueeze(1), out=d_ifg_s[t])
            torch.mul(k_o_s[t], dh, out=d_o_s[t])
            dc_next = d_cn * f_s[t]
            dc = dc_next if keep_c is None else dc_next.addcmul_(dc, keep_c[t])
            add = dh_s[t - 1] if t > 0 else None
            if keep_h is not None:
                add = dh * keep_h[t] if add is None else torch.addcmul(add, dh, keep_h[t])
            dh = proj.backward(t, d_z_s[t], add)
        h_prev = torch.cat([h0.unsqueeze(0), h[:-1]])
        d_weight, d_gamma, _ = proj.grads(d_z, h_prev)
        d_gamma_c = d_beta_c = None
        if ctx.ln_c:
            d_cout = torch.stack(d_cout_all[::-1])
            mean, rstd = (torch.stack(s) for s in ctx.c_stats)
            d_gamma_c = (d_cout * ((c_new - mean) * rstd)).sum((0, 1))
            d_beta_c = d_cout.sum((0, 1))
        return d_z, dh, dc, d_weight, d_gamma, d_gamma_c, d_beta_c, None, None, None, None
