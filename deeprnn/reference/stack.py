"""The whole DeepRNN in float64 NumPy: `forward`, and `backward` written out as BPTT.

For layer l (docs/semantics.md is the contract):

    u_0 = x;  u_l = z_l ("stack") or concat(x, z_l) ("skip"),  z_l = act(o_{l-1} W^T + b) | o_{l-1}
    r_l = concat(h_fwd, h_bwd) of the recurrence over t < len_b (zero for t >= len_b)
          each step: state_t = zoneout(state_{t-1}, cell(u_t, state_{t-1}))
    o_l = r_l + o_{l-1} (residual, l > 0), r_0 + x (residual, W_0 == I), else r_l
    out = o_{L-1} ("top") or concat(o_0, ..., o_{L-1}) ("all")

Backward runs the layers top-down. Inside one direction of one layer, BPTT walks the steps
in the opposite order of the forward pass and keeps dL/d(state after the step); at step t

    dL/dh_t = dL/dr_t (from the layer's output at t) + dL/dh_t (carried from step t+1)

which goes through the zoneout blend and the cell into dL/du_t and dL/d(state before
the step).

Covered: the eval-mode network. Zoneout is its eval-mode expectation, state_{t-1} + u *
(cell's new state - state_{t-1}) with u = 1 - p_h (h) and 1 - p_c (LSTM c). Dropout between
layers and recurrent dropout act only in training, so the reference ignores them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deeprnn.reference.cells import (
    GATES,
    Array,
    Cache,
    State,
    activation_backward,
    activation_forward,
    cell_backward,
    cell_forward,
    zoneout_backward,
    zoneout_forward,
    zoneout_updates,
)

Params = dict[str, Array]
DIRECTIONS = ("cell", "cell_reverse")


def _config(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of `config` with list-valued `hidden_size` and `cell` and defaults filled in."""
    cfg = {"nonlinearity": "tanh", "wiring": "stack", "residual": False, "layer_norm": False}
    cfg |= {"bidirectional": False, "between": None, "outputs": "top", "bias": True}
    cfg |= {"zoneout": 0.0}
    cfg |= dict(config)
    cfg["zoneout"] = _zoneout_pair(cfg["zoneout"])
    hidden = cfg["hidden_size"]
    cfg["hidden_size"] = [hidden] if isinstance(hidden, int) else list(hidden)
    cells = cfg["cell"]
    cfg["cell"] = [cells] * len(cfg["hidden_size"]) if isinstance(cells, str) else list(cells)
    if len(cfg["cell"]) != len(cfg["hidden_size"]):
        raise ValueError("config: `cell` and `hidden_size` need one entry per layer")
    cfg["D"] = 2 if cfg["bidirectional"] else 1
    cfg["widths"] = [cfg["D"] * h for h in cfg["hidden_size"]]
    return cfg


def _zoneout_pair(zoneout: Any) -> tuple[float, float]:
    """`zoneout` p or (p_h, p_c) -> (p_h, p_c), each in [0, 1)."""
    pair = tuple(zoneout) if isinstance(zoneout, (list, tuple)) else (zoneout, zoneout)
    if len(pair) != 2 or not all(0.0 <= float(p) < 1.0 for p in pair):
        raise ValueError(f"config: zoneout must be p or (p_h, p_c) in [0, 1), got {zoneout!r}")
    return float(pair[0]), float(pair[1])


