"""Variable lengths on torch's padded sequence kernels, without packing.

On the CPU, torch's packed-sequence LSTM / GRU runs a generic per-step implementation with
an autograd node per step: a batch with `lengths` cost ~3x the same padded batch (measured
here: T=100, B=64, I=128, H=256, lengths in [T/2, T]). The padded kernel (oneDNN) is fast,
and a forward-time recurrence never lets a padded step change an earlier one, so:

- rows are sorted by length (longest first) and time is cut into SEGMENTS that end at the
  rows' lengths; each segment is one padded kernel call on the rows still running, so
  finished rows drop out (as packing does) and short batches cost less than padded ones;
- a row that ends at a segment's end takes the kernel's final state;
- each kernel call costs about one or two full-batch steps of set-up, so nearby lengths
  share a segment (`segment_ends` picks the cheapest cut): a row that ends inside one
  takes h from the outputs, and an LSTM's c (not among the outputs) from its gates,
  recomputed from x and those h over the segment's first steps.
Same math, so outputs, final states and gradients equal the packed kernel's up to float
rounding (the oracle tests check it).
The reverse direction runs the same on each row reversed within its length.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

# What one more kernel call costs (set-up, forward + backward), in steps of one row of an
# LSTM layer: measured ~80-125 at H = 64-256 with one thread (benchmarks/lengths.py).
CALL_COST = 100.0
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def segment_ends(
    lengths: list[int], call_cost: float = CALL_COST, recompute: bool = False
) -> list[int]:
    """Ascending ends of the kernel calls for these lengths, the cheapest cut of time:
    a segment (s, e] costs `call_cost` + (rows longer than s) x (e - s) row-steps, plus,
    with `recompute` (an LSTM, whose c is recomputed for rows ending inside a segment),
    the n - s steps of each row that ends at n inside it. Every end is a length (the
    longest always is one). Exact dynamic programme over the distinct lengths."""
    ends = sorted({n for n in lengths if n > 0})
    if not ends:
        return []
    points = [0, *ends]
    longer = [sum(n > p for n in lengths) for p in points]  # rows running after each point
    # Rows ending exactly at points[k]: longer[k-1] - longer[k]; prefix sums of their count
    # and of their steps make the recompute term of any segment O(1).
    count, steps = [0.0] * len(points), [0.0] * len(points)
    for k in range(1, len(points)):
        ending = longer[k - 1] - longer[k]
        count[k], steps[k] = count[k - 1] + ending, steps[k - 1] + ending * points[k]
    best, back = [0.0] + [float("inf")] * len(ends), [0] * len(points)
    for j in range(1, len(points)):
        for i in range(j):
            cost = best[i] + call_cost + longer[i] * (points[j] - points[i])
            if recompute and j - 1 > i:  # rows ending at points[i+1 .. j-1]
                inside = count[j - 1] - count[i]
                cost += steps[j - 1] - steps[i] - points[i] * inside
            if cost < best[j]:
                best[j], back[j] = cost, i
    cut, j = [], len(ends)
    while j:
        cut.append(points[j])
        j = back[j]
    return cut[::-1]


def forward_ragged(
    kernel,
    cell: str,
    x: Tensor,
    state: Tensor | tuple[Tensor, Tensor],
    weights: list[Tensor],
    bias: bool,
    lengths: Tensor,
) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
    """One direction of one layer on right-padded rows: x (B, T, I), state (1, B, H) or a
    pair of them (LSTM) -> outputs (B, T, H), zero past each length, and the state (as the
    input's) at each row's last step (the initial state for zero-length rows).

    `kernel` is torch's sequence kernel (`_VF.lstm`, `_VF.gru`, `_VF.rnn_*`) of `cell`
    ("lstm" | "gru" | "rnn"); `weights` as it reads them (w_ih, w_hh[, b_ih, b_hh])."""
    lstm = isinstance(state, tuple)
    batch, time = x.shape[0], x.shape[1]
    order = torch.argsort(lengths, descending=True, stable=True)
    sorted_len = lengths.index_select(0, order).tolist()
    parts = state if lstm else (state,)
    carry = [s.index_select(1, order.to(s.device)) for s in parts]  # each (1, B, H)
    if sorted_len and sorted_len[0] == 0:
        # No row has a step: run the padded kernel all the same, so that the weights and x
        # stay in the graph (DDP all-reduces every parameter's gradient on every rank).
        out = kernel(x, state, weights, bias, 1, 0.0, False, False, True)[0]
        return out * 0.0, state
    ends = segment_ends(sorted_len, CALL_COST * 4 / GATES[cell], recompute=lstm)
    starts = [0, *ends[:-1]]
    # One split in time: slicing each segment out of the whole x would zero-fill a gradient
    # of the whole x per segment in backward.
    chunks = x.index_select(0, order.to(x.device))[:, : ends[-1] if ends else 0]
    chunks = chunks.split([e - s for s, e in zip(starts, ends)], dim=1)
    blocks: list[list[Tensor]] = []  # per segment: the final state parts of its rows
    outs: list[Tensor] = []
    active = sum(n > 0 for n in sorted_len)
    for start, end, chunk in zip(starts, ends, chunks):
        hx = tuple(s[:, :active] for s in carry)
        result = kernel(chunk[:active], hx if lstm else hx[0], weights, bias,
                        1, 0.0, False, False, True)  # fmt: skip
        out, new = result[0], list(result[1:])
        outs.append(F.pad(out, (0, 0, 0, 0, 0, batch - active)))
        running = sum(n > end for n in sorted_len)
        ending = sorted_len[running:active]  # descending, all in (start, end]
        at_end = sum(n == end for n in ending)
        block = [n[:, running : running + at_end] for n in new]
        if at_end < len(ending):  # rows that end inside the segment
            rows = slice(running + at_end, active)
            steps = [n - start for n in ending[at_end:]]
            if lstm:
                own = _lstm_finals(chunk[rows], [s[:, rows] for s in hx], out[rows], weights, steps)
            else:
                own = [_at_steps(out[rows], steps).unsqueeze(0)]
            block = [torch.cat([b, o], 1) for b, o in zip(block, own)]
        blocks.append(block)
        carry = [n[:, :running] for n in new]
        active = running
    zero_rows = batch - sum(n > 0 for n in sorted_len)
    out = torch.cat(outs, 1) if outs else x.new_zeros(batch, 0, parts[0].shape[-1])
    out = F.pad(out, (0, 0, 0, time - out.shape[1]))
    valid = torch.arange(time).unsqueeze(0) < torch.tensor(sorted_len).unsqueeze(1)  # (B, T)
    out = out * valid.to(out.device, out.dtype).unsqueeze(-1)
    undo = torch.argsort(order).to(x.device)
    joined = []
    for k, s in enumerate(parts):  # segments end the shortest rows first: reverse them
        rows = [b[k] for b in blocks[::-1]]
        rows.append(s.index_select(1, order[batch - zero_rows :].to(s.device)))
        joined.append(torch.cat(rows, 1).index_select(1, undo))
    return out.index_select(0, undo), (tuple(joined) if lstm else joined[0])


def _at_steps(seq: Tensor, steps: list[int]) -> Tensor:
    """Row j of seq (n, S, H) at its step steps[j] - 1 -> (n, H)."""
    last = torch.tensor(steps, device=seq.device) - 1
    return seq[torch.arange(len(steps), device=seq.device), last]


def _lstm_finals(x, hx, out, weights, steps) -> list[Tensor]:
    """(h, c), each (1, n, H), of n LSTM rows (longest first) after steps[j] steps of the
    segment x (n, S, I) from its first state hx. c is not among the kernel's outputs, so
    the gates are recomputed from x and the outputs h (one product for all those steps),
    and c_L = sum_s (prod_(s<r<=L) f_r) i_s g_s + (prod_(r<=L) f_r) c_0 is summed at once,
    the products as exp of differences of cumulative log f (exponents <= 0: no overflow),
    instead of a Python loop of element-wise steps."""
    span = steps[0]
    h_prev = torch.cat([hx[0][0].unsqueeze(1), out[:, : span - 1]], 1)  # (n, S, H)
    gates = x[:, :span] @ weights[0].T + h_prev @ weights[1].T  # (n, S, 4H)
    if len(weights) == 4:
        gates = gates + (weights[2] + weights[3])
    i, f, g, o = gates.chunk(4, -1)
    u = torch.sigmoid(i) * torch.tanh(g)  # (n, S, H)
    log_f = F.logsigmoid(f).cumsum(1)  # sum_(r<=t) log f_r
    at_last = _at_steps(log_f, steps)  # (n, H)
    done = torch.arange(span, device=x.device) >= torch.tensor(steps, device=x.device)[:, None]
    decay = (at_last.unsqueeze(1) - log_f).masked_fill(done.unsqueeze(-1), float("-inf"))
    c = (decay.exp() * u).sum(1) + at_last.exp() * hx[1][0]
    h = torch.sigmoid(_at_steps(o, steps)) * torch.tanh(c)
    return [h.unsqueeze(0), c.unsqueeze(0)]
