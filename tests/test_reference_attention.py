"""The NumPy reference of attention and of one Seq2Seq decoder step, against torch (outputs and
every gradient) and against central finite differences (the reference's own backward)."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch

from deeprnn import DeepRNN
from deeprnn.reference import (
    attention_backward,
    attention_forward,
    seq2seq_step_backward,
    seq2seq_step_forward,
)
from deeprnn.seq2seq import PAD_ID, Attention, DecoderState, Seq2Seq

from .helpers import flatten_state

RTOL, ATOL = 1e-9, 1e-12
B, S = 3, 5
LENGTHS = [5, 3, 1]
PADDED = np.arange(S)[None, :] >= np.array(LENGTHS)[:, None]  # (B, S), True on padding


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().astype(np.float64)


def close(actual, expected, name: str) -> None:
    np.testing.assert_allclose(_np(actual), expected, rtol=RTOL, atol=ATOL, err_msg=name)


def assert_finite_differences(loss, variables: dict, analytic: dict, eps: float = 1e-6) -> None:
    """analytic[name] == d loss() / d variables[name], element by element by central differences.

    `loss()` reads the arrays of `variables`, perturbed in place and restored. Each variable
    must also influence the loss, so a forward pass that ignores one fails here.
    """
    assert set(analytic) == set(variables)
    for name, v in variables.items():
        numeric = np.zeros_like(v)
        for idx in np.ndindex(v.shape):
            old = v[idx]
            v[idx] = old + eps
            up = loss()
            v[idx] = old - eps
            down = loss()
            v[idx] = old
            numeric[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(analytic[name], numeric, rtol=1e-5, atol=1e-7, err_msg=name)
        assert np.abs(numeric).max() > 1e-6, f"{name} does not influence the loss"


def assert_padding_ignored(weights: np.ndarray, d_keys: np.ndarray) -> None:
    """Padded source steps get weight exactly 0 and key gradient exactly 0; real ones do not."""
    assert np.all(weights[PADDED] == 0.0) and np.all(weights[~PADDED] > 0.0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-12)
    assert np.all(d_keys[PADDED] == 0.0)
    assert np.all(np.abs(d_keys[~PADDED]).max(-1) > 0.0)


# --- attention alone --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["general", "dot", "additive"])
def test_attention_matches_torch_and_finite_differences(kind):
    torch.manual_seed(0)
    Q, K = 4, 4 if kind == "dot" else 6
    att = Attention(Q, K, kind, attention_size=3).double()
    g = torch.Generator().manual_seed(1)
    query = torch.randn(B, Q, dtype=torch.float64, generator=g).requires_grad_(True)
    keys = torch.randn(B, S, K, dtype=torch.float64, generator=g).requires_grad_(True)
    d_context = torch.randn(B, K, dtype=torch.float64, generator=g)
    d_weights = torch.randn(B, S, dtype=torch.float64, generator=g)
    lengths = torch.tensor(LENGTHS)
    context, weights = att(query, att.memory(keys, lengths))
    named = dict(att.named_parameters())
    loss = (context * d_context).sum() + (weights * d_weights).sum()
    t_grads = torch.autograd.grad(loss, [query, keys, *named.values()])

    p = {k: _np(v) for k, v in named.items()}
    q_np, k_np, dc, dw = _np(query), _np(keys), _np(d_context), _np(d_weights)
    ref_context, ref_weights, cache = attention_forward(p, kind, q_np, k_np, LENGTHS)
    d_query, d_keys, grads = attention_backward(p, kind, dc, dw, cache)
    close(context, ref_context, "context")
    close(weights, ref_weights, "weights")
    close(t_grads[0], d_query, "d_query")
    close(t_grads[1], d_keys, "d_keys")
    assert set(grads) == set(named)
    for (name, _), gr in zip(named.items(), t_grads[2:]):
        close(gr, grads[name], name)
    assert_padding_ignored(ref_weights, d_keys)
    assert_padding_ignored(_np(weights), _np(t_grads[1]))

    # what padding holds must not matter to the reference
    junk = k_np.copy()
    junk[PADDED] = 1e3
    again, _, _ = attention_forward(p, kind, q_np, junk, LENGTHS)
    np.testing.assert_array_equal(again, ref_context)

    def value():
        c, w, _ = attention_forward(p, kind, q_np, k_np, LENGTHS)
        return float((c * dc).sum() + (w * dw).sum())

    assert_finite_differences(
        value, {"query": q_np, "keys": k_np, **p}, {"query": d_query, "keys": d_keys, **grads}
    )


def test_attention_rejects_empty_sources_and_unknown_kinds():
    q, k = np.zeros((2, 3)), np.zeros((2, 4, 3))
    with pytest.raises(ValueError, match="lengths"):
        attention_forward({}, "dot", q, k, [4, 0])
    with pytest.raises(ValueError, match="unknown attention"):
        attention_forward({}, "cosine", q, k, [4, 1])


# --- one whole decoder step of Seq2Seq --------------------------------------------------


def make_model(kind: str, cell: str, feed: bool) -> Seq2Seq:
    torch.manual_seed(0)
    if kind == "dot":  # keys as wide as the decoder output
        encoder = DeepRNN(3, 4, 1, cell=cell)
    else:
        encoder = DeepRNN(3, 3, 1, cell=cell, bidirectional=True)
    decoder = DeepRNN(3 + (4 if feed else 0), 4, 2, cell=cell)
    return Seq2Seq(encoder, decoder, 7, 7, attention=kind, input_feeding=feed).double().eval()


@pytest.mark.parametrize(
    "kind, cell, feed",
    [("general", "lstm", True), ("dot", "gru", False), ("additive", "rnn", True),
     ("additive", "lstm", False), ("general", "gru", True)],
)  # fmt: skip
def test_decoder_step_matches_torch_and_finite_differences(kind, cell, feed):
    model = make_model(kind, cell, feed)
    K, W = model.encoder.output_size, model.decoder.output_size
    g = torch.Generator().manual_seed(2)

    def rand(*shape):
        return torch.randn(*shape, dtype=torch.float64, generator=g)

    tokens = torch.tensor([5, PAD_ID, 2])  # the pad row of the embedding gets no gradient
    feed_t = rand(B, W).requires_grad_(True)
    keys = rand(B, S, K).requires_grad_(True)
    state = [tuple(rand(B, W).requires_grad_(True) for _ in range(2 if cell == "lstm" else 1))
             for _ in model.decoder.layers]  # fmt: skip
    state = [s if len(s) == 2 else s[0] for s in state]
    lengths = torch.tensor(LENGTHS)
    ds = DecoderState(state, feed_t, model.attention.memory(keys, lengths))
    logits, after, weights = model.step(tokens, ds, grad=True)
    new_state = flatten_state(after.state)
    d_logits, d_a, d_weights = rand(*logits.shape), rand(B, W), rand(B, S)
    d_state = [rand(*s.shape) for s in new_state]
    loss = (logits * d_logits).sum() + (after.feed * d_a).sum() + (weights * d_weights).sum()
    loss = loss + sum((s * d).sum() for s, d in zip(new_state, d_state))
    named = dict(model.named_parameters())
    leaves = [feed_t, keys, *flatten_state(state), *named.values()]
    t_grads = torch.autograd.grad(loss, leaves, allow_unused=True)

    # the reference, on the same numbers
    p = {k: _np(v) for k, v in named.items()}
    config = asdict(model.decoder.config)
    st = [tuple(_np(t) for t in s) if isinstance(s, tuple) else _np(s) for s in state]
    feed_np, keys_np, tok = _np(feed_t), _np(keys), tokens.numpy()
    dl, da, dw = _np(d_logits), _np(d_a), _np(d_weights)
    ds_flat = [_np(d) for d in d_state]
    ds_np = (
        [tuple(ds_flat[2 * i : 2 * i + 2]) for i in range(len(st))] if cell == "lstm" else ds_flat
    )
    out = seq2seq_step_forward(p, config, kind, tok, feed_np, st, keys_np, LENGTHS, feed)
    ref_logits, ref_a, ref_state, ref_weights, cache = out
    grads, d_feed, d_state0, d_keys = seq2seq_step_backward(cache, dl, da, ds_np, dw)

    close(logits, ref_logits, "logits")
    close(after.feed, ref_a, "a")
    close(weights, ref_weights, "weights")
    for i, (s, r) in enumerate(zip(new_state, flatten_state(ref_state))):
        close(s, r, f"new state {i}")
    n_state = len(flatten_state(state))
    assert (t_grads[0] is None) == (not feed)
    close(t_grads[0] if feed else torch.zeros(B, W), d_feed, "d_feed")
    close(t_grads[1], d_keys, "d_keys")
    for i, (gr, r) in enumerate(zip(t_grads[2 : 2 + n_state], flatten_state(d_state0))):
        close(gr, r, f"d_state {i}")
    used = {n for n, gr in zip(named, t_grads[2 + n_state :]) if gr is not None}
    assert set(grads) == used  # every parameter the step touches, nothing else
    assert used >= {"combine.weight", "output.bias", "target_embedding.weight"}
    for name, gr in zip(named, t_grads[2 + n_state :]):
        if gr is not None:
            close(gr, grads[name], name)
    assert np.all(grads["target_embedding.weight"][PAD_ID] == 0.0)
    assert_padding_ignored(ref_weights, d_keys)
    assert_padding_ignored(_np(weights), _np(t_grads[1]))

    # the reference's backward by finite differences; padding_idx=None: the true gradient
    # of the pad row too (token PAD_ID is read, so that row does move the loss)
    params = {k: p[k] for k in grads}

    def run(padding_idx):
        return seq2seq_step_forward(
            params, config, kind, tok, feed_np, st, keys_np, LENGTHS, feed, padding_idx
        )

    def value():
        lo, a, ns, w, _ = run(None)
        total = (lo * dl).sum() + (a * da).sum() + (w * dw).sum()
        return float(total + sum((s * d).sum() for s, d in zip(flatten_state(ns), ds_flat)))

    true_grads, d_feed, d_state0, d_keys = seq2seq_step_backward(run(None)[-1], dl, da, ds_np, dw)
    assert np.abs(true_grads["target_embedding.weight"][PAD_ID]).max() > 0.0
    variables = {"keys": keys_np, **params}
    analytic = {"keys": d_keys, **true_grads}
    if feed:
        variables["feed"], analytic["feed"] = feed_np, d_feed
    for i, (s, d) in enumerate(zip(flatten_state(st), flatten_state(d_state0))):
        variables[f"state {i}"], analytic[f"state {i}"] = s, d
    assert_finite_differences(value, variables, analytic)