def param_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every parameter name of the doc (torch state_dict names) with its shape."""
    cfg = _config(config)
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (kind, h) in enumerate(zip(cfg["cell"], cfg["hidden_size"])):
        n_in = cfg["input_size"]
        if i > 0:
            n_in = cfg["widths"][i - 1] + (cfg["input_size"] if cfg["wiring"] == "skip" else 0)
        gh = GATES[kind] * h
        for name in DIRECTIONS[: cfg["D"]]:
            pre = f"layers.{i}.{name}."
            shapes[pre + "weight_ih"] = (gh, n_in)
            shapes[pre + "weight_hh"] = (gh, h)
            if cfg["bias"]:
                shapes[pre + "bias_ih"] = (gh,)
                shapes[pre + "bias_hh"] = (gh,)
            norms = {"ln_ih": gh, "ln_hh": gh} | ({"ln_c": h} if kind == "lstm" else {})
            for norm, size in norms.items() if cfg["layer_norm"] else ():
                shapes[pre + f"{norm}.weight"] = (size,)
                shapes[pre + f"{norm}.bias"] = (size,)
    if cfg["between"] is not None:
        for k, w in enumerate(cfg["widths"][:-1]):
            shapes[f"between.{k}.weight"] = (w, w)
            shapes[f"between.{k}.bias"] = (w,)
    return shapes


def _check_params(params: Params, config: dict[str, Any]) -> None:
    """Fail loudly on a missing, unexpected or misshapen parameter: a silent zero would hide it."""
    expected = param_shapes(config)
    missing, extra = sorted(set(expected) - set(params)), sorted(set(params) - set(expected))
    if missing or extra:
        raise ValueError(f"params: missing {missing}, unexpected {extra}")
    for name, shape in expected.items():
        if np.shape(params[name]) != shape:
            raise ValueError(f"params[{name!r}]: shape {np.shape(params[name])}, expected {shape}")


def _sub(params: Params, prefix: str) -> Params:
    """The parameters under `prefix`, with the prefix stripped (a cell's local names)."""
    return {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}


def _split_state(entry: Any, kind: str, D: int, B: int, H: int) -> list[State]:
    """Doc format (h | (h, c), each (B, H) or (2, B, H)) -> one tuple per direction."""
    n = 2 if kind == "lstm" else 1
    if entry is None:
        return [tuple(np.zeros((B, H)) for _ in range(n)) for _ in range(D)]
    parts = [np.asarray(a, dtype=np.float64) for a in (entry if kind == "lstm" else (entry,))]
    want = (B, H) if D == 1 else (2, B, H)
    if len(parts) != n or any(a.shape != want for a in parts):
        raise ValueError(f"state for a {kind} layer: expected {n} array(s) of shape {want}")
    return [tuple(parts)] if D == 1 else [tuple(a[d] for a in parts) for d in range(2)]


def _join_state(states: list[State], kind: str) -> Any:
    """One tuple per direction -> doc format (bidirectional states stacked on a new axis 0)."""
    parts = [
        states[0][k] if len(states) == 1 else np.stack([s[k] for s in states])
        for k in range(len(states[0]))
    ]
    return tuple(parts) if kind == "lstm" else parts[0]


def run_direction(
    kind: str, p: Params, u: Array, mask: Array, state0: State, reverse: bool, cfg: dict
) -> tuple[Array, State, list]:
    """One direction of one layer over time: u (B, T, n_in) -> h sequence (B, T, H).

    state_t = zoneout(state_{t-1}, cell(u_t, state_{t-1})) on rows with t < len_b,
    state_{t-1} elsewhere, so each row starts at t = len_b - 1 when `reverse` and its final
    state is the last real step's. h_t (the zoned h) is zero for t >= len_b.
    """
    B, T, _ = u.shape
    updates = zoneout_updates(kind, cfg["zoneout"])
    state, h_seq, steps = state0, np.zeros((B, T, state0[0].shape[-1])), []
    for t in reversed(range(T)) if reverse else range(T):
        valid = mask[:, t, None]  # (B, 1)
        new, step_cache = cell_forward(
            kind, p, u[:, t], state, cfg["nonlinearity"], cfg["layer_norm"]
        )
        new = zoneout_forward(state, new, updates)
        state = tuple(np.where(valid, s_new, s_old) for s_new, s_old in zip(new, state))
        h_seq[:, t] = np.where(valid, new[0], 0.0)
        steps.append((t, step_cache))
    return h_seq, state, steps


def run_direction_backward(
    kind: str,
    p: Params,
    steps: list,
    mask: Array,
    d_h_seq: Array,
    d_final: State,
    n_in: int,
    zoneout: tuple[float, float] = (0.0, 0.0),
) -> tuple[Params, Array, State]:
    """BPTT through `run_direction`: returns (weight grads, du (B, T, n_in), d state0).

    `d_state` is dL/d(state after the step). At step t, on rows with t < len_b:
        d(zoned state) = d_state + (dL/dh_t from the output, in the h slot)
        d_state     <- (1 - u) d(zoned state)                 (zoneout: the kept old state)
                       + cell backward of u d(zoned state)    (the cell's new state)
    (without zoneout u = 1) and on rows with t >= len_b the state passed through unchanged,
    so d_state stays.
    """
    updates = zoneout_updates(kind, zoneout)
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    B, T, _ = d_h_seq.shape
    du = np.zeros((B, T, n_in))
    d_state = d_final
    for t, step_cache in reversed(steps):
        valid = mask[:, t, None].astype(np.float64)
        d_zoned = [valid * d for d in d_state]
        d_zoned[0] = d_zoned[0] + valid * d_h_seq[:, t]
        d_new, d_kept = zoneout_backward(tuple(d_zoned), updates)
        du[:, t], d_old = cell_backward(kind, p, step_cache, d_new, grads)
        d_state = tuple(
            d_o + d_k + (1.0 - valid) * d for d_o, d_k, d in zip(d_old, d_kept, d_state)
        )
    return grads, du, d_state


def forward(
    params: Params,
    config: dict[str, Any],
    x: Array,
    lengths: Array | None = None,
    state: list | None = None,
) -> tuple[Array, list, Cache]:
    """Run the DeepRNN. Returns (out, final_state, cache).

    x (B, T, I); lengths (B,) ints in [0, T] or None (all T); state: list per layer of h or
    (h, c), each (B, H_l) or (2, B, H_l) when bidirectional, or None (zeros). out is
    (B, T, W_{L-1}) for "top" and (B, T, sum_l W_l) for "all"; final_state as `state`.
    """
    cfg = _config(config)
    _check_params(params, cfg)
    # the oracle computes in float64 whatever it is handed (e.g. a float32 state_dict)
    params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x = np.asarray(x, dtype=np.float64)
    B, T, n_x = x.shape
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths, dtype=np.int64)
    if lengths.shape != (B,) or lengths.min(initial=0) < 0 or lengths.max(initial=0) > T:
        raise ValueError(f"lengths must be (B,) = ({B},) ints in [0, {T}]")
    mask = np.arange(T)[None, :] < lengths[:, None]  # (B, T), True on real steps
    layers, outputs, final_state = [], [], []
    o_prev = x
    for i, (kind, h) in enumerate(zip(cfg["cell"], cfg["hidden_size"])):  # i: the doc's l
        layer: Cache = {"kind": kind, "between": None}
        # 1. the layer's input
        u = x
        if i > 0:
            z = o_prev
            if cfg["between"] is not None:
                w, b = params[f"between.{i - 1}.weight"], params[f"between.{i - 1}.bias"]
                pre = o_prev @ w.T + b
                z = activation_forward(cfg["between"], pre)
                layer["between"] = {"o_prev": o_prev, "pre": pre, "z": z}
            u = z if cfg["wiring"] == "stack" else np.concatenate([x, z], axis=-1)
        layer["n_in"] = u.shape[-1]
        # 2. the recurrence, once per direction
        states0 = _split_state(None if state is None else state[i], kind, cfg["D"], B, h)
        h_seqs, finals, layer["steps"] = [], [], []
        for d, name in enumerate(DIRECTIONS[: cfg["D"]]):
            p = _sub(params, f"layers.{i}.{name}.")
            h_seq, final, steps = run_direction(kind, p, u, mask, states0[d], d == 1, cfg)
            h_seqs.append(h_seq)
            finals.append(final)
            layer["steps"].append(steps)
        r = np.concatenate(h_seqs, axis=-1)
        final_state.append(_join_state(finals, kind))
        # 3. residual
        layer["residual"] = cfg["residual"] and (i > 0 or cfg["widths"][0] == n_x)
        if cfg["residual"] and i > 0 and cfg["widths"][i] != cfg["widths"][i - 1]:
            raise ValueError(f"residual: layer {i} width differs from layer {i - 1}'s")
        o = np.where(mask[..., None], r + o_prev, 0.0) if layer["residual"] else r
        layers.append(layer)
        outputs.append(o)
        o_prev = o
    out = np.concatenate(outputs, axis=-1) if cfg["outputs"] == "all" else outputs[-1]
    cache = {"params": params, "cfg": cfg, "x": x, "mask": mask, "layers": layers}
    return out, final_state, cache


