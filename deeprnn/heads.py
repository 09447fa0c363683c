"""Output heads: pool the RNN's outputs over time, then y = act(W_hy s + b_y).

Poolings respect lengths: padded steps never contribute.
- "last": the output at each row's last real step
- "mean": the mean over real steps
- "attention": e_t = v^T tanh(W_a o_t + b_a), alpha = softmax(e) over real steps,
  s = sum_t alpha_t o_t
- "every": no pooling; one prediction per step (sequence labelling)
Rows of length 0 pool to a zero vector.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from deeprnn.errors import InputError, InputTypeError, check_choice, check_lengths

POOLINGS = ("last", "mean", "attention", "every")
OUTPUT_ACTIVATIONS = ("softmax", "sigmoid", None)


def valid_mask(lengths: Tensor | None, batch: int, time: int, device) -> Tensor:
    """(B, T) bool: True at real steps."""
    if lengths is None:
        return torch.ones(batch, time, dtype=torch.bool, device=device)
    return (torch.arange(time).unsqueeze(0) < lengths.unsqueeze(1)).to(device)


def last_step(o: Tensor, lengths: Tensor | None) -> Tensor:
    """Each row's output at its last real step: (B, T, F) -> (B, F); zero for length 0."""
    if lengths is None:
        return o[:, -1]
    n = torch.as_tensor(lengths, dtype=torch.long, device=o.device)
    idx = (n - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, o.shape[-1])
    return o.gather(1, idx).squeeze(1) * (n > 0).unsqueeze(-1).to(o.dtype)


class Head(nn.Module):
    """Pooling + Linear + output activation.

    Args:
        in_features: width F of the RNN outputs.
        out_features: classes or targets K.
        pooling: "last" | "mean" | "attention" | "every".
        activation: "softmax" | "sigmoid" | None (linear output).
        attention_size: hidden width A of the attention scorer (default F).
    Call: `y = head(o (B, T, F), lengths)` -> (B, K), or (B, T, K) for "every";
    `head.logits(o, lengths)` gives the same before the activation (for the losses).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        pooling: str = "last",
        activation: str | None = None,
        attention_size: int | None = None,
    ):
        super().__init__()
        check_choice("pooling", pooling, POOLINGS)
        check_choice("activation", activation, OUTPUT_ACTIVATIONS)
        sizes = [("in_features", in_features), ("out_features", out_features)]
        if attention_size is not None:
            sizes.append(("attention_size", attention_size))
        for name, v in sizes:
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InputError(f"{name} must be a positive int, got {v!r}")
        self.pooling = pooling
        self.activation = activation
        if pooling == "attention":
            a = attention_size or in_features
            self.attention = nn.Linear(in_features, a)
            self.score = nn.Linear(a, 1, bias=False)
        self.linear = nn.Linear(in_features, out_features)

    def pool(self, o: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, T, F) -> (B, F), or (B, T, F) unchanged for "every"."""
        # No NaN check here: o is the body's output, and training skips non-finite steps.
        width, dtype = self.linear.in_features, self.linear.weight.dtype
        if not isinstance(o, Tensor) or o.dim() != 3 or o.shape[-1] != width:
            got = tuple(o.shape) if isinstance(o, Tensor) else type(o).__name__
            raise InputError(f"head input must be (batch, time, {width}), got {got}")
        if o.dtype != dtype:
            raise InputTypeError(f"head input has dtype {o.dtype}; the head's weights are {dtype}")
        lengths = check_lengths(lengths, o.shape[0], o.shape[1])
        if lengths is None and o.shape[1]:  # every step is real: no mask to build
            if self.pooling == "every":
                return o
            if self.pooling == "last":
                return o[:, -1]
            if self.pooling == "mean":
                return o.mean(1)
        mask = valid_mask(lengths, o.shape[0], o.shape[1], o.device)  # (B, T)
        if self.pooling == "every":
            return o * mask.unsqueeze(-1)
        if self.pooling == "last":
            return last_step(o, mask.sum(1))
        if self.pooling == "mean":
            n = mask.sum(1, keepdim=True).clamp(min=1)
            return (o * mask.unsqueeze(-1)).sum(1) / n
        e = self.score(torch.tanh(self.attention(o))).squeeze(-1)  # (B, T)
        # A finite fill (not -inf) keeps rows of length 0 free of NaN, gradients included.
        e = e.masked_fill(~mask, torch.finfo(e.dtype).min)
        alpha = torch.softmax(e, dim=1) * mask
        return (alpha.unsqueeze(-1) * o).sum(1)

    def logits(self, o: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Pre-activation outputs W_hy s + b_y."""
        return self.linear(self.pool(o, lengths))

    def activate(self, logits: Tensor) -> Tensor:
        """Apply the output activation to logits."""
        if self.activation == "softmax":
            return torch.softmax(logits, dim=-1)
        if self.activation == "sigmoid":
            return torch.sigmoid(logits)
        return logits

    def forward(self, o: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.activate(self.logits(o, lengths))
