"""Gradient flow through time and hidden-state statistics, checked on known answers."""

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from deeprnn import DeepRNN, Head, InputTypeError, Parallel, SequenceModel, plots
from deeprnn.diagnostics import gradient_flow


def _relu_chain(a: float, units: int = 3) -> DeepRNN:
    """h_t = relu(W_ih x_t + a h_{t-1}), W_ih = 1: identity on a positive path."""
    net = DeepRNN(1, units, cell="rnn", nonlinearity="relu", bias=False).double()
    with torch.no_grad():
        net.layers[0].cell.weight_ih.fill_(1.0)
        net.layers[0].cell.weight_hh.copy_(a * torch.eye(units, dtype=torch.float64))
    return net


def _impulse(batch: int, time: int) -> torch.Tensor:
    """x = 1 at step 0, 0 after it: every h_t = a^t stays positive."""
    x = torch.zeros(batch, time, 1, dtype=torch.float64)
    x[:, 0] = 1.0
    return x


@pytest.mark.parametrize("a, verdict", [(0.5, "vanishing"), (2.0, "exploding"), (0.9, "healthy")])
def test_linear_path_decays_as_a_power(a, verdict):
    # L = sum h_{T-1}: dL/dh_{T-1} = 1 (3 units), dL/dh_t = (a I)^(T-1-t) 1.
    time = 12
    flow = gradient_flow(_relu_chain(a), _impulse(1, time))
    expected = np.sqrt(3) * a ** (time - 1 - np.arange(time))
    np.testing.assert_allclose(flow.norms[0], expected, rtol=1e-6)
    assert flow.loss == pytest.approx(3 * a ** (time - 1), rel=1e-12)
    word, ratio = flow.verdict()["layer 0 fwd"]
    assert (word, ratio) == (verdict, pytest.approx(a ** (time - 1), rel=1e-6))
    assert flow.row_labels == ["layer 0 fwd"] and flow.norms.shape == (1, time)


def test_lengths_put_each_rows_loss_at_its_last_real_step():
    a, time, lengths = 0.5, 8, torch.tensor([8, 5, 0])
    flow = gradient_flow(_relu_chain(a), _impulse(3, time), lengths=lengths)
    t = np.arange(time)
    for b, n in enumerate(lengths.tolist()):
        want = np.where(t < n, np.sqrt(3) * a ** (n - 1 - t.clip(max=n - 1)), 0.0)
        np.testing.assert_allclose(flow.sample_norms[b, 0], want, rtol=1e-6, atol=0)
    np.testing.assert_allclose(flow.norms, np.sqrt((flow.sample_norms**2).sum(0)), rtol=1e-12)
    assert flow.span() == (0, 7)


def test_tanh_rnn_vanishes_where_a_high_forget_bias_lstm_does_not():
    torch.manual_seed(0)
    x = torch.randn(2, 60, 3, dtype=torch.float64)
    tanh = DeepRNN(3, 16, cell="rnn").double()
    lstm = DeepRNN(3, 16, cell="lstm").double()
    with torch.no_grad():
        for p in [*tanh.parameters(), *lstm.parameters()]:
            p.mul_(0.5)
        lstm.layers[0].cell.bias_ih[16:32] = 5.0  # forget gate f = sigmoid(~5) ~ 0.99
    r_tanh = gradient_flow(tanh, x).verdict()["layer 0 fwd"]
    flow = gradient_flow(lstm, x)
    r_lstm = flow.verdict()["layer 0 fwd"]
    assert r_tanh[0] == "vanishing" and r_tanh[1] < 1e-20
    assert r_lstm[0] == "healthy" and r_lstm[1] > 1e-2
    # along the way the LSTM's gradient stays within a factor 3 (no decay through time)
    inner = flow.norms[0, :-1]
    assert inner.max() / inner.min() < 3


CONFIGS = {
    "stack": dict(num_layers=2, cell="gru"),
    "skip": dict(num_layers=2, cell=["lstm", "rnn"], wiring="skip"),
    "residual": dict(num_layers=3, cell="lstm", residual=True),
    "between": dict(num_layers=2, cell="rnn", between="tanh", outputs="all"),
    "bidirectional": dict(num_layers=2, cell="lstm", bidirectional=True, residual=True),
    "layer_norm+dropout": dict(num_layers=2, cell="gru", layer_norm=True, dropout=0.5),
}


