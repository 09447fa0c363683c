"""Greedy and batched beam-search decoding of a `Seq2Seq` (or any model with its protocol).

Protocol: `ds = model.encode(x, lengths)`; `logits, ds, weights = model.step(tokens, ds)`
with tokens (N,), logits (N, V), weights (N, S); `ds.select(index)` keeps / repeats rows.
Both decoders return one `Hypothesis` per source: its tokens (without </s>), the sum of
their log-probabilities (</s> included when it was produced) and the attention weights
(len(tokens) + 1 or len(tokens) rows, one per step run, by S source steps).

Beam search keeps `width` hypotheses per source, all sources in one batch of B * width
rows. A hypothesis that produced </s> stays in its beam with its score frozen. The winner
maximises score / lp(length) with GNMT's length penalty lp(n) = ((5 + n) / 6) ** alpha
(alpha = `length_penalty`; 0 ranks by the plain sum of log-probabilities).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from deeprnn.errors import InputError
from deeprnn.seq2seq.model import BOS_ID, EOS_ID


@dataclass
class Hypothesis:
    """One decoded sequence: token ids, total log-probability, attention (steps, S)."""

    tokens: list[int]
    score: float
    attention: np.ndarray


def _check(max_length, width=1, length_penalty=0.0) -> None:
    for name, v in (("max_length", max_length), ("beam width", width)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InputError(f"{name} must be an int >= 1, got {v!r}")
    if not isinstance(length_penalty, (int, float)) or not 0.0 <= length_penalty < float("inf"):
        raise InputError(f"length_penalty must be a float >= 0, got {length_penalty!r}")


def _lengths(lengths, x: Tensor) -> Tensor:
    if lengths is None:
        return torch.full((x.shape[0],), x.shape[1], dtype=torch.int64)
    return torch.as_tensor(lengths, dtype=torch.int64)


@torch.no_grad()
def greedy(model, x: Tensor, lengths=None, max_length: int = 50) -> list[Hypothesis]:
    """Decode each source by taking the most probable token at every step."""
    _check(max_length)
    lengths = _lengths(lengths, x)
    ds = model.encode(x, lengths)
    n = x.shape[0]
    tokens = torch.full((n,), BOS_ID, dtype=torch.int64, device=x.device)
    done = torch.zeros(n, dtype=torch.bool, device=x.device)
    out, scores, weights = [], torch.zeros(n, dtype=torch.float64), []
    for _ in range(max_length):
        logits, ds, w = model.step(tokens, ds)
        logp = torch.log_softmax(logits.double(), dim=-1).cpu()
        tokens = logits.argmax(-1)
        scores += torch.where(done.cpu(), 0.0, logp.gather(1, tokens.cpu()[:, None])[:, 0])
        out.append(tokens.cpu())
        weights.append(w.cpu())
        done = done | (tokens == EOS_ID)
        if bool(done.all()):
            break
    steps, attn = torch.stack(out, 1).tolist(), torch.stack(weights, 1).numpy()
    return [_finish(steps[b], float(scores[b]), attn[b], int(lengths[b])) for b in range(n)]


def _finish(seq: list[int], score: float, attn: np.ndarray, src: int) -> Hypothesis:
    """Cut a decoded row at its first </s>; keep the attention of the steps run."""
    end = seq.index(EOS_ID) if EOS_ID in seq else len(seq)
    return Hypothesis(seq[:end], score, attn[: min(end + 1, len(seq)), :src])


def penalty(length: Tensor, alpha: float) -> Tensor:
    """GNMT's length penalty ((5 + n) / 6) ** alpha."""
    return ((5.0 + length.double()) / 6.0) ** alpha


@torch.no_grad()
def beam_search(model, x: Tensor, lengths=None, width: int = 4, max_length: int = 50,
                length_penalty: float = 0.0) -> list[Hypothesis]:  # fmt: skip
    """Decode each source keeping the `width` best hypotheses; see the module docstring."""
    _check(max_length, width, length_penalty)
    lengths = _lengths(lengths, x)
    b, k, device = x.shape[0], int(width), x.device
    ds = model.encode(x, lengths).select(torch.arange(b, device=device).repeat_interleave(k))
    tokens = torch.full((b * k,), BOS_ID, dtype=torch.int64, device=device)
    scores = torch.full((b, k), float("-inf"), dtype=torch.float64)
    scores[:, 0] = 0.0  # every beam starts as one hypothesis
    done = torch.zeros(b, k, dtype=torch.bool)
    length = torch.zeros(b, k, dtype=torch.int64)
    history = torch.zeros(b, k, 0, dtype=torch.int64)
    attn = None
    for _ in range(max_length):
        logits, ds, w = model.step(tokens, ds)
        logp = torch.log_softmax(logits.double(), dim=-1).cpu().view(b, k, -1)
        v = logp.shape[-1]
        # A finished hypothesis continues only with </s>, at no cost: it keeps one slot.
        frozen = torch.full_like(logp, float("-inf"))
        frozen[..., EOS_ID] = 0.0
        logp = torch.where(done[..., None], frozen, logp)
        total = (scores[..., None] + logp).view(b, k * v)
        scores, flat = total.topk(k, dim=1)
        beam, token = flat // v, flat % v
        rows = (torch.arange(b)[:, None] * k + beam).view(-1)
        done, length = done.gather(1, beam), length.gather(1, beam)
        length = length + (~done).long()
        done = done | (token == EOS_ID)
        history = torch.cat([history.gather(1, beam[..., None].expand_as(history)),
                             token[..., None]], dim=2)  # fmt: skip
        w = w.cpu()[rows].view(b, k, 1, -1)
        if attn is not None:
            attn = attn.gather(1, beam[:, :, None, None].expand(-1, -1, *attn.shape[2:]))
        attn = w if attn is None else torch.cat([attn, w], dim=2)
        ds = ds.select(rows.to(device))
        tokens = token.view(-1).to(device)
        if bool(done.all()):
            break
    ranked = scores / penalty(length, float(length_penalty))
    best = ranked.argmax(dim=1)
    hyps = []
    for i in range(b):
        j = int(best[i])
        hyps.append(_finish(history[i, j].tolist(), float(scores[i, j]), attn[i, j].numpy(),
                            int(lengths[i])))  # fmt: skip
    return hyps
