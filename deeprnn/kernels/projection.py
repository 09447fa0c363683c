"""The recurrent projection of the fused recurrences, one step at a time, and its BPTT.

    a_h,t = [LN](W_hh (m * h_{t-1})) + bias        (+ `add`, the hoisted input part)

where m is the recurrent-dropout mask (or 1) and LN has no bias of its own here: the
drivers fold it into `bias` or into the hoisted input projection, which is the same sum.
Forward stores what BPTT needs; backward gives dL/dh_{t-1} one matrix product per step;
the weight gradient is ONE matrix product over all steps at the end.
"""

from __future__ import annotations

import torch
from torch import Tensor


class RecurrentProjection:
    """W_hh (G*H, H), optional LN gain (G*H,), bias (G*H,), dropout mask (B, H), over T steps."""

    def __init__(
        self,
        weight: Tensor,
        gamma: Tensor | None,
        bias: Tensor | None,
        drop: Tensor | None,
        eps: float,
        batch: int,
        time: int,
    ):
        self.weight, self.weight_t = weight, weight.t()
        self.gamma, self.bias, self.drop, self.eps = gamma, bias, drop, eps
        self.shape = [weight.shape[0]]
        if gamma is not None:
            self.pre_norm = weight.new_empty(time, batch, weight.shape[0])  # W_hh (m * h)
            self.pre_steps = self.pre_norm.unbind(0)
            self.means: list[Tensor] = []
            self.rstds: list[Tensor] = []
            self.d_pre: list[Tensor | None] = [None] * time  # dL/d(W_hh (m * h)) per step

    def forward(self, t: int, h: Tensor, out: Tensor, add: Tensor | None = None) -> None:
        """out = [add] + [LN](W_hh (m * h)) + [bias] for step t; h (B, H), out (B, G*H)."""
        if self.drop is not None:
            h = h * self.drop
        if self.gamma is None:
            bias = add if add is not None else self.bias
            if bias is None:
                torch.mm(h, self.weight_t, out=out)
            else:
                torch.addmm(bias, h, self.weight_t, out=out)
            return
        v = torch.mm(h, self.weight_t, out=self.pre_steps[t])
        y, mean, rstd = torch.native_layer_norm(v, self.shape, self.gamma, self.bias, self.eps)
        self.means.append(mean)
        self.rstds.append(rstd)
        if add is None:
            out.copy_(y)
        else:
            torch.add(add, y, out=out)

    def backward(self, t: int, d_out: Tensor, add: Tensor | None) -> Tensor:
        """[add] + m * dL/d(m h) for step t, given d_out = dL/d out (B, G*H). Call t = T-1..0."""
        if self.gamma is not None:
            d_out = torch.ops.aten.native_layer_norm_backward(
                d_out, self.pre_steps[t], self.shape, self.means[t], self.rstds[t],
                self.gamma, None, [True, False, False],
            )[0]  # fmt: skip
            self.d_pre[t] = d_out
        if self.drop is not None:
            d_h = d_out.mm(self.weight) * self.drop
            return d_h if add is None else d_h.add_(add)
        if add is None:
            return d_out.mm(self.weight)
        return torch.addmm(add, d_out, self.weight)

    def grads(self, d_out: Tensor, h_prev: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """(dW_hh, d gamma, d bias) from d_out (T, B, G*H) and h_{t-1} (T, B, H) of all steps."""
        if self.drop is not None:
            h_prev = h_prev * self.drop
        d_pre, d_gamma = d_out, None
        if self.gamma is not None:
            d_pre = torch.stack(self.d_pre)  # (T, B, G*H)
            mean = torch.stack(self.means)
            rstd = torch.stack(self.rstds)
            d_gamma = (d_out * ((self.pre_norm - mean) * rstd)).sum((0, 1))
        d_weight = d_pre.flatten(0, 1).t().mm(h_prev.flatten(0, 1))  # (G*H, H)
        d_bias = None if self.bias is None else d_out.sum((0, 1))
        return d_weight, d_gamma, d_bias