def backward(
    cache: Cache, d_out: Array, d_final_state: list | None = None
) -> tuple[Params, Array, list]:
    """Gradients of a loss L given dL/d out and dL/d final_state (None: zero).

    Returns (grads with the keys of params, dL/dx (B, T, I), dL/d initial state in the
    state format; given also when the initial state was None, i.e. zeros).
    """
    params, cfg, x, mask = cache["params"], cache["cfg"], cache["x"], cache["mask"]
    B, T, n_x = x.shape
    L, D = len(cfg["hidden_size"]), cfg["D"]
    grads = {k: np.zeros_like(v, dtype=np.float64) for k, v in params.items()}
    dx = np.zeros_like(x)
    d_out = np.asarray(d_out, dtype=np.float64)
    # d_o[l] = dL/d o_l, collecting the output and the paths through layer l + 1
    if cfg["outputs"] == "all":
        d_o = list(np.split(d_out, np.cumsum(cfg["widths"])[:-1], axis=-1))
    else:
        d_o = [np.zeros((B, T, w)) for w in cfg["widths"][:-1]] + [d_out]
    d_state0: list = [None] * L
    for i in reversed(range(L)):  # i: the doc's layer l
        layer, kind, h = cache["layers"][i], cfg["cell"][i], cfg["hidden_size"][i]
        # o_l is zero past len_b: nothing flows back from there
        do = np.where(mask[..., None], d_o[i], 0.0)
        # 3. residual: o_l = r_l + o_{l-1} (or + x)
        if layer["residual"]:
            if i == 0:
                dx += do
            else:
                d_o[i - 1] = d_o[i - 1] + do
        # 2. the recurrence, once per direction; r_l = concat(h_fwd, h_bwd)
        d_final = None if d_final_state is None else d_final_state[i]
        d_finals = _split_state(d_final, kind, D, B, h)
        du, d_starts = np.zeros((B, T, layer["n_in"])), []
        for d, name in enumerate(DIRECTIONS[:D]):
            p = _sub(params, f"layers.{i}.{name}.")
            dr = do[..., d * h : (d + 1) * h]
            g, du_d, d_start = run_direction_backward(
                kind, p, layer["steps"][d], mask, dr, d_finals[d], layer["n_in"], cfg["zoneout"]
            )
            for k, v in g.items():
                grads[f"layers.{i}.{name}.{k}"] += v
            du += du_d
            d_starts.append(d_start)
        d_state0[i] = _join_state(d_starts, kind)
        # 1. the layer's input: u = z or concat(x, z), z = act(o_{l-1} W^T + b) or o_{l-1}
        if i == 0:
            dx += du
            continue
        dz = du
        if cfg["wiring"] == "skip":
            dx += du[..., :n_x]
            dz = du[..., n_x:]
        if layer["between"] is not None:
            bc, w = layer["between"], params[f"between.{i - 1}.weight"]
            dpre = activation_backward(cfg["between"], bc["pre"], bc["z"], dz)
            flat_dpre, flat_in = dpre.reshape(B * T, -1), bc["o_prev"].reshape(B * T, -1)
            grads[f"between.{i - 1}.weight"] += flat_dpre.T @ flat_in
            grads[f"between.{i - 1}.bias"] += flat_dpre.sum(axis=0)
            dz = dpre @ w
        d_o[i - 1] = d_o[i - 1] + dz
    return grads, dx, d_state0