@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("name", CONFIGS)
def test_measured_run_is_the_models_own_forward(name, with_lengths):
    torch.manual_seed(1)
    net = DeepRNN(4, 4, **CONFIGS[name]).double().train()
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    lengths = torch.tensor([5, 2, 0]) if with_lengths else None
    flow = gradient_flow(net, x, lengths=lengths)
    assert net.training and all(layer.native for layer in net.layers)  # restored
    net.eval()
    torch.testing.assert_close(flow.outputs, net(x, lengths=lengths)[0], rtol=1e-12, atol=1e-14)
    net.use_native(False)
    assert torch.equal(flow.outputs, net(x, lengths=lengths)[0])
    d = 2 if net.config.bidirectional else 1
    assert flow.norms.shape == (d * net.config.num_layers, 5)
    if with_lengths:
        assert (flow.sample_norms[1, :, 2:] == 0).all() and (flow.sample_norms[2] == 0).all()


def _perturbed_loss(model, x, lengths, loss, cell, step, delta):
    """L with h := h + delta at the cell's `step`-th call: the definition of dL/dh_t."""
    calls = []

    def hook(module, args, out):
        calls.append(None)
        if len(calls) - 1 != step:
            return None
        h, state = out
        h = h + delta
        return h, ((h, state[1]) if isinstance(state, tuple) else h)

    handle = cell.register_forward_hook(hook)
    try:
        with torch.no_grad():
            return float(loss(model(x, lengths=lengths)[0]))
    finally:
        handle.remove()


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_norms_are_the_total_derivative_by_finite_differences(kind):
    # Through the recurrence, the layer above, the residual path and a head with a loss.
    torch.manual_seed(2)
    body = DeepRNN(2, 3, num_layers=2, cell=kind, bidirectional=True, residual=True).double()
    model = SequenceModel(body, Head(6, 2, pooling="mean")).double().eval()
    body.use_native(False)
    x, lengths, target = torch.randn(2, 4, 2, dtype=torch.float64), torch.tensor([4, 3]), 1

    def loss(logits):
        return torch.nn.functional.cross_entropy(logits, torch.tensor([target, 0]))

    flow = gradient_flow(model, x, loss=loss, lengths=lengths)
    eps = 1e-6
    for row, (layer, direction) in enumerate(zip(flow.layers, flow.directions)):
        layer_cells = body.layers[layer].cells
        cell = layer_cells[0] if direction == "fwd" else layer_cells[1]
        for b, step in ((0, 0), (1, 1)):
            grad = []
            for j in range(3):
                delta = torch.zeros(2, 3, dtype=torch.float64)
                delta[b, j] = eps
                up = _perturbed_loss(model, x, lengths, loss, cell, step, delta)
                down = _perturbed_loss(model, x, lengths, loss, cell, step, -delta)
                grad.append((up - down) / (2 * eps))
            t = step if direction == "fwd" else int(lengths[b]) - 1 - step
            assert flow.sample_norms[b, row, t] == pytest.approx(np.linalg.norm(grad), rel=1e-6)


def test_sequence_model_default_loss_reads_the_body():
    torch.manual_seed(3)
    body = DeepRNN(2, 3, num_layers=2, cell="gru", outputs="all").double()
    model = SequenceModel(body, Head(6, 2)).double()
    x = torch.randn(2, 5, 2, dtype=torch.float64)
    flow, alone = gradient_flow(model, x), gradient_flow(body, x)
    np.testing.assert_allclose(flow.norms, alone.norms, rtol=1e-12)
    # L = sum of the top layer's last-step output: the last 3 features of "all" outputs
    assert flow.loss == pytest.approx(float(body(x)[0][:, -1, -3:].sum().detach()), rel=1e-12)
    assert flow.outputs.shape == (2, 2)  # the model's logits


def test_saturation_of_tanh_units_with_known_weights():
    net = DeepRNN(1, 2, cell="rnn").double()
    with torch.no_grad():
        cell = net.layers[0].cell
        cell.weight_ih.copy_(torch.tensor([[10.0], [0.1]], dtype=torch.float64))
        cell.weight_hh.zero_(), cell.bias_ih.zero_(), cell.bias_hh.zero_()
    x = torch.tensor([[1.0, 0.1, -1.0, 0.0], [5.0, 5.0, 5.0, 5.0]], dtype=torch.float64)
    flow = gradient_flow(net, x.unsqueeze(-1), lengths=torch.tensor([4, 1]))
    # real steps only: 4 of row 0 and 1 of row 1, h = tanh(10 x), tanh(0.1 x)
    u = np.array([1.0, 0.1, -1.0, 0.0, 5.0])
    h = np.concatenate([np.tanh(10 * u), np.tanh(0.1 * u)])
    stats = flow.stats[0]
    assert stats["saturated"] == pytest.approx(3 / 10)  # tanh(10), tanh(-10), tanh(50)
    assert stats["mean"] == pytest.approx(h.mean(), rel=1e-12)
    assert stats["std"] == pytest.approx(h.std(), rel=1e-12)
    assert stats["gates"] == {}
    low = gradient_flow(net, x.unsqueeze(-1), lengths=torch.tensor([4, 1]), threshold=0.5)
    assert low.stats[0]["saturated"] == pytest.approx(np.mean(np.abs(h) > 0.5))


