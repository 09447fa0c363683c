"""Parallel branches ("connecting" rather than stacking): branches side by side, merged.

`Parallel(a, b)(x)` runs every branch on the same x; `Parallel(a, b)([x1, x2])` runs
branch i on input i (its own features and length). With single-layer branches on one x
this is the "every layer reads x_t" design; with two inputs it is the two-input model.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from deeprnn.errors import InputError, InputTypeError, check_choice
from deeprnn.heads import last_step

MERGES = ("concat", "sum", "mean")


class Parallel(nn.Module):
    """Run recurrent branches side by side and merge their outputs.

    Args:
        *branches: modules called as `out, state = branch(x, state, lengths)` (a DeepRNN).
        merge: "concat" (on features), "sum" or "mean" (equal widths needed).
        outputs: "sequence" merges per time step (all branches need the same T);
            "last" merges each branch's output at its own last real step (B, W).
    Call: `out, states = par(x or [x_1, ...], states=None, lengths=None or [l_1, ...])`.
    """

    def __init__(self, *branches: nn.Module, merge: str = "concat", outputs: str = "sequence"):
        super().__init__()
        if not branches:
            raise InputError("Parallel needs at least one branch")
        for i, b in enumerate(branches):
            if not isinstance(b, nn.Module):
                raise InputTypeError(f"branch {i} must be an nn.Module, got {type(b).__name__}")
        check_choice("merge", merge, MERGES)
        check_choice("outputs", outputs, ("sequence", "last"))
        widths = [getattr(b, "output_size", None) for b in branches]
        if merge != "concat" and None not in widths and len(set(widths)) > 1:
            raise InputError(f"merge={merge!r} needs branches of equal width, got {widths}")
        self.branches = nn.ModuleList(branches)
        self.merge = merge
        self.outputs = outputs

    @property
    def output_size(self) -> int:
        widths = [b.output_size for b in self.branches]
        return sum(widths) if self.merge == "concat" else widths[0]

    def forward(
        self,
        x: Tensor | list[Tensor],
        states: list | None = None,
        lengths: Tensor | list[Tensor | None] | None = None,
    ) -> tuple[Tensor, list]:
        n = len(self.branches)
        xs = list(x) if isinstance(x, (list, tuple)) else [x] * n
        lens = list(lengths) if isinstance(lengths, (list, tuple)) else [lengths] * n
        states = [None] * n if states is None else list(states)
        for name, seq in (("x", xs), ("lengths", lens), ("states", states)):
            if len(seq) != n:
                raise InputError(f"{name} must give one entry per branch ({n}), got {len(seq)}")
        outs, finals = [], []
        for branch, xi, si, li in zip(self.branches, xs, states, lens):
            out, s = branch(xi, si, li)
            if self.outputs == "last":
                out = last_step(out, li)
            outs.append(out)
            finals.append(s)
        if self.outputs == "sequence" and len({o.shape[1] for o in outs}) > 1:
            raise InputError(
                "branches returned sequences of different lengths "
                f"{[o.shape[1] for o in outs]}; use outputs='last' to merge their last steps"
            )
        if self.merge == "concat":
            return torch.cat(outs, dim=-1), finals
        merged = torch.stack(outs).sum(0)
        return (merged / n if self.merge == "mean" else merged), finals
