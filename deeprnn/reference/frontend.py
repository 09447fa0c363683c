"""The convolutional front end in float64 NumPy: forward and a hand-written backward.

Block i (docs/semantics.md, "Convolutional front end"), for rows of lengths n:

    u = x * m_n                                   m_n[b, t] = t < n_b
    a[b, t, o] = sum_{j, c} pad(u)[b, t s + j d, c] W[o, c, j] + bias[o]
    v = act(norm(a))        batch: over the valid (b, t < n_conv_b) only | layer: per step
    y = maxpool_p(v) * m_n'                       n' = floor(n_conv / p)

Parameters (torch names): `blocks.{i}.conv.weight` (C_out, C_in, k), `blocks.{i}.conv.bias`
(C_out,) unless norm is "batch", `blocks.{i}.norm.weight` / `.bias` (C_out,).
Config: per-block lists `kernel_size`, `stride`, `pool`, `dilation`; `norm` ("batch" |
"layer" | None), `activation` ("relu" | "tanh" | "gelu" | "linear"), `padding` ("same" |
"valid"), and for batch norm `running` {"blocks.{i}.norm.running_mean" / "running_var"}:
eval mode reads them, training mode returns their update (momentum 0.1) in the cache.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deeprnn.reference.cells import Array, Cache

Params = dict[str, Array]
EPS = 1e-5
MOMENTUM = 0.1
_erf = np.vectorize(math.erf)


def conv_length(n: Array, k: int, s: int, d: int, padding: str) -> Array:
    """Steps out of one convolution for n steps in."""
    n = np.asarray(n)
    if padding == "same":
        return (n + s - 1) // s
    return np.maximum(n - d * (k - 1) - 1 + s, 0) // s


def _mask(lengths: Array, time: int) -> Array:
    return (np.arange(time)[None, :] < np.asarray(lengths)[:, None]).astype(np.float64)


def _act(kind: str, a: Array) -> tuple[Array, Array]:
    """(act(a), act'(a))."""
    if kind == "relu":
        return np.maximum(a, 0.0), (a > 0).astype(np.float64)
    if kind == "tanh":
        v = np.tanh(a)
        return v, 1.0 - v * v
    if kind == "gelu":
        cdf = 0.5 * (1.0 + _erf(a / math.sqrt(2.0)))
        pdf = np.exp(-0.5 * a * a) / math.sqrt(2.0 * math.pi)
        return a * cdf, cdf + a * pdf
    if kind == "linear":
        return a.copy(), np.ones_like(a)
    raise ValueError(f"unknown activation {kind!r}")


def _conv_forward(u: Array, w: Array, bias: Array | None, s: int, d: int, left: int, right: int):
    up = np.pad(u, ((0, 0), (left, right), (0, 0)))
    k = w.shape[2]
    t_out = (up.shape[1] - d * (k - 1) - 1) // s + 1
    a = np.zeros((u.shape[0], max(t_out, 0), w.shape[0]))
    for j in range(k):
        idx = np.arange(t_out) * s + j * d
        a += up[:, idx, :] @ w[:, :, j].T
    if bias is not None:
        a += bias
    return a, up


def _conv_backward(da: Array, up: Array, w: Array, s: int, d: int, left: int, time: int):
    dw = np.zeros_like(w)
    dup = np.zeros_like(up)
    for j in range(w.shape[2]):
        idx = np.arange(da.shape[1]) * s + j * d  # distinct for one j: plain += is exact
        dw[:, :, j] = np.einsum("bto,btc->oc", da, up[:, idx, :])
        dup[:, idx, :] += da @ w[:, :, j]
    return dw, da.sum((0, 1)), dup[:, left : left + time, :]


def _batch_norm(a, mc, gamma, beta, training, mean=None, var=None):
    if training:
        n = max(mc.sum(), 1.0)
        mean = (a * mc[..., None]).sum((0, 1)) / n
        var = (((a - mean) * mc[..., None]) ** 2).sum((0, 1)) / n
    r = 1.0 / np.sqrt(var + EPS)
    xhat = (a - mean) * r
    return xhat * gamma + beta, {"xhat": xhat, "r": r, "mean": mean, "var": var, "mc": mc}


def _batch_norm_backward(dz, c, gamma, training):
    dgamma, dbeta = (dz * c["xhat"]).sum((0, 1)), dz.sum((0, 1))
    dxhat = dz * gamma
    if not training:
        return dxhat * c["r"], dgamma, dbeta
    m = c["mc"][..., None]
    n = max(c["mc"].sum(), 1.0)
    centered = c["xhat"] / c["r"]
    d_var = (dxhat * centered).sum((0, 1)) * -0.5 * c["r"] ** 3
    d_mean = -c["r"] * dxhat.sum((0, 1))  # the variance's term vanishes: sum m (a - mean) = 0
    return dxhat * c["r"] + m * d_mean / n + d_var * 2.0 * centered * m / n, dgamma, dbeta


def _layer_norm(a, gamma, beta):
    mean = a.mean(-1, keepdims=True)
    r = 1.0 / np.sqrt(a.var(-1, keepdims=True) + EPS)
    xhat = (a - mean) * r
    return xhat * gamma + beta, {"xhat": xhat, "r": r}


def _layer_norm_backward(dz, c, gamma):
    xhat, r = c["xhat"], c["r"]
    dxhat = dz * gamma
    da = r * (dxhat - dxhat.mean(-1, keepdims=True) - xhat * (dxhat * xhat).mean(-1, keepdims=True))
    return da, (dz * xhat).sum((0, 1)), dz.sum((0, 1))


def _pool_forward(v: Array, p: int) -> tuple[Array, Array]:
    """Max over windows of p steps (stride p, the remainder dropped); (out, argmax)."""
    t_out = v.shape[1] // p
    windows = v[:, : t_out * p].reshape(v.shape[0], t_out, p, v.shape[2])
    arg = windows.argmax(2)
    return np.take_along_axis(windows, arg[:, :, None], 2)[:, :, 0], arg


def _pool_backward(dy: Array, arg: Array, p: int, time: int) -> Array:
    B, t_out, C = dy.shape
    dw = np.zeros((B, t_out, p, C))
    np.put_along_axis(dw, arg[:, :, None], dy[:, :, None], 2)
    dv = np.zeros((B, time, C))
    dv[:, : t_out * p] = dw.reshape(B, t_out * p, C)
    return dv


def frontend_forward(
    params: Params, config: dict[str, Any], x: Array, lengths: Array | None = None,
    training: bool = False,
) -> tuple[Array, Array, Cache]:  # fmt: skip
    """x (B, T, F), lengths (B,) -> (y (B, T', C), new lengths, cache)."""
    x = np.asarray(x, dtype=np.float64)
    n = np.full(x.shape[0], x.shape[1]) if lengths is None else np.asarray(lengths)
    caches, running = [], {}
    for i in range(len(config["kernel_size"])):
        k, s, p, d = (config[key][i] for key in ("kernel_size", "stride", "pool", "dilation"))
        pre = f"blocks.{i}."
        span = d * (k - 1)
        left, right = (span // 2, span - span // 2) if config["padding"] == "same" else (0, 0)
        m_in = _mask(n, x.shape[1])
        u = x * m_in[..., None]
        a, up = _conv_forward(u, params[pre + "conv.weight"], params.get(pre + "conv.bias"),
                              s, d, left, right)  # fmt: skip
        n_conv = conv_length(n, k, s, d, config["padding"])
        c = {"m_in": m_in, "up": up, "k": k, "s": s, "p": p, "d": d, "left": left, "T": x.shape[1]}
        z = a
        if config["norm"] == "batch":
            gamma, beta = params[pre + "norm.weight"], params[pre + "norm.bias"]
            stats = config.get("running", {})
            mean, var = stats.get(pre + "norm.running_mean"), stats.get(pre + "norm.running_var")
            z, c["norm"] = _batch_norm(a, _mask(n_conv, a.shape[1]), gamma, beta, training,
                                       mean, var)  # fmt: skip
            if training:
                count = _mask(n_conv, a.shape[1]).sum()
                old_m = mean if mean is not None else np.zeros_like(gamma)
                old_v = var if var is not None else np.ones_like(gamma)
                unbiased = c["norm"]["var"] * count / max(count - 1, 1)
                running[pre + "norm.running_mean"] = old_m + MOMENTUM * (c["norm"]["mean"] - old_m)
                running[pre + "norm.running_var"] = old_v + MOMENTUM * (unbiased - old_v)
        elif config["norm"] == "layer":
            z, c["norm"] = _layer_norm(a, params[pre + "norm.weight"], params[pre + "norm.bias"])
        v, c["dact"] = _act(config["activation"], z)
        c["Tc"] = v.shape[1]
        if p > 1:
            v, c["arg"] = _pool_forward(v, p)
        n = n_conv // p
        c["m_out"] = _mask(n, v.shape[1])
        x = v * c["m_out"][..., None]
        caches.append(c)
    cache = {"blocks": caches, "config": config, "params": params, "training": training,
             "running": running}  # fmt: skip
    return x, n, cache


def frontend_backward(cache: Cache, dy: Array) -> tuple[Params, Array]:
    """dL/dy (B, T', C) -> ({param name: dL/dparam}, dL/dx)."""
    config, params, grads = cache["config"], cache["params"], {}
    for i in reversed(range(len(cache["blocks"]))):
        c, pre = cache["blocks"][i], f"blocks.{i}."
        dv = dy * c["m_out"][..., None]
        if c["p"] > 1:
            dv = _pool_backward(dv, c["arg"], c["p"], c["Tc"])
        dz = dv * c["dact"]
        da = dz
        if config["norm"] == "batch":
            da, g, b = _batch_norm_backward(dz, c["norm"], params[pre + "norm.weight"],
                                            cache["training"])  # fmt: skip
            grads[pre + "norm.weight"], grads[pre + "norm.bias"] = g, b
        elif config["norm"] == "layer":
            da, g, b = _layer_norm_backward(dz, c["norm"], params[pre + "norm.weight"])
            grads[pre + "norm.weight"], grads[pre + "norm.bias"] = g, b
        w = params[pre + "conv.weight"]
        dw, dbias, du = _conv_backward(da, c["up"], w, c["s"], c["d"], c["left"], c["T"])
        grads[pre + "conv.weight"] = dw
        if pre + "conv.bias" in params:
            grads[pre + "conv.bias"] = dbias
        dy = du * c["m_in"][..., None]
    return grads, dy
