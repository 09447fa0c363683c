"""The GRU recurrence as one autograd Function with an explicit BPTT backward.

Given the hoisted input part a_x,t = [LN_ih](W_ih x_t) + b_ih (T, B, 3H), step t is

    a_h = [LN_hh](W_hh (m * h_{t-1})) + bias      (bias = b_hh, plus LN_hh's own bias)
    r = sigmoid(a_x[r] + a_h[r]);  z = sigmoid(a_x[z] + a_h[z]);  n = tanh(a_x[n] + r * a_h[n])
    h~ = (1 - z) * n + z * h_{t-1};    h_t = h_{t-1} + u_t (h~ - h_{t-1})

b_hh cannot join the hoisted part: its n slice is multiplied by r. Backward as in
`deeprnn.kernels.lstm`: local derivatives of all steps at once, a short loop over time.
"""

from __future__ import annotations

import torch
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from deeprnn.kernels.projection import RecurrentProjection


class GRURecurrence(Function):
    """apply(a_x, h0, weight_hh, bias, gamma_hh, drop, update_h, eps)
    -> (h (T, B, H) every step's carried h, h_T (B, H)).
    """

    @staticmethod
    def forward(ctx, a_x, h0, weight_hh, bias, gamma_hh, drop, u_h, eps):
        T, B, G = a_x.shape
        H = G // 3
        proj = RecurrentProjection(weight_hh, gamma_hh, bias, drop, eps, B, T)
        a_h = a_x.new_empty(T, B, G)  # the recurrent part, r * a_h[n] needs it
        gates = a_x.new_empty(T, B, G)  # r, z, n after their nonlinearities
        h = a_x.new_empty(T, B, H)  # carried h_t
        ah_s, h_s = a_h.unbind(0), h.unbind(0)
        ax_rz, ax_n = a_x[..., : 2 * H].unbind(0), a_x[..., 2 * H :].unbind(0)
        ah_rz, ah_n = a_h[..., : 2 * H].unbind(0), a_h[..., 2 * H :].unbind(0)
        rz_s, n_s = gates[..., : 2 * H].unbind(0), gates[..., 2 * H :].unbind(0)
        r_s, z_s = gates[..., :H].unbind(0), gates[..., H : 2 * H].unbind(0)
        uh_s = None if u_h is None else u_h.unbind(0)
        h_prev = h0
        for t in range(T):
            proj.forward(t, h_prev, ah_s[t])
            torch.add(ax_rz[t], ah_rz[t], out=rz_s[t]).sigmoid_()
            torch.addcmul(ax_n[t], r_s[t], ah_n[t], out=n_s[t]).tanh_()
            if uh_s is None:
                torch.lerp(n_s[t], h_prev, z_s[t], out=h_s[t])
            else:
                torch.lerp(h_prev, torch.lerp(n_s[t], h_prev, z_s[t]), uh_s[t], out=h_s[t])
            h_prev = h_s[t]
        ctx.proj = proj
        ctx.save_for_backward(h0, a_h, gates, h, u_h)
        return h, h[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_h, d_hT):
        h0, a_h, gates, h, u_h = ctx.saved_tensors
        proj = ctx.proj
        T, B, H = h.shape
        r, z, n = gates.chunk(3, dim=-1)
        h_prev = torch.cat([h0.unsqueeze(0), h[:-1]])
        # Local derivatives of all steps at once, u folded in: d a_x = dL/dh_t * k_x, ...
        u = 1.0 if u_h is None else u_h
        k_n = (1 - z) * (1 - n * n) * u
        k_r = k_n * a_h[..., 2 * H :] * r * (1 - r)
        k_z = (h_prev - n) * z * (1 - z) * u
        k_x = torch.cat([k_r, k_z, k_n], dim=-1).unflatten(-1, (3, H)).unbind(0)
        k_h = torch.cat([k_r, k_z, k_n * r], dim=-1).unflatten(-1, (3, H)).unbind(0)
        k_prev = (1 - u * (1 - z)).unbind(0)  # the direct path h_{t-1} -> h_t
        d_ax, d_ah = torch.empty_like(gates), torch.empty_like(gates)
        d_ax_s = d_ax.unflatten(-1, (3, H)).unbind(0)
        d_ah3_s, d_ah_s = d_ah.unflatten(-1, (3, H)).unbind(0), d_ah.unbind(0)
        dh_s = d_h.unbind(0)
        dh = dh_s[T - 1] + d_hT
        for t in reversed(range(T)):
            dh3 = dh.unsqueeze(1)
            torch.mul(k_x[t], dh3, out=d_ax_s[t])
            torch.mul(k_h[t], dh3, out=d_ah3_s[t])
            add = torch.addcmul(dh_s[t - 1], dh, k_prev[t]) if t > 0 else dh * k_prev[t]
            dh = proj.backward(t, d_ah_s[t], add)
        d_weight, d_gamma, d_bias = proj.grads(d_ah, h_prev)
        return d_ax, dh, d_weight, d_bias, d_gamma, None, None, None
