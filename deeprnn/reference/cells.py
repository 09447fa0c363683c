"""One time step of the RNN, LSTM and GRU cells, forward and backward, in float64 NumPy.

The equations are those of docs/semantics.md, with PyTorch's names and gate order:

    a_x = [LN_ih](W_ih x) + b_ih          a_h = [LN_hh](W_hh h) + b_hh
    RNN : h' = f(a_x + a_h)
    LSTM: i, f, g, o = split(a_x + a_h);  c' = f*c + i*g;  h' = o * tanh([LN_c](c'))
    GRU : r = s(a_x[r] + a_h[r]); z = s(a_x[z] + a_h[z]); n = tanh(a_x[n] + r * a_h[n])
          h' = (1 - z) * n + z * h

Zoneout (eval mode, the expectation) blends a step's new state with the old one:
state = old + u * (new - old), with u = 1 - p_h for h and 1 - p_c for the LSTM's c; the cell
itself is unchanged (the LSTM's h' is computed from the un-zoned c').

A cell knows nothing of time. A state is always a tuple here: `(h,)` for RNN / GRU and
`(h, c)` for LSTM, so the time loop treats every cell alike. `p` is the cell's own parameter
dict with local names (`weight_ih`, `ln_ih.weight`, ...); a bias absent from `p` is zero.
Backward functions ADD into `grads` (same keys as `p`), because one cell's weights are used
at every step and the step gradients sum.
"""

from __future__ import annotations

from typing import Any

import numpy as np

EPS = 1e-5  # layer-norm epsilon, as torch.nn.LayerNorm
GATES = {"rnn": 1, "lstm": 4, "gru": 3}

Array = np.ndarray
State = tuple[Array, ...]
Cache = dict[str, Any]
Params = dict[str, Array]


def sigmoid(a: Array) -> Array:
    """s(a) = 1 / (1 + exp(-a)) = (1 + tanh(a / 2)) / 2; the tanh form never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def activation_forward(name: str, a: Array) -> Array:
    """y = f(a) for f in tanh | relu | sigmoid | linear."""
    if name == "tanh":
        return np.tanh(a)
    if name == "relu":
        return np.maximum(a, 0.0)
    if name == "sigmoid":
        return sigmoid(a)
    if name == "linear":
        return a.copy()
    raise ValueError(f"unknown activation {name!r}")


def activation_backward(name: str, a: Array, y: Array, dy: Array) -> Array:
    """da = dy * f'(a), with f' written through y = f(a) where that is cheaper; relu'(0) = 0."""
    if name == "tanh":
        return dy * (1.0 - y * y)
    if name == "relu":
        return dy * (a > 0)
    if name == "sigmoid":
        return dy * y * (1.0 - y)
    if name == "linear":
        return dy.copy()
    raise ValueError(f"unknown activation {name!r}")


def layer_norm_forward(v: Array, gamma: Array, beta: Array) -> tuple[Array, Cache]:
    """y = (v - mean(v)) / sqrt(var(v) + eps) * gamma + beta over the last axis (biased var)."""
    n = v.shape[-1]
    centred = v - v.sum(axis=-1, keepdims=True) / n
    inv_std = 1.0 / np.sqrt((centred * centred).sum(axis=-1, keepdims=True) / n + EPS)
    v_hat = centred * inv_std
    return v_hat * gamma + beta, {"v_hat": v_hat, "inv_std": inv_std, "gamma": gamma}


def layer_norm_backward(dy: Array, cache: Cache) -> tuple[Array, Array, Array]:
    """Return (dv, dgamma, dbeta). With g = dy * gamma and v_hat the normalised input:

    dv = inv_std * (g - mean(g) - v_hat * mean(g * v_hat))
    dgamma = sum over rows of dy * v_hat;  dbeta = sum over rows of dy
    """
    v_hat, inv_std = cache["v_hat"], cache["inv_std"]
    g = dy * cache["gamma"]
    dv = inv_std * (
        g - g.mean(axis=-1, keepdims=True) - v_hat * (g * v_hat).mean(axis=-1, keepdims=True)
    )
    n = dy.shape[-1]
    dgamma = (dy * v_hat).reshape(-1, n).sum(axis=0)
    dbeta = dy.reshape(-1, n).sum(axis=0)
    return dv, dgamma, dbeta


def _chunks(a: Array, k: int) -> list[Array]:
    """Split the gate axis into k equal blocks (the gate order of torch)."""
    h = a.shape[-1] // k
    return [a[..., j * h : (j + 1) * h] for j in range(k)]


def _bias(p: Params, name: str) -> Array | float:
    return p[name] if name in p else 0.0


def _norm_forward(p: Params, name: str, v: Array, layer_norm: bool) -> tuple[Array, Any]:
    """LN_name(v) when layer norm is on, else v unchanged."""
    if not layer_norm:
        return v, None
    return layer_norm_forward(v, p[f"{name}.weight"], p[f"{name}.bias"])


