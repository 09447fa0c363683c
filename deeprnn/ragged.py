"""Variable lengths on torch's padded sequence kernels, without packing.

On the CPU, torch's packed-sequence LSTM / GRU runs a generic per-step implementation with
an autograd node per step: a batch with `lengths` cost ~3x the same padded batch (measured
here: T=100, B=64, I=128, H=256, lengths in [T/2, T]). The padded kernel (oneDNN) is fast,
and a forward-time recurrence never lets a padded step change an earlier one, so:

- rows are sorted by length (longest first) and time is cut into SEGMENTS that end at the
  rows' lengths; each segment is one padded kernel call on the rows still running, so
  finished rows drop out (as packing does) and short batches cost less than padded ones;
- a row that ends at a segment's end takes the kernel's final state;
- lengths closer than `MIN_SEGMENT` steps share a segment (each kernel call costs about
  one or two steps of set-up): a row that ends inside one takes h from the outputs, and an
  LSTM's c (not among the outputs) from a few one-step cell calls started at the
  segment's first state. Same math, so outputs, final states and gradients equal the
  packed kernel's up to float rounding (the oracle tests check it).
The reverse direction runs the same on each row reversed within its length.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

MIN_SEGMENT = 6  # lengths closer than this share one kernel call


def segment_ends(lengths: list[int], min_segment: int = MIN_SEGMENT) -> list[int]:
    """Ascending ends of the kernel calls for these lengths: every distinct length > 0,
    except those within `min_segment` steps of the previous end (the longest always ends
    one)."""
    ends: list[int] = []
    distinct = sorted({n for n in lengths if n > 0})
    for n in distinct:
        if n - (ends[-1] if ends else 0) >= min_segment or n == distinct[-1]:
            ends.append(n)
    return ends


def forward_ragged(
    kernel,
    step_kernel,
    x: Tensor,
    state: Tensor | tuple[Tensor, Tensor],
    weights: list[Tensor],
    bias: bool,
    lengths: Tensor,
) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
    """One direction of one layer on right-padded rows: x (B, T, I), state (1, B, H) or a
    pair of them (LSTM) -> outputs (B, T, H), zero past each length, and the state (as the
    input's) at each row's last step (the initial state for zero-length rows).

    `kernel` is torch's sequence kernel (`_VF.lstm`, `_VF.gru`, `_VF.rnn_*`) and
    `step_kernel` its one-step form; `weights` as the kernel reads them for one layer."""
    lstm = isinstance(state, tuple)
    batch, time = x.shape[0], x.shape[1]
    order = torch.argsort(lengths, descending=True, stable=True)
    sorted_len = lengths.index_select(0, order).tolist()
    xs = x.index_select(0, order.to(x.device))
    parts = state if lstm else (state,)
    carry = [s.index_select(1, order.to(s.device)) for s in parts]  # each (1, B, H)
    blocks: list[list[Tensor]] = []  # per segment: the final state parts of its rows
    outs: list[Tensor] = []
    start, active = 0, sum(n > 0 for n in sorted_len)
    for end in segment_ends(sorted_len):
        hx = tuple(s[:, :active] for s in carry)
        result = kernel(xs[:active, start:end], hx if lstm else hx[0], weights, bias,
                        1, 0.0, False, False, True)  # fmt: skip
        out, new = result[0], list(result[1:])
        outs.append(F.pad(out, (0, 0, 0, 0, 0, batch - active)))
        running = sum(n > end for n in sorted_len)
        ending = sorted_len[running:active]  # descending, all in (start, end]
        at_end = sum(n == end for n in ending)
        block = [n[:, running : running + at_end] for n in new]
        if at_end < len(ending):  # rows that end inside the segment
            rows = slice(running + at_end, active)
            own = _inside_finals(step_kernel, xs[rows], [s[:, rows] for s in hx], out[rows],
                                 weights, ending[at_end:], start, lstm)  # fmt: skip
            block = [torch.cat([b, o], 1) for b, o in zip(block, own)]
        blocks.append(block)
        carry = [n[:, :running] for n in new]
        start, active = end, running
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


def _inside_finals(step_kernel, x, hx, out, weights, lengths, start, lstm) -> list[Tensor]:
    """Final state parts (each (1, n, H)) of n rows (longest first) that end inside a
    segment starting at `start`: h from the segment's outputs; an LSTM's c from one-step
    cell calls from the segment's first state (c is not among the kernel's outputs)."""
    last = torch.tensor([n - 1 - start for n in lengths], device=out.device)
    h = out[torch.arange(len(lengths), device=out.device), last].unsqueeze(0)
    if not lstm:
        return [h]
    h_t, c_t = hx[0][0], hx[1][0]
    cs: list[Tensor] = []
    for t in range(lengths[0] - start):
        going = sum(n - start > t for n in lengths)
        if going < h_t.shape[0]:  # rows that just ended keep their c
            cs.append(c_t[going:])
            h_t, c_t = h_t[:going], c_t[:going]
        h_t, c_t = step_kernel(x[:going, start + t], (h_t, c_t), *weights)
    cs.append(c_t)
    c = torch.cat(cs[::-1], 0) if len(cs) > 1 else cs[0]
    return [h, c.unsqueeze(0)]
