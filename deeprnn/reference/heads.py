"""Heads and losses in float64 NumPy, forward and gradient (docs/semantics.md, "Heads").

A head pools the DeepRNN output o (B, T, F) over each row's valid steps t < len_b, then maps
it to logits = s W^T + b. `head_forward` returns LOGITS; the output activation (softmax |
sigmoid | identity) is the separate `activate`, because the losses take logits.

Head parameters: `linear.weight` (O, F), `linear.bias` (O,), and for attention pooling
`attention.weight` (A, F), `attention.bias` (A,), `score.weight` (1, A).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deeprnn.reference.cells import Array, Cache, sigmoid

Params = dict[str, Array]
POOLINGS = ("last", "mean", "attention", "every")
IDENTITY = (None, "none", "identity", "linear")


def length_mask(lengths: Array | None, B: int, T: int) -> Array:
    """(B, T) bool, True where t < len_b (all True when lengths is None)."""
    if lengths is None:
        return np.ones((B, T), dtype=bool)
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


def _softmax(a: Array, axis: int = -1) -> Array:
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def activate(kind: str | None, logits: Array) -> Array:
    """y = softmax(logits) (last axis) | sigmoid(logits) | logits (None, "none", "identity")."""
    if kind == "softmax":
        return _softmax(logits)
    if kind == "sigmoid":
        return sigmoid(logits)
    if kind in IDENTITY:
        return logits.copy()
    raise ValueError(f"unknown activation {kind!r}")


def head_forward(
    params: Params, config: dict[str, Any], o: Array, lengths: Array | None = None
) -> tuple[Array, Cache]:
    """Pool o (B, T, F) and return (logits, cache): (B, O), or (B, T, O) for "every".

    last:      s = o[b, len_b - 1]                     (0 when len_b = 0)
    mean:      s = sum_{t < len_b} o_t / len_b         (0 when len_b = 0)
    attention: e_t = w_s . tanh(W_a o_t + b_a); alpha = softmax_{t < len_b}(e); s = sum alpha_t o_t
    every:     s_t = o_t for t < len_b, 0 past the end (as the torch Head)
    """
    pooling = config["pooling"]
    params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    o = np.asarray(o, dtype=np.float64)
    B, T, _ = o.shape
    mask = length_mask(lengths, B, T)
    n = mask.sum(axis=1)  # (B,) valid steps per row
    cache: Cache = {"params": params, "pooling": pooling, "o": o, "mask": mask, "n": n}
    if pooling == "last":
        s = np.where(n[:, None] > 0, o[np.arange(B), np.maximum(n - 1, 0)], 0.0)
    elif pooling == "mean":
        s = (o * mask[..., None]).sum(axis=1) / np.maximum(n, 1)[:, None]
    elif pooling == "attention":
        a = np.tanh(o @ params["attention.weight"].T + params["attention.bias"])  # (B, T, A)
        e = a @ params["score.weight"][0]  # (B, T)
        # softmax over the valid steps only; a row with none gets alpha = 0, hence s = 0
        e_max = np.where(n > 0, np.where(mask, e, -np.inf).max(axis=1, initial=-np.inf), 0.0)
        w = np.exp(np.where(mask, e - e_max[:, None], -np.inf))  # exp(-inf) = 0, no overflow
        alpha = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-300)
        s = (alpha[..., None] * o).sum(axis=1)
        cache |= {"a": a, "alpha": alpha}
    elif pooling == "every":
        s = o * mask[..., None]
    else:
        raise ValueError(f"unknown pooling {pooling!r}; expected one of {POOLINGS}")
    cache["s"] = s
    return s @ params["linear.weight"].T + params["linear.bias"], cache


def head_backward(cache: Cache, d_logits: Array) -> tuple[Params, Array]:
    """dL/d logits -> (grads with the keys of params, dL/do (B, T, F))."""
    params, o, mask, n, s = cache["params"], cache["o"], cache["mask"], cache["n"], cache["s"]
    B, T, F = o.shape
    grads = {k: np.zeros_like(v, dtype=np.float64) for k, v in params.items()}
    w = params["linear.weight"]
    d_logits = np.asarray(d_logits, dtype=np.float64)
    grads["linear.weight"] += d_logits.reshape(-1, w.shape[0]).T @ s.reshape(-1, F)
    grads["linear.bias"] += d_logits.reshape(-1, w.shape[0]).sum(axis=0)
    ds = d_logits @ w  # (B, F), or (B, T, F) for "every"
    pooling = cache["pooling"]
    if pooling == "every":
        return grads, ds * mask[..., None]
    d_o = np.zeros_like(o)
    if pooling == "last":
        rows = np.flatnonzero(n > 0)
        d_o[rows, n[rows] - 1] = ds[rows]
    elif pooling == "mean":
        d_o = mask[..., None] * (ds / np.maximum(n, 1)[:, None])[:, None, :]
    elif pooling == "attention":
        a, alpha = cache["a"], cache["alpha"]
        # s = sum_t alpha_t o_t
        d_o = alpha[..., None] * ds[:, None, :]
        d_alpha = (o * ds[:, None, :]).sum(axis=-1)  # (B, T)
        # softmax: de_t = alpha_t (d_alpha_t - sum_k alpha_k d_alpha_k); zero off the valid steps
        de = alpha * (d_alpha - (alpha * d_alpha).sum(axis=1, keepdims=True))
        grads["score.weight"] += (de[..., None] * a).sum(axis=(0, 1))[None, :]
        d_pre = de[..., None] * params["score.weight"][0] * (1.0 - a**2)  # (B, T, A)
        grads["attention.weight"] += d_pre.reshape(B * T, -1).T @ o.reshape(B * T, F)
        grads["attention.bias"] += d_pre.sum(axis=(0, 1))
        d_o = d_o + d_pre @ params["attention.weight"]
    return grads, d_o


def _weights(mask: Array | None, shape: tuple[int, ...]) -> Array:
    """The mask (a prefix of `shape`, e.g. (B, T) for (B, T, C)) as float weights of `shape`."""
    if mask is None:
        return np.ones(shape)
    mask = np.asarray(mask, dtype=np.float64)
    return np.broadcast_to(mask.reshape(mask.shape + (1,) * (len(shape) - mask.ndim)), shape)


def loss_forward(
    kind: str, logits: Array, target: Array, mask: Array | None = None
) -> tuple[float, Array]:
    """Return (loss, dL/d logits); the loss is a mean over the entries the mask keeps.

    ce:  logits (..., C), integer target (...);  L = mean over kept (...) of -log softmax[target]
    bce: target like logits;  L = mean over kept elements of max(x,0) - x y + log(1 + e^-|x|)
    mse: target like logits;  L = mean over kept elements of (x - y)^2
    mask: bool over the leading axes of logits (e.g. (B, T) from `length_mask` for per-step
    outputs); None keeps everything. With nothing kept, L = 0 and the gradient is 0.
    """
    x = np.asarray(logits, dtype=np.float64)
    if kind == "ce":
        w = _weights(mask, x.shape[:-1])
        # targets on dropped entries may be padding (e.g. -100): read class 0 there instead
        t = np.where(w > 0, np.asarray(target), 0).astype(np.int64)
        log_p = x - x.max(axis=-1, keepdims=True)
        log_p = log_p - np.log(np.exp(log_p).sum(axis=-1, keepdims=True))
        per = -np.take_along_axis(log_p, t[..., None], axis=-1)[..., 0]
        grad = np.exp(log_p)
        np.put_along_axis(grad, t[..., None], np.take_along_axis(grad, t[..., None], -1) - 1, -1)
        w_grad = w[..., None]
    elif kind in ("bce", "mse"):
        y = np.asarray(target, dtype=np.float64)
        w = w_grad = _weights(mask, x.shape)
        if kind == "bce":
            per = np.maximum(x, 0.0) - x * y + np.log1p(np.exp(-np.abs(x)))
            grad = sigmoid(x) - y
        else:
            per = (x - y) ** 2
            grad = 2.0 * (x - y)
    else:
        raise ValueError(f"unknown loss {kind!r}; expected 'ce', 'bce' or 'mse'")
    count = w.sum()
    if count == 0:
        return 0.0, np.zeros_like(x)
    return float((w * per).sum() / count), w_grad * grad / count