def _norm_backward(grads: Params, name: str, dy: Array, cache: Any) -> Array:
    if cache is None:
        return dy
    dv, dgamma, dbeta = layer_norm_backward(dy, cache)
    grads[f"{name}.weight"] += dgamma
    grads[f"{name}.bias"] += dbeta
    return dv


def project_forward(p: Params, x: Array, h: Array, layer_norm: bool) -> tuple[Array, Array, Cache]:
    """a_x = [LN_ih](x W_ih^T) + b_ih and a_h = [LN_hh](h W_hh^T) + b_hh, each (B, G*H)."""
    a_x, ln_ih = _norm_forward(p, "ln_ih", x @ p["weight_ih"].T, layer_norm)
    a_h, ln_hh = _norm_forward(p, "ln_hh", h @ p["weight_hh"].T, layer_norm)
    a_x = a_x + _bias(p, "bias_ih")
    a_h = a_h + _bias(p, "bias_hh")
    return a_x, a_h, {"x": x, "h": h, "ln_ih": ln_ih, "ln_hh": ln_hh}


def project_backward(
    p: Params, cache: Cache, da_x: Array, da_h: Array, grads: Params
) -> tuple[Array, Array]:
    """Back through both projections: return (dx, dh) and add the weight gradients."""
    if "bias_ih" in p:
        grads["bias_ih"] += da_x.sum(axis=0)
        grads["bias_hh"] += da_h.sum(axis=0)
    dproj_x = _norm_backward(grads, "ln_ih", da_x, cache["ln_ih"])
    dproj_h = _norm_backward(grads, "ln_hh", da_h, cache["ln_hh"])
    grads["weight_ih"] += dproj_x.T @ cache["x"]
    grads["weight_hh"] += dproj_h.T @ cache["h"]
    return dproj_x @ p["weight_ih"], dproj_h @ p["weight_hh"]


# --- RNN -------------------------------------------------------------------------------


def rnn_forward(
    p: Params, x: Array, state: State, nonlinearity: str = "tanh", layer_norm: bool = False
) -> tuple[State, Cache]:
    """h' = f(a_x + a_h), f = nonlinearity."""
    (h,) = state
    a_x, a_h, proj = project_forward(p, x, h, layer_norm)
    a = a_x + a_h
    h_new = activation_forward(nonlinearity, a)
    return (h_new,), {"proj": proj, "a": a, "h_new": h_new, "f": nonlinearity}


def rnn_backward(p: Params, cache: Cache, d_state_new: State, grads: Params) -> tuple[Array, State]:
    """da = dh' * f'(a); the sum a_x + a_h passes da to both projections."""
    (dh_new,) = d_state_new
    da = activation_backward(cache["f"], cache["a"], cache["h_new"], dh_new)
    dx, dh = project_backward(p, cache["proj"], da, da, grads)
    return dx, (dh,)


# --- LSTM ------------------------------------------------------------------------------


def lstm_forward(
    p: Params, x: Array, state: State, nonlinearity: str = "tanh", layer_norm: bool = False
) -> tuple[State, Cache]:
    """i, f, g, o = s, s, tanh, s of split(a_x + a_h); c' = f*c + i*g; h' = o*tanh([LN_c](c'))."""
    h, c = state
    a_x, a_h, proj = project_forward(p, x, h, layer_norm)
    a_i, a_f, a_g, a_o = _chunks(a_x + a_h, 4)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
    c_new = f * c + i * g
    c_norm, ln_c = _norm_forward(p, "ln_c", c_new, layer_norm)
    tanh_c = np.tanh(c_norm)
    h_new = o * tanh_c
    cache = {"proj": proj, "c": c, "i": i, "f": f, "g": g, "o": o, "tanh_c": tanh_c, "ln_c": ln_c}
    return (h_new, c_new), cache


def lstm_backward(
    p: Params, cache: Cache, d_state_new: State, grads: Params
) -> tuple[Array, State]:
    """dc' collects the carried gradient and the path through h' = o * tanh([LN_c](c')):

    do = dh' tanh_c;  dc' += [LN_c]^T(dh' o (1 - tanh_c^2))
    di = dc' g;  df = dc' c;  dg = dc' i;  dc = dc' f
    """
    dh_new, dc_new = d_state_new
    i, f, g, o, tanh_c = cache["i"], cache["f"], cache["g"], cache["o"], cache["tanh_c"]
    do = dh_new * tanh_c
    dc_norm = dh_new * o * (1.0 - tanh_c**2)
    dc_new = dc_new + _norm_backward(grads, "ln_c", dc_norm, cache["ln_c"])
    di, df, dg, dc = dc_new * g, dc_new * cache["c"], dc_new * i, dc_new * f
    da = np.concatenate(
        [di * i * (1 - i), df * f * (1 - f), dg * (1 - g**2), do * o * (1 - o)], axis=-1
    )
    dx, dh = project_backward(p, cache["proj"], da, da, grads)
    return dx, (dh, dc)


