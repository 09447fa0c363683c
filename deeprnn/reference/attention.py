"""Attention and one attention-decoder step of Seq2Seq, forward and backward, in float64 NumPy.

For a query q (B, Q) (the decoder output h) and keys k_s (B, S, K) (encoder outputs):

    general:  e_s = q . (W k_s)                          W = key.weight (Q, K)
    dot:      e_s = q . k_s                              (Q = K)
    additive: e_s = v . tanh(W_q q + b_q + W_k k_s)      W_q = query.weight (A, Q),
              b_q = query.bias (A,), W_k = key.weight (A, K), v = score.weight (1, A)
    alpha_s = exp(e_s - m) / sum_{s' < len} exp(e_s' - m) for s < len, exactly 0 for s >= len
    context = sum_s alpha_s k_s

Backward, with g_s = dL/d alpha_s = d_alpha_s + d_context . k_s:

    dL/de_s = alpha_s (g_s - sum_s' alpha_s' g_s')      (0 on padded steps: alpha_s = 0)
    dL/dk_s = alpha_s d_context + (the path through e_s)

The rest of `Seq2Seq.step` (deeprnn/seq2seq/model.py):

    u = [E[y]; feed] (feed only with input feeding)     E = target_embedding.weight
    h, state' = decoder(u, state)                       one step of the reference DeepRNN
    c, alpha = attention(h, keys)
    a = tanh(W_c [c; h] + b_c)                          W_c, b_c = combine.weight, .bias
    logits = W_o a + b_o                                W_o, b_o = output.weight, .bias

Parameter names are torch state_dict names: those of `Attention` ("key.weight", ...) for
`attention_*`, those of `Seq2Seq` ("attention.key.weight", "combine.weight",
"decoder.layers.0.cell.weight_ih", ...) for the decoder step; other entries are ignored. As
torch's `padding_idx`, the embedding row `padding_idx` gets no gradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deeprnn.reference.cells import Array, Cache
from deeprnn.reference.stack import backward as stack_backward
from deeprnn.reference.stack import forward as stack_forward

Params = dict[str, Array]
KINDS = ("general", "dot", "additive")
PAD_ID = 0  # deeprnn.seq2seq.PAD_ID; not imported, as that module imports torch


def _sub(p: Params, prefix: str) -> Params:
    """The entries under `prefix`, with the prefix stripped."""
    return {k[len(prefix) :]: v for k, v in p.items() if k.startswith(prefix)}


def masked_softmax_forward(e: Array, mask: Array) -> Array:
    """Softmax of e (B, S) over the True entries of mask (B, S); the others get exactly 0."""
    m = np.where(mask, e, -np.inf).max(axis=-1, keepdims=True)
    z = np.where(mask, np.exp(np.where(mask, e - m, 0.0)), 0.0)
    return z / z.sum(axis=-1, keepdims=True)


def masked_softmax_backward(w: Array, d_w: Array) -> Array:
    """dL/de = w (dL/dw - sum_s w_s dL/dw_s); zero wherever w is 0 (padded steps)."""
    return w * (d_w - (w * d_w).sum(axis=-1, keepdims=True))


def attention_forward(
    p: Params, kind: str, query: Array, keys: Array, lengths: Array
) -> tuple[Array, Array, Cache]:
    """query (B, Q), keys (B, S, K), lengths (B,) in [1, S] -> (context (B, K), weights (B, S),
    cache)."""
    if kind not in KINDS:
        raise ValueError(f"unknown attention {kind!r}; expected one of {KINDS}")
    query = np.asarray(query, dtype=np.float64)
    keys = np.asarray(keys, dtype=np.float64)
    p = {k: np.asarray(v, dtype=np.float64) for k, v in p.items()}
    B, S, _ = keys.shape
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.shape != (B,) or lengths.min(initial=1) < 1 or lengths.max(initial=1) > S:
        raise ValueError(f"lengths must be (B,) = ({B},) ints in [1, {S}]")
    mask = np.arange(S)[None, :] < lengths[:, None]
    cache: Cache = {"kind": kind, "query": query, "keys": keys, "mask": mask}
    if kind == "additive":
        pq = query @ p["query.weight"].T + p["query.bias"]  # (B, A)
        hidden = np.tanh(pq[:, None, :] + keys @ p["key.weight"].T)  # (B, S, A)
        e = hidden @ p["score.weight"][0]
        cache["hidden"] = hidden
    else:
        projected = keys if kind == "dot" else keys @ p["key.weight"].T  # (B, S, Q)
        e = np.einsum("bsq,bq->bs", projected, query)
        cache["projected"] = projected
    weights = masked_softmax_forward(e, mask)
    cache["weights"] = weights
    return np.einsum("bs,bsk->bk", weights, keys), weights, cache


def attention_backward(
    p: Params, kind: str, d_context: Array, d_weights: Array | None, cache: Cache
) -> tuple[Array, Array, Params]:
    """dL/d context (B, K) [and dL/d weights (B, S)] -> (d_query, d_keys, grads of p)."""
    if kind != cache["kind"]:
        raise ValueError(f"the cache is of attention {cache['kind']!r}, not {kind!r}")
    query, keys, w = cache["query"], cache["keys"], cache["weights"]
    g = np.einsum("bk,bsk->bs", d_context, keys)
    if d_weights is not None:
        g = g + d_weights
    d_e = masked_softmax_backward(w, g)
    d_keys = w[..., None] * d_context[:, None, :]
    grads: Params = {}
    if kind == "additive":
        hidden = cache["hidden"]
        grads["score.weight"] = np.einsum("bs,bsa->a", d_e, hidden)[None]
        d_pre = d_e[..., None] * p["score.weight"][0] * (1.0 - hidden**2)  # (B, S, A)
        d_pq = d_pre.sum(axis=1)
        grads["query.weight"] = d_pq.T @ query
        grads["query.bias"] = d_pq.sum(axis=0)
        grads["key.weight"] = np.einsum("bsa,bsk->ak", d_pre, keys)
        return d_pq @ p["query.weight"], d_keys + d_pre @ p["key.weight"], grads
    d_query = np.einsum("bs,bsq->bq", d_e, cache["projected"])
    d_projected = d_e[..., None] * query[:, None, :]  # (B, S, Q)
    if kind == "dot":
        return d_query, d_keys + d_projected, grads
    grads["key.weight"] = np.einsum("bsq,bsk->qk", d_projected, keys)
    return d_query, d_keys + d_projected @ p["key.weight"], grads


def decoder_step_forward(
    p: Params, kind: str, h: Array, keys: Array, lengths: Array
) -> tuple[Array, Array, Array, Cache]:
    """The step after the decoder RNN: h (B, Q) -> (logits (B, V), a (B, Q), weights (B, S),
    cache)."""
    h = np.asarray(h, dtype=np.float64)
    context, weights, att = attention_forward(_sub(p, "attention."), kind, h, keys, lengths)
    x = np.concatenate([context, h], axis=-1)
    a = np.tanh(x @ p["combine.weight"].T + p["combine.bias"])
    logits = a @ p["output.weight"].T + p["output.bias"]
    return logits, a, weights, {"attention": att, "x": x, "a": a, "K": context.shape[-1]}


def decoder_step_backward(
    p: Params,
    cache: Cache,
    d_logits: Array,
    d_a: Array | None = None,
    d_weights: Array | None = None,
) -> tuple[Array, Array, Params]:
    """dL/d logits [, dL/d a (fed to the next step), dL/d weights] -> (d_h, d_keys, grads)."""
    a, x = cache["a"], cache["x"]
    grads = {"output.weight": d_logits.T @ a, "output.bias": d_logits.sum(axis=0)}
    d_a = d_logits @ p["output.weight"] + (0.0 if d_a is None else d_a)
    d_pre = d_a * (1.0 - a**2)
    grads["combine.weight"] = d_pre.T @ x
    grads["combine.bias"] = d_pre.sum(axis=0)
    d_x = d_pre @ p["combine.weight"]
    att = cache["attention"]
    d_query, d_keys, att_grads = attention_backward(
        _sub(p, "attention."), att["kind"], d_x[:, : cache["K"]], d_weights, att
    )
    grads |= {f"attention.{k}": v for k, v in att_grads.items()}
    return d_x[:, cache["K"] :] + d_query, d_keys, grads


def seq2seq_step_forward(
    p: Params,
    config: dict[str, Any],
    kind: str,
    tokens: Array,
    feed: Array,
    state: list,
    keys: Array,
    lengths: Array,
    input_feeding: bool = True,
    padding_idx: int | None = PAD_ID,
) -> tuple[Array, Array, list, Array, Cache]:
    """One whole `Seq2Seq.step`: tokens (B,), feed (B, Q), the decoder's state (the reference
    DeepRNN's format; `config` its config) -> (logits, a, new state, weights, cache)."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in p.items()}
    tokens = np.asarray(tokens, dtype=np.int64)
    feed = np.asarray(feed, dtype=np.float64)
    u = p["target_embedding.weight"][tokens]
    if input_feeding:
        u = np.concatenate([u, feed], axis=-1)
    out, new_state, rnn = stack_forward(_sub(p, "decoder."), config, u[:, None], None, state)
    logits, a, weights, step = decoder_step_forward(p, kind, out[:, 0], keys, lengths)
    cache = {"p": p, "rnn": rnn, "step": step, "tokens": tokens, "feed": feed}
    cache |= {"input_feeding": input_feeding, "padding_idx": padding_idx}
    return logits, a, new_state, weights, cache


