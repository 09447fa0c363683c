"""The NumPy reference (the oracle) checked against central finite differences, and a few
facts that can be computed by hand. Every gradient case is one call of `assert_gradients`.
"""

from __future__ import annotations

import ast
import math
import pathlib

import numpy as np
import pytest

from deeprnn.reference import (
    activate,
    backward,
    forward,
    head_backward,
    head_forward,
    length_mask,
    loss_forward,
    param_shapes,
)

EPS, RTOL, ATOL = 1e-6, 1e-5, 1e-7
POOLINGS = ["last", "mean", "attention", "every"]
B, T = 3, 3


def assert_gradients(loss, variables: dict, analytic: dict) -> None:
    """analytic[name] == d loss() / d variables[name] by central differences, element by element.

    `loss()` reads the arrays of `variables`, which are perturbed in place and restored. Every
    variable must also influence the loss, so a forward pass that ignores one fails here.
    """
    assert set(analytic) == set(variables)
    for name, v in variables.items():
        numeric = np.zeros_like(v)
        for idx in np.ndindex(v.shape):
            old = v[idx]
            v[idx] = old + EPS
            up = loss()
            v[idx] = old - EPS
            down = loss()
            v[idx] = old
            numeric[idx] = (up - down) / (2 * EPS)
        np.testing.assert_allclose(analytic[name], numeric, rtol=RTOL, atol=ATOL, err_msg=name)
        assert np.abs(numeric).max() > 1e-6, f"{name} does not influence the loss"


# --- the stack -------------------------------------------------------------------------


def make_config(**overrides) -> dict:
    config = dict(
        input_size=2,
        hidden_size=[2, 2],
        cell=["lstm", "lstm"],
        nonlinearity="tanh",
        wiring="stack",
        residual=False,
        layer_norm=False,
        bidirectional=False,
        between=None,
        outputs="top",
        bias=True,
        dropout=0.0,
    )
    return config | overrides


def make_params(config: dict, rng: np.random.Generator) -> dict:
    params = {}
    for name, shape in param_shapes(config).items():
        centre = 1.0 if name.endswith("weight") and ".ln_" in name else 0.0
        params[name] = centre + rng.normal(scale=0.6, size=shape)
    return params


def state_leaves(state: list) -> list:
    """The arrays of a state (h, or (h, c), per layer) in a fixed order."""
    return [a for entry in state for a in (entry if isinstance(entry, tuple) else (entry,))]


def like_state(state: list, fill) -> list:
    """A state of the same format with each array replaced by fill(array)."""
    return [tuple(map(fill, e)) if isinstance(e, tuple) else fill(e) for e in state]


def check_stack(config: dict, lengths=None, initial_state=True, seed=0) -> None:
    """Gradients of L = sum(out * R) + sum(final_state * S) for every parameter, x and state0."""
    rng = np.random.default_rng(seed)
    params = make_params(config, rng)
    x = rng.normal(size=(B, T, config["input_size"]))
    _, zero_final, _ = forward(params, config, x, lengths)
    # with initial_state=False the analytic pass gets state=None, the same point as zeros
    state = like_state(zero_final, lambda a: rng.normal(size=a.shape) * initial_state)
    out, final, cache = forward(params, config, x, lengths, state if initial_state else None)
    R = rng.normal(size=out.shape)
    S = like_state(final, lambda a: rng.normal(size=a.shape))

    def loss() -> float:
        out, final, _ = forward(params, config, x, lengths, state)
        return float((out * R).sum()) + sum(
            float((f * s).sum()) for f, s in zip(state_leaves(final), state_leaves(S))
        )

    grads, dx, dstate0 = backward(cache, R, S)
    variables = params | {"x": x}
    analytic = grads | {"x": dx}
    for k, (v, d) in enumerate(zip(state_leaves(state), state_leaves(dstate0))):
        variables[f"state{k}"], analytic[f"state{k}"] = v, d
    assert_gradients(loss, variables, analytic)


CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("rnn", "sigmoid"), ("lstm", "tanh"), ("gru", "tanh")]
CASES = {
    # rnn layer norm over 2 units would be nearly constant (v_hat = +-1): give rnn 3 units
    f"{kind}-{nl}-ln{ln}": (
        make_config(
            cell=[kind] * 2, hidden_size=[3 - (kind != "rnn")] * 2, nonlinearity=nl, layer_norm=ln
        ),
        None,
    )
    for kind, nl in CELLS
    for ln in (False, True)
}
CASES |= {
    "single-layer": (make_config(hidden_size=[4], cell=["gru"]), None),
    "skip": (make_config(wiring="skip", cell=["gru", "lstm"]), None),
    "residual": (make_config(residual=True, cell=["rnn", "gru"]), None),
    "residual-layer0-width-differs": (make_config(input_size=3, residual=True), None),
    "outputs-all": (make_config(outputs="all", cell=["lstm", "gru"], hidden_size=[2, 3]), None),
    "no-bias-ln": (make_config(bias=False, layer_norm=True, cell=["lstm", "gru"]), None),
    "bidirectional-lstm-ln": (
        make_config(hidden_size=[2], cell=["lstm"], bidirectional=True, layer_norm=True),
        None,
    ),
    "bidirectional-gru": (make_config(bidirectional=True, cell=["gru", "gru"]), None),
    "bidirectional-rnn": (make_config(bidirectional=True, cell=["rnn", "rnn"]), None),
    "lengths-lstm": (make_config(), [3, 1, 0]),
    "lengths-rnn-relu-ln": (
        make_config(cell=["rnn"] * 2, nonlinearity="relu", layer_norm=True, hidden_size=[3, 3]),
        [1, 0, 3],
    ),
    "lengths-bidirectional-gru-ln": (
        make_config(hidden_size=[2], cell=["gru"], bidirectional=True, layer_norm=True),
        [2, 0, 3],
    ),
    "lengths-everything": (
        make_config(
            input_size=4,
            hidden_size=[2, 2],
            wiring="skip",
            residual=True,
            cell=["lstm", "gru"],
            between="relu",
            outputs="all",
            bidirectional=True,
        ),
        [3, 0, 1],
    ),
    "mixed-cells-and-sizes": (
        make_config(
            input_size=2,
            hidden_size=[2, 1, 3],
            cell=["lstm", "gru", "rnn"],
            nonlinearity="relu",
            wiring="skip",
            between="tanh",
            outputs="all",
            bidirectional=True,
        ),
        [3, 1, 0],
    ),
}
CASES |= {
    f"between-{act}": (make_config(between=act, cell=["gru", "lstm"], hidden_size=[2, 3]), None)
    for act in ("relu", "tanh", "sigmoid", "linear")
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_stack_gradients(case):
    config, lengths = CASES[case]
    check_stack(config, lengths)


def test_stack_gradients_without_initial_state():
    check_stack(make_config(cell=["gru", "lstm"], bidirectional=True), [3, 0, 2], False)


# --- heads and losses ------------------------------------------------------------------


def make_head_params(rng, features=3, out=2, attention=3) -> dict:
    return {
        "attention.weight": rng.normal(size=(attention, features)),
        "attention.bias": rng.normal(size=attention),
        "score.weight": rng.normal(size=(1, attention)),
        "linear.weight": rng.normal(size=(out, features)),
        "linear.bias": rng.normal(size=out),
    }


@pytest.mark.parametrize("lengths", [None, [3, 1, 0]], ids=["full", "lengths"])
@pytest.mark.parametrize("pooling", POOLINGS)
def test_head_gradients(pooling, lengths):
    rng = np.random.default_rng(1)
    params = make_head_params(rng)
    if pooling != "attention":
        params = {k: v for k, v in params.items() if k.startswith("linear")}
    o = rng.normal(size=(B, T, 3))
    config = {"pooling": pooling, "activation": None}
    logits, cache = head_forward(params, config, o, lengths)
    R = rng.normal(size=logits.shape)
    grads, d_o = head_backward(cache, R)

    def loss() -> float:
        return float((head_forward(params, config, o, lengths)[0] * R).sum())

    assert_gradients(loss, params | {"o": o}, grads | {"o": d_o})


def _loss_case(kind: str, per_step: bool, rng):
    shape = (B, T, 3) if per_step else (B, 3)
    logits = rng.normal(size=shape)
    target = rng.integers(0, 3, size=shape[:-1]) if kind == "ce" else rng.random(size=shape)
    if kind == "mse":
        target = rng.normal(size=shape)
    mask = length_mask([3, 1, 0], B, T) if per_step else None
    return logits, target, mask


@pytest.mark.parametrize("per_step", [False, True], ids=["pooled", "per-step-masked"])
@pytest.mark.parametrize("kind", ["ce", "bce", "mse"])
def test_loss_gradients(kind, per_step):
    logits, target, mask = _loss_case(kind, per_step, np.random.default_rng(2))
    _, d_logits = loss_forward(kind, logits, target, mask)
    if mask is not None:
        # masked-out steps get no gradient; FD of them is zero too, so drop them from the check
        assert np.all(d_logits[~mask] == 0)
        kept = {"logits": logits[mask]}
        analytic = {"logits": d_logits[mask]}

        def loss() -> float:
            full = logits.copy()
            full[mask] = kept["logits"]
            return loss_forward(kind, full, target, mask)[0]
    else:
        kept, analytic = {"logits": logits}, {"logits": d_logits}

        def loss() -> float:
            return loss_forward(kind, logits, target, mask)[0]

    assert_gradients(loss, kept, analytic)


# --- facts computed by hand ------------------------------------------------------------


def test_one_step_rnn_by_hand():
    config = make_config(input_size=2, hidden_size=[2], cell=["rnn"])
    params = {
        "layers.0.cell.weight_ih": np.array([[1.0, 2.0], [3.0, 4.0]]),
        "layers.0.cell.weight_hh": np.array([[5.0, 6.0], [7.0, 8.0]]),
        "layers.0.cell.bias_ih": np.array([0.1, 0.2]),
        "layers.0.cell.bias_hh": np.array([0.3, -0.1]),
    }
    x = np.array([[[0.5, -0.25]]])
    h0 = np.array([[0.1, -0.1]])
    out, final, _ = forward(params, config, x, state=[h0])
    # W_ih x = (0, 0.5); W_hh h0 = (-0.1, -0.1); + biases (0.4, 0.1)
    expected = [math.tanh(0.0 - 0.1 + 0.4), math.tanh(0.5 - 0.1 + 0.1)]
    np.testing.assert_allclose(out[0, 0], expected, rtol=1e-14)
    np.testing.assert_allclose(final[0][0], expected, rtol=1e-14)


def test_lstm_lengths_zero_padding_and_final_state():
    rng = np.random.default_rng(3)
    config = make_config(hidden_size=[3], cell=["lstm"])
    params = make_params(config, rng)
    x = rng.normal(size=(B, T, 2))
    lengths = [3, 2, 0]
    state = [(rng.normal(size=(B, 3)), rng.normal(size=(B, 3)))]
    out, ((h, c),), _ = forward(params, config, x, lengths, state)
    assert np.all(out[1, 2:] == 0.0) and np.all(out[2] == 0.0)
    assert np.all(out[0] != 0.0) and np.all(out[1, :2] != 0.0)
    # row 1 alone, cut to its 2 real steps, ends in the same state
    sub_state = [(state[0][0][1:2], state[0][1][1:2])]
    _, ((h1, c1),), _ = forward(params, config, x[1:2, :2], None, sub_state)
    np.testing.assert_allclose(h[1:2], h1, rtol=1e-14)
    np.testing.assert_allclose(c[1:2], c1, rtol=1e-14)
    np.testing.assert_array_equal(h[:2], out[[0, 1], [2, 1]])
    # the zero-length row keeps its initial state
    np.testing.assert_array_equal(h[2], state[0][0][2])
    np.testing.assert_array_equal(c[2], state[0][1][2])


def test_bidirectional_final_state_is_last_real_step_of_each_direction():
    rng = np.random.default_rng(4)
    config = make_config(hidden_size=[2], cell=["gru"], bidirectional=True)
    x = rng.normal(size=(B, T, 2))
    out, (h,), _ = forward(make_params(config, rng), config, x, [3, 2, 1])
    assert h.shape == (2, B, 2)
    np.testing.assert_array_equal(h[0], out[[0, 1, 2], [2, 1, 0], :2])
    np.testing.assert_array_equal(h[1], out[:, 0, 2:])


def test_residual_with_zero_weights_passes_the_input_through():
    config = make_config(input_size=2, hidden_size=[2, 2], cell=["rnn", "gru"], residual=True)
    params = {k: np.zeros(s) for k, s in param_shapes(config).items()}
    x = np.random.default_rng(5).normal(size=(B, T, 2))
    out, _, _ = forward(params, config, x, [3, 2, 0])
    # tanh(0) = 0 and the GRU with zero weights keeps h = 0, so o = x on the real steps
    np.testing.assert_array_equal(out, x * length_mask([3, 2, 0], B, T)[..., None])


def test_params_are_checked_by_name_and_shape():
    config = make_config(hidden_size=[2], cell=["rnn"])
    params = make_params(config, np.random.default_rng(6))
    x = np.zeros((1, 2, 2))
    with pytest.raises(ValueError, match="missing"):
        forward({k: v for k, v in params.items() if "bias_hh" not in k}, config, x)
    with pytest.raises(ValueError, match="shape"):
        forward(params | {"layers.0.cell.weight_hh": np.zeros((2, 3))}, config, x)
    bidirectional = param_shapes(make_config(bidirectional=True, layer_norm=True, between="relu"))
    assert bidirectional["layers.1.cell_reverse.ln_c.bias"] == (2,)
    assert bidirectional["layers.1.cell.weight_ih"] == (8, 4)
    assert bidirectional["between.0.weight"] == (4, 4)
    assert len(bidirectional) == 2 * 2 * 10 + 2


def test_head_pooling_by_hand():
    o = np.arange(B * T * 2, dtype=float).reshape(B, T, 2)
    params = {"linear.weight": np.eye(2), "linear.bias": np.zeros(2)}
    lengths = [3, 2, 0]
    last, _ = head_forward(params, {"pooling": "last"}, o, lengths)
    np.testing.assert_array_equal(last, [o[0, 2], o[1, 1], [0, 0]])
    mean, _ = head_forward(params, {"pooling": "mean"}, o, lengths)
    np.testing.assert_array_equal(mean, [o[0].mean(0), o[1, :2].mean(0), [0, 0]])
    # with a zero score every valid step gets the same weight: attention = mean
    attention = params | {
        "attention.weight": np.ones((3, 2)),
        "attention.bias": np.ones(3),
        "score.weight": np.zeros((1, 3)),
    }
    pooled, _ = head_forward(attention, {"pooling": "attention"}, o, lengths)
    np.testing.assert_allclose(pooled, mean, rtol=1e-14)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_heads_ignore_padded_steps(pooling):
    rng = np.random.default_rng(7)
    params = make_head_params(rng, features=2)
    # scores: about -3000 < e_t <= 0 on the real steps, 3000 on the garbage past the end, which
    # would swamp a softmax over all steps (exp underflows to 0 on every real step)
    params |= {"attention.weight": np.ones((3, 2)), "attention.bias": np.zeros(3)}
    params["score.weight"] = np.full((1, 3), 1e3)
    o = -np.abs(rng.normal(size=(B, T, 2)))
    garbage = o.copy()
    garbage[1, 1:] = 1e3
    config = {"pooling": pooling, "activation": "softmax"}
    expected, _ = head_forward(params, config, o, [3, 1, 0])
    got, _ = head_forward(params, config, garbage, [3, 1, 0])
    np.testing.assert_allclose(got, expected, rtol=1e-13)


def test_relu_derivative_at_zero_is_zero():
    config = make_config(hidden_size=[2], cell=["rnn"], nonlinearity="relu", between=None)
    params = {k: np.zeros(s) for k, s in param_shapes(config).items()}
    x = np.ones((B, T, 2))
    out, final, cache = forward(params, config, x)  # every pre-activation is exactly 0
    grads, dx, (dh0,) = backward(cache, np.ones_like(out), [np.ones_like(final[0])])
    assert np.all(out == 0.0)
    assert all(np.all(g == 0.0) for g in grads.values())
    assert np.all(dx == 0.0) and np.all(dh0 == 0.0)


def test_losses_and_activations_by_hand():
    logits = np.zeros((2, 4))
    assert loss_forward("ce", logits, np.array([1, 3]))[0] == pytest.approx(math.log(4))
    assert loss_forward("bce", logits, np.ones((2, 4)))[0] == pytest.approx(math.log(2))
    assert loss_forward("mse", logits + 1.0, np.zeros((2, 4)))[0] == pytest.approx(1.0)
    mask = np.array([[True, False]])
    per_step = np.array([[[0.0, 0.0], [50.0, -50.0]]])
    # the second step (masked out) would add a huge loss
    assert loss_forward("ce", per_step, np.array([[0, 1]]), mask)[0] == pytest.approx(math.log(2))
    y = activate("softmax", np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(y.sum(), 1.0)
    np.testing.assert_allclose(activate("sigmoid", np.array([0.0])), [0.5])
    np.testing.assert_array_equal(activate(None, np.array([-2.0])), [-2.0])


def test_reference_never_imports_torch():
    folder = pathlib.Path(__file__).resolve().parents[1] / "deeprnn" / "reference"
    files = sorted(folder.glob("*.py"))
    assert len(files) >= 4
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] != "torch", f"{path.name} imports {name}"
                if name.startswith("deeprnn"):
                    assert name.startswith("deeprnn.reference"), f"{path.name} imports {name}"