def test_saturation_of_gates_with_known_biases():
    lstm = DeepRNN(1, 2, cell="lstm").double()
    gru = DeepRNN(1, 2, cell="gru").double()
    with torch.no_grad():
        for net in (lstm, gru):
            for p in net.parameters():
                p.zero_()
        # LSTM i, f, g, o per unit: (sat, -), (-, sat), (tanh 3: sat, -), (sat, sat)
        lstm.layers[0].cell.bias_ih.copy_(torch.tensor([10, 0, 0, -10, 3, 0, 10, 10.0]))
        # GRU r, z, n: (sat, sat), (-, -), n = tanh(b_ih[n] + r b_hh[n]): (-, tanh 5: sat)
        gru.layers[0].cell.bias_ih.copy_(torch.tensor([10, -10, 0, 0, 0, 5.0]))
    x = torch.randn(2, 6, 1, dtype=torch.float64)
    assert gradient_flow(lstm, x).stats[0]["gates"] == {"i": 0.5, "f": 0.5, "g": 0.5, "o": 1.0}
    assert gradient_flow(gru, x).stats[0]["gates"] == {"r": 1.0, "z": 0.0, "n": 0.5}
    # LSTM unit 0: c_t = 0.5 c_{t-1} + s(10) tanh(3), h = s(10) tanh(c); unit 1: h = 0
    s = 1 / (1 + np.exp(-10.0))
    c, h = 0.0, []
    for _ in range(6):
        c = 0.5 * c + s * np.tanh(3.0)
        h += [s * np.tanh(c), 0.0]
    stats = gradient_flow(lstm, x).stats[0]
    assert stats["mean"] == pytest.approx(np.mean(h), rel=1e-12)
    assert stats["std"] == pytest.approx(np.std(h), rel=1e-12)
    assert stats["saturated"] == pytest.approx(np.mean(np.abs(h) > 0.97))


def test_verdict_summary_and_text():
    torch.manual_seed(4)
    net = DeepRNN(2, 3, cell="lstm", bidirectional=True).double()
    flow = gradient_flow(net, torch.randn(1, 6, 2, dtype=torch.float64))
    # the default loss reads the last step only; the top reverse half's h_{T-1} saw x_{T-1}
    # alone, so no earlier h of it reaches L
    assert flow.verdict()["layer 0 rev"] == ("vanishing", 0.0)
    assert flow.norms[1, -1] > 0 and (flow.norms[1, :-1] == 0).all()
    # a loss that does not read the last step leaves nothing to compare with
    first_only = gradient_flow(
        net, torch.randn(1, 6, 2, dtype=torch.float64), loss=lambda o: o[:, 0].sum()
    )
    assert first_only.verdict()["layer 0 fwd"][0] == "no gradient"
    summary = flow.summary()
    assert [r["row"] for r in summary["rows"]] == ["layer 0 fwd", "layer 0 rev"]
    assert summary["rows"][0]["ratio"] == pytest.approx(flow.norms[0, 0] / flow.norms[0, -1])
    assert set(summary["rows"][0]) >= {"verdict", "mean", "std", "saturated", "gates"}
    assert "layer 0 rev" in str(flow) and "no gradient" in str(first_only)


def test_bad_arguments():
    net = DeepRNN(2, 3, cell="gru")
    x = torch.randn(1, 4, 2)
    with pytest.raises(InputTypeError, match="DeepRNN"):
        gradient_flow(Parallel(net, DeepRNN(2, 3)), x)
    with pytest.raises(InputTypeError, match="scalar"):
        gradient_flow(net, x, loss=lambda out: out)
    with pytest.raises(InputTypeError, match="callable"):
        gradient_flow(net, x, loss=1.0)


def test_plot_writes_a_picture(tmp_path):
    torch.manual_seed(5)
    net = DeepRNN(2, 3, num_layers=2, cell="gru", bidirectional=True)
    flow = gradient_flow(net, torch.randn(2, 10, 2), lengths=torch.tensor([10, 7]))
    path = plots.gradient_flow(flow, tmp_path / "flow.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = imread(path)
    assert img.shape[0] > 100 and img.shape[1] > 100 and img[..., :3].std() > 0.01