def seq2seq_step_backward(
    cache: Cache,
    d_logits: Array,
    d_a: Array | None = None,
    d_state: list | None = None,
    d_weights: Array | None = None,
) -> tuple[Params, Array, list, Array]:
    """dL/d (logits, a, new state, weights) (None: zero) -> (grads, d_feed, d_state, d_keys).

    grads holds every parameter the step uses (Seq2Seq names); d_feed is zero without input
    feeding; d_state is dL/d the state before the step, in the state format."""
    p = cache["p"]
    d_h, d_keys, grads = decoder_step_backward(p, cache["step"], d_logits, d_a, d_weights)
    rnn_grads, du, d_state0 = stack_backward(cache["rnn"], d_h[:, None], d_state)
    grads |= {f"decoder.{k}": v for k, v in rnn_grads.items()}
    table = p["target_embedding.weight"]
    d_table = np.zeros_like(table)
    np.add.at(d_table, cache["tokens"], du[:, 0, : table.shape[1]])
    if cache["padding_idx"] is not None:
        d_table[cache["padding_idx"]] = 0.0
    grads["target_embedding.weight"] = d_table
    feed = cache["feed"]
    d_feed = du[:, 0, table.shape[1] :] if cache["input_feeding"] else np.zeros_like(feed)
    return grads, d_feed, d_state0, d_keys
