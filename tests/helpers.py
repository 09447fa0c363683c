"""Comparison helpers: each numerical test is one call of one of these."""

from __future__ import annotations

import torch


def random_batch(batch: int, time: int, features: int, with_lengths: bool, seed: int = 0):
    """Float64 x (B, T, F) and, if asked, lengths with a full row, a short row and a 0 row."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, time, features, dtype=torch.float64, generator=g)
    if not with_lengths:
        return x, None
    lengths = torch.randint(1, time + 1, (batch,), generator=g)
    lengths[0] = time
    if batch > 2:
        lengths[-1] = 0
    return x, lengths


def flatten_state(state) -> list[torch.Tensor]:
    """[h] or [h, c] per layer, flattened into one list."""
    out = []
    for s in state:
        out.extend(s if isinstance(s, tuple) else (s,))
    return out


def run_with_grads(module, x, lengths, seed: int = 1):
    """Forward, then backward of a random linear function of outputs AND final states.

    Returns (outputs, final state tensors, {name: grad} incl. "x").
    """
    x = x.detach().clone().requires_grad_(True)
    out, state = module(x, lengths=lengths)
    flat = flatten_state(state)
    g = torch.Generator().manual_seed(seed)
    loss = (out * torch.randn(out.shape, dtype=out.dtype, generator=g)).sum()
    for s in flat:
        loss = loss + (s * torch.randn(s.shape, dtype=s.dtype, generator=g)).sum()
    params = dict(module.named_parameters())
    grads = torch.autograd.grad(loss, [x, *params.values()], allow_unused=True)
    named = {"x": grads[0]}
    for (name, p), gr in zip(params.items(), grads[1:]):
        named[name] = torch.zeros_like(p) if gr is None else gr
    return out.detach(), [s.detach() for s in flat], named


def assert_same_outputs_and_grads(a, b, x, lengths=None, rtol=1e-7, atol=1e-10):
    """Two torch modules with the same parameter names agree on outputs, states, gradients."""
    out_a, st_a, g_a = run_with_grads(a, x, lengths)
    out_b, st_b, g_b = run_with_grads(b, x, lengths)
    torch.testing.assert_close(out_a, out_b, rtol=rtol, atol=atol)
    assert len(st_a) == len(st_b)
    for s, t in zip(st_a, st_b):
        torch.testing.assert_close(s, t, rtol=rtol, atol=atol)
    assert g_a.keys() == g_b.keys()
    for name in g_a:
        torch.testing.assert_close(g_a[name], g_b[name], rtol=rtol, atol=atol, msg=name)
