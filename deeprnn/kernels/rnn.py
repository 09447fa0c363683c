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

from deeprnn.kernels.projection import RecurrentProjection


def _derivative(nonlinearity: str, y: Tensor) -> Tensor:
    """f'(a) written through y = f(a); relu'(0) = 0 as torch's."""
    if nonlinearity == "tanh":
        return 1 - y * y
    if nonlinearity == "sigmoid":
        return y * (1 - y)
    return (y > 0).to(y.dtype)


class RNNRecurrence(Function):
    """apply(a_x, h0, weight_hh, gamma_hh, drop, update_h, nonlinearity, eps)
    -> (h (T, B, H) every step's carried h, h_T (B, H)).
    """

    @staticmethod
    def forward(ctx, a_x, h0, weight_hh, gamma_hh, drop, u_h, nonlinearity, eps):
        T, B, H = a_x.shape
        proj = RecurrentProjection(weight_hh, gamma_hh, None, drop, eps, B, T)
        y = a_x.new_empty(T, B, H)  # h~_t
        h = y if u_h is None else a_x.new_empty(T, B, H)  # carried h_t
        a_s, y_s, h_s = a_x.unbind(0), y.unbind(0), h.unbind(0)
        uh_s = None if u_h is None else u_h.unbind(0)
        act = {"tanh": Tensor.tanh_, "relu": Tensor.relu_, "sigmoid": Tensor.sigmoid_}
        activate = act[nonlinearity]
        h_prev = h0
        for t in range(T):
            proj.forward(t, h_prev, y_s[t], add=a_s[t])
            activate(y_s[t])
            if uh_s is not None:
                torch.lerp(h_prev, y_s[t], uh_s[t], out=h_s[t])
            h_prev = h_s[t]
        ctx.proj, ctx.nonlinearity = proj, nonlinearity
        ctx.save_for_backward(h0, y, h, u_h)
        return h, h[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_h, d_hT):
        h0, y, h, u_h = ctx.saved_tensors
        proj = ctx.proj
        T = h.shape[0]
        k = _derivative(ctx.nonlinearity, y)
        if u_h is not None:
            k = k * u_h
        keep = None if u_h is None else (1 - u_h).unbind(0)
        d_a = torch.empty_like(y)
        d_a_s, k_s, dh_s = d_a.unbind(0), k.unbind(0), d_h.unbind(0)
        dh = dh_s[T - 1] + d_hT
        for t in reversed(range(T)):
            torch.mul(k_s[t], dh, out=d_a_s[t])
            add = dh_s[t - 1] if t > 0 else None
            if keep is not None:
                add = dh * keep[t] if add is None else torch.addcmul(add, dh, keep[t])
            dh = proj.backward(t, d_a_s[t], add)
        h_prev = torch.cat([h0.unsqueeze(0), h[:-1]])
        d_weight, d_gamma, _ = proj.grads(d_a, h_prev)
        return d_a, dh, d_weight, d_gamma, None, None, None, None
