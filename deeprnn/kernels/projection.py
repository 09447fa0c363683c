"""The recurrent projection of the fused recurrences, one step at a time, and its BPTT.

    a_h,t = [LN](W_hh (m * h_{t-1})) + beta        (+ `add`, the hoisted input part)

where m is the recurrent-dropout mask (or 1) and beta is LN's bias plus b_hh where those
are not folded into the hoisted input part. Forward keeps only LN's per-step statistics
(`new_stats`); BPTT goes back over blocks of steps (`block_steps`): per block it recomputes
v = W_hh (m * h_{t-1}) of all the block's steps with ONE matrix product (`block_inputs`),
gives dL/dh_{t-1} with one matrix product per step (`project_backward`), and adds the
block's share of dW_hh and d gamma with one matrix product (`block_grads`). So neither v
nor dL/dv is ever kept for all steps. The functions are TorchScript-compatible (`script.py`).
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
    stats: Tensor,
) -> None:
    """out = [add] + [LN](W_hh (m * h)) + [beta] for one step; h (B, H), out (B, G*H).

    With layer norm, the mean and rstd of W_hh (m * h) go to `stats` (2, B, 1), this step's
    slice of `new_stats` (BPTT recomputes v itself).
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
    v = torch.mm(h, weight_t)
    y, mean, rstd = torch.native_layer_norm(v, [v.shape[1]], gamma, beta, eps)
    # Copied into memory allocated up front: small tensors kept per step pin the heap
    # between the steps' freed temporaries (measured: ~35 MB more RSS at T = 1000, B = 16).
    torch.stack([mean, rstd], out=stats)
    if add is None:
        out.copy_(y)
    else:
        torch.add(add, y, out=out)


def new_stats(like: Tensor, time: int, batch: int, layer_norm: bool) -> Tensor:
    """Room for a layer norm's per-step (mean, rstd): (T, 2, B, 1); (T, 2, 0, 1) without."""
    return like.new_empty(time, 2, batch if layer_norm else 0, 1)


def step_stats(stats: Tensor, time: int, layer_norm: bool) -> tuple[list[Tensor], list[Tensor]]:
    """The steps' means and rstds (B, 1) in `stats` (`new_stats`); without layer norm,
    `stats` itself as a placeholder (no views made)."""
    if not layer_norm:
        return [stats] * time, [stats] * time
    return stats[:, 0].unbind(0), stats[:, 1].unbind(0)


def block_inputs(h0: Tensor, h: Tensor, start: int, stop: int, drop: Tensor | None) -> Tensor:
    """m * h_{t-1} (stop - start, B, H) of steps start .. stop - 1, from h0 and the carried h.

    With layer norm, BPTT recomputes v = W_hh (m * h_{t-1}) of the block from it as
    `h_in @ weight.t()`: the forward's v up to rounding (a summation order of its own)."""
    h_in = h[start - 1 : stop - 1] if start > 0 else torch.cat([h0.unsqueeze(0), h[: stop - 1]])
    return h_in if drop is None else h_in * drop


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
    """([add] + m * dL/d(m h), dL/d(W_hh (m * h))) of one step from d_out = dL/d out;
    `pre` = W_hh (m * h) is only read with layer norm."""
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


def block_grads(
    d_weight: Tensor,
    d_gamma: Tensor | None,
    d_out: Tensor,
    d_pre: Tensor,
    h_in: Tensor,
    pre: Tensor,
    stats: Tensor,
) -> None:
    """Adds one block's share to dW_hh (G*H, H) and, with layer norm, to d gamma (G*H,).

    d_out = dL/d a_h (n, B, G*H) of the block's n steps, d_pre = dL/d(W_hh m h) (d_out
    itself without layer norm), h_in = m * h_{t-1} (`block_inputs`); with layer norm
    pre = W_hh m h_{t-1} (overwritten here) and the steps' stats (n, 2, B, 1)."""
    d_weight.addmm_(d_pre.flatten(0, 1).t(), h_in.flatten(0, 1))
    if d_gamma is not None:
        x_hat = pre.sub_(stats[:, 0]).mul_(stats[:, 1])
        d_gamma.add_(x_hat.mul_(d_out).sum((0, 1)))


def block_steps(time: int, step_size: int, block_size: int = 1 << 16) -> int:
    """Steps per block of BPTT, so that a block's local derivatives (computed at once, about
    `block_size` elements per (B, H) quantity) stay in cache."""
    return max(1, min(time, block_size // max(1, step_size)))