# --- GRU -------------------------------------------------------------------------------


def gru_forward(
    p: Params, x: Array, state: State, nonlinearity: str = "tanh", layer_norm: bool = False
) -> tuple[State, Cache]:
    """r, z = s(a_x[r,z] + a_h[r,z]); n = tanh(a_x[n] + r * a_h[n]); h' = (1-z) n + z h."""
    (h,) = state
    a_x, a_h, proj = project_forward(p, x, h, layer_norm)
    ax_r, ax_z, ax_n = _chunks(a_x, 3)
    ah_r, ah_z, ah_n = _chunks(a_h, 3)
    r = sigmoid(ax_r + ah_r)
    z = sigmoid(ax_z + ah_z)
    n = np.tanh(ax_n + r * ah_n)
    h_new = (1.0 - z) * n + z * h
    return (h_new,), {"proj": proj, "h": h, "r": r, "z": z, "n": n, "ah_n": ah_n}


def gru_backward(p: Params, cache: Cache, d_state_new: State, grads: Params) -> tuple[Array, State]:
    """dn = dh'(1-z); dz = dh'(h-n); dh = dh' z (+ the path through a_h);
    da_n = dn (1-n^2) goes to a_x[n] as is and to a_h[n] times r; dr = da_n a_h[n].
    """
    (dh_new,) = d_state_new
    h, r, z, n = cache["h"], cache["r"], cache["z"], cache["n"]
    dn = dh_new * (1.0 - z)
    dz = dh_new * (h - n)
    dh_direct = dh_new * z
    da_n = dn * (1.0 - n**2)
    da_r = da_n * cache["ah_n"] * r * (1.0 - r)
    da_z = dz * z * (1.0 - z)
    da_x = np.concatenate([da_r, da_z, da_n], axis=-1)
    da_h = np.concatenate([da_r, da_z, da_n * r], axis=-1)
    dx, dh = project_backward(p, cache["proj"], da_x, da_h, grads)
    return dx, (dh + dh_direct,)


# --- zoneout --------------------------------------------------------------------------

# One update share per state entry, u for h (and v for the LSTM's c); None: no zoneout.
Updates = tuple[float | None, ...]


def zoneout_updates(kind: str, zoneout: tuple[float, float]) -> Updates:
    """(p_h, p_c) -> the eval-mode shares (1 - p_h,) or, for the LSTM, (1 - p_h, 1 - p_c).

    p = 0 gives None rather than u = 1, so that a net without zoneout computes exactly the
    plain cell (old + 1 * (new - old) may round differently from new).
    """
    shares = tuple(None if p == 0.0 else 1.0 - p for p in zoneout)
    return shares if kind == "lstm" else shares[:1]


def zoneout_forward(old: State, new: State, updates: Updates) -> State:
    """Each entry old + u * (new - old), i.e. keep a share 1 - u of the old state."""
    return tuple(n if u is None else o + u * (n - o) for o, n, u in zip(old, new, updates))


def zoneout_backward(d_state: State, updates: Updates) -> tuple[State, State]:
    """d(zoned state) -> (d(cell's new state), the direct part of d(old state)).

    d new = u * d;  d old = (1 - u) * d, to which the caller adds the path through the cell.
    """
    d_new = tuple(d if u is None else u * d for d, u in zip(d_state, updates))
    d_old = tuple(
        np.zeros_like(d) if u is None else (1.0 - u) * d for d, u in zip(d_state, updates)
    )
    return d_new, d_old


# --- dispatch --------------------------------------------------------------------------

_FORWARD = {"rnn": rnn_forward, "lstm": lstm_forward, "gru": gru_forward}
_BACKWARD = {"rnn": rnn_backward, "lstm": lstm_backward, "gru": gru_backward}


def cell_forward(
    kind: str,
    p: Params,
    x: Array,
    state: State,
    nonlinearity: str = "tanh",
    layer_norm: bool = False,
) -> tuple[State, Cache]:
    """One step of cell `kind`: x (B, in), state (h,) or (h, c) each (B, H) -> new state."""
    if kind not in _FORWARD:
        raise ValueError(f"unknown cell {kind!r}; expected one of {sorted(_FORWARD)}")
    return _FORWARD[kind](p, x, state, nonlinearity, layer_norm)


def cell_backward(
    kind: str, p: Params, cache: Cache, d_state_new: State, grads: Params
) -> tuple[Array, State]:
    """Gradient of one step: d(new state) -> (dx, d(old state)); adds weight grads to `grads`."""
    return _BACKWARD[kind](p, cache, d_state_new, grads)
