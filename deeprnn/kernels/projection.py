"""The recurrent projection of the fused recurrences, one step at a time, and its BPTT.

    a_h,t = [LN](W_hh (m * h_{t-1})) + beta        (+ `add`, the hoisted input part)

where m is the recurrent-dropout mask (or 1) and beta is LN's bias plus b_hh where those
are not folded into the hoisted input part. Forward keeps what BPTT needs; backward gives
dL/dh_{t-1} with one matrix product per step; the weight gradient is ONE matrix product
over all steps at the end. The step functions are TorchScript-compatible (`script.py`).
"""

from __future__ import annotations

import torch
from torch import Tensor


def project(
    h: Tensor,
    weight_t: Tensor,
    gamma: Tensor | None,
    beta: Tensor | None,
    drop: Tensor | None,
    eps: float,
    add: Tensor | None,
    out: Tensor,
    pre: Tensor,
    stats: list[Tensor],
) -> None:
    """out = [add] + [LN](W_hh (m * h)) + [beta] for one step; h (B, H), out (B, G*H).

    With layer norm, W_hh (m * h) goes to `pre` (B, G*H) and its mean, rstd to `stats`.
    """
    if drop is not None:
        h = h * drop
    if gamma is None:
        bias = add if add is not None else beta
        if bias is None:
            torch.mm(h, weight_t, out=out)
        else:
            torch.addmm(bias, h, weight_t, out=out)
        return
    v = torch.mm(h, weight_t, out=pre)
    y, mean, rstd = torch.native_layer_norm(v, [v.shape[1]], gamma, beta, eps)
    stats.append(mean)
    stats.append(rstd)
    if add is None:
        out.copy_(y)
    else:
        torch.add(add, y, out=out)


def project_backward(
    d_out: Tensor,
    weight: Tensor,
    gamma: Tensor | None,
    drop: Tensor | None,
    pre: Tensor,
    mean: Tensor,
    rstd: Tensor,
    add: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """([add] + m * dL/d(m h), dL/d(W_hh (m * h))) of one step from d_out = dL/d out."""
    if gamma is not None:
        d_out = torch.ops.aten.native_layer_norm_backward(
            d_out, pre, [pre.shape[1]], mean, rstd, gamma, None, [True, False, False]
        )[0]
    if drop is not None:
        d_h = d_out.mm(weight) * drop
        return (d_h if add is None else d_h.add_(add)), d_out
    if add is None:
        return d_out.mm(weight), d_out
    return torch.addmm(add, d_out, weight), d_out


def projection_grads(
    d_out: Tensor,
    d_pre: list[Tensor],
    h0: Tensor,
    h: Tensor,
    drop: Tensor | None,
    gamma: Tensor | None,
    pre: Tensor,
    stats: list[Tensor],
) -> tuple[Tensor, Tensor | None, Tensor]:
    """(dW_hh, d gamma, d beta) of all steps from d_out = dL/d a_h (T, B, G*H), h0 (B, H) and
    the carried h (T, B, H); with layer norm, the per-step d_pre (backwards in time; emptied
    here), pre and the per-step stats too."""
    if gamma is None:
        d_pre = d_out
    else:
        steps, d_pre = d_pre, torch.stack(d_pre[::-1])
        steps.clear()  # frees the per-step tensors now
    h0, h = h0.unsqueeze(0), h[:-1]  # h_{t-1} of step 0, and of steps 1 .. T-1
    if drop is not None:
        h0, h = h0 * drop, h * drop
    d_weight = d_pre[0].t().mm(h0[0])  # (G*H, H)
    if d_pre.shape[0] > 1:
        d_weight.addmm_(d_pre[1:].flatten(0, 1).t(), h.flatten(0, 1))
    d_gamma = None
    if gamma is not None:
        mean, rstd = torch.stack(stats[0::2]), torch.stack(stats[1::2])
        d_gamma = (pre - mean).mul_(rstd).mul_(d_out).sum((0, 1))  # one (T, B, G*H) temporary
    return d_weight, d_gamma, d_out.sum((0, 1))


def block_steps(time: int, step_size: int, block_size: int = 1 << 16) -> int:
    """Steps per block of BPTT, so that a block's local derivatives (computed at once, about
    `block_size` elements per (B, H) quantity) stay in cache."""
    return max(1, min(time, block_size // max(1, step_size)))
