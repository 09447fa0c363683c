"""Attention over encoder outputs, masked by source lengths (Bahdanau 2015; Luong 2015).

For a decoder output q (the query) and encoder outputs k_s, s < S (the keys):
    general (Luong):    e_s = q . (W k_s)                    W: key.weight (Q, K)
    dot (Luong):        e_s = q . k_s                        (needs Q = K)
    additive (Bahdanau): e_s = v . tanh(W_q q + b_q + W_k k_s) W_q: query.weight (A, Q),
                         b_q: query.bias (A,), W_k: key.weight (A, K), v: score.weight (1, A)
    alpha = softmax over s < len of e (padded steps get weight exactly 0)
    context = sum_s alpha_s k_s
The key-side products W k_s do not depend on the query, so `Memory` computes them once per
source and every decoding step reuses them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from deeprnn.errors import InputError, check_choice

ATTENTION_KINDS = ("general", "dot", "additive")


@dataclass
class Memory:
    """What attention reads at every decoding step: the encoder outputs of a batch.

    keys (B, S, K) encoder outputs; projected (B, S, Q or A) their key-side products;
    mask (B, S) bool, True where s < the row's source length.
    """

    keys: Tensor
    projected: Tensor
    mask: Tensor

    def select(self, index: Tensor) -> Memory:
        """The rows `index` (B',): beam search repeats and reorders sources with it."""
        return Memory(self.keys[index], self.projected[index], self.mask[index])


class Attention(nn.Module):
    """score(q, k_s) -> masked softmax -> context; see the module docstring.

    Args:
        query_size: Q, width of the decoder outputs.
        key_size: K, width of the encoder outputs.
        kind: "general" | "dot" | "additive".
        attention_size: A, hidden width of "additive" scores (default Q).
    """

    def __init__(
        self,
        query_size: int,
        key_size: int,
        kind: str = "general",
        attention_size: int | None = None,
    ):
        super().__init__()
        check_choice("attention", kind, ATTENTION_KINDS)
        self.kind = kind
        if kind == "dot" and query_size != key_size:
            raise InputError(
                f"attention='dot' needs equal query and key widths, got {query_size} and "
                f"{key_size}; use attention='general'"
            )
        if kind == "general":
            self.key = nn.Linear(key_size, query_size, bias=False)
        elif kind == "additive":
            a = attention_size or query_size
            self.query = nn.Linear(query_size, a)
            self.key = nn.Linear(key_size, a, bias=False)
            self.score = nn.Linear(a, 1, bias=False)

    def memory(self, keys: Tensor, lengths: Tensor) -> Memory:
        """Memory of encoder outputs keys (B, S, K) with source lengths (B,), all >= 1."""
        if lengths.numel() and int(lengths.min()) < 1:
            raise InputError("every source needs at least one token to attend to")
        mask = (
            torch.arange(keys.shape[1], device=keys.device)[None] < lengths.to(keys.device)[:, None]
        )
        projected = keys if self.kind == "dot" else self.key(keys)
        return Memory(keys, projected, mask)

    def forward(self, query: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        """query (B, T, Q) -> (context (B, T, K), weights (B, T, S)); (B, Q) -> (B, K), (B, S)."""
        single = query.dim() == 2
        q = query.unsqueeze(1) if single else query  # (B, T, Q)
        if self.kind == "additive":
            # (B, T, 1, A) + (B, 1, S, A) -> (B, T, S)
            hidden = torch.tanh(self.query(q).unsqueeze(2) + memory.projected.unsqueeze(1))
            scores = self.score(hidden).squeeze(-1)
        else:
            scores = torch.bmm(q, memory.projected.transpose(1, 2))  # (B, T, S)
        scores = scores.masked_fill(~memory.mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        context = torch.bmm(weights, memory.keys)  # (B, T, K)
        if single:
            return context.squeeze(1), weights.squeeze(1)
        return context, weights
