"""The fused native path, our own cell loop and torch's own modules agree."""

import itertools

import pytest
import torch
from torch import nn

from deeprnn import DeepRNN, GRUCell, LSTMCell, RNNCell

from .helpers import assert_same_outputs_and_grads, random_batch

CONFIGS = [
    dict(cell=cell, wiring=wiring, residual=residual, bidirectional=bi)
    for cell, wiring, residual, bi in itertools.product(
        ["lstm", "gru", "rnn"], ["stack", "skip"], [False, True], [False, True]
    )
]


@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: "-".join(str(v) for v in kw.values()))
@pytest.mark.parametrize("with_lengths", [False, True])
def test_native_equals_loop(kw, with_lengths):
    torch.manual_seed(0)
    width = 4 if kw["bidirectional"] else 8  # residual from x needs I == layer width
    net = DeepRNN(8, width, num_layers=3, **kw).double()
    assert all(row["path"] == "native" for row in net.explain())
    x, lengths = random_batch(4, 6, 8, with_lengths)
    loop = DeepRNN(8, width, num_layers=3, **kw).double().use_native(False)
    loop.load_state_dict(net.state_dict())
    assert all(row["path"] == "loop" for row in loop.explain())
    assert_same_outputs_and_grads(net, loop, x, lengths, rtol=1e-10)


@pytest.mark.parametrize(
    "torch_cls, cell, extra",
    [(nn.LSTM, "lstm", {}), (nn.GRU, "gru", {}), (nn.RNN, "rnn", {"nonlinearity": "relu"})],
)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("native", [True, False])
def test_weights_copied_from_torch_give_same_results(torch_cls, cell, extra, bidirectional, native):
    torch.manual_seed(1)
    ref = torch_cls(5, 7, num_layers=2, batch_first=True, bidirectional=bidirectional, **extra)
    net = DeepRNN(5, 7, num_layers=2, cell=cell, bidirectional=bidirectional, **extra)
    net.use_native(native)
    for k, layer in enumerate(net.layers):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(layer.cell, name).data.copy_(getattr(ref, f"{name}_l{k}"))
            if bidirectional:
                getattr(layer.cell_reverse, name).data.copy_(getattr(ref, f"{name}_l{k}_reverse"))
    ref, net = ref.double(), net.double()
    x = torch.randn(3, 6, 5, dtype=torch.float64, requires_grad=True)
    out_ref, h_ref = ref(x)
    out, state = net(x)
    torch.testing.assert_close(out, out_ref, rtol=1e-10, atol=1e-12)
    h_top = state[-1][0] if cell == "lstm" else state[-1]
    h_ref_top = (h_ref[0] if cell == "lstm" else h_ref)[-2 if bidirectional else -1 :]
    torch.testing.assert_close(h_top.reshape(-1), h_ref_top.reshape(-1))
    g = torch.randn_like(out)
    grads = torch.autograd.grad((out_ref * g).sum(), [x, *ref.parameters()])
    mine = torch.autograd.grad(
        (net(x)[0] * g).sum(),
        [x] + [getattr(c, n) for layer in net.layers for c in layer.cells
               for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")],
    )  # fmt: skip
    for a, b in zip(grads, mine):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda: RNNCell(3, 5, "tanh"), lambda: nn.RNNCell(3, 5, nonlinearity="tanh")),
        (lambda: RNNCell(3, 5, "relu"), lambda: nn.RNNCell(3, 5, nonlinearity="relu")),
        (lambda: LSTMCell(3, 5), lambda: nn.LSTMCell(3, 5)),
        (lambda: GRUCell(3, 5), lambda: nn.GRUCell(3, 5)),
    ],
)
def test_cells_match_torch_cells(ours, theirs):
    torch.manual_seed(2)
    a, b = ours(), theirs()
    assert {n: p.shape for n, p in a.named_parameters()} == {
        n: p.shape for n, p in b.named_parameters()
    }
    a.load_state_dict(b.state_dict())
    x = torch.randn(4, 3)
    h, state = a(x)
    expected = b(x)
    if isinstance(expected, tuple):
        torch.testing.assert_close(state[1], expected[1])
        expected = expected[0]
    torch.testing.assert_close(h, expected)


def test_state_carried_across_calls_equals_one_call():
    torch.manual_seed(4)
    net = DeepRNN(3, 4, num_layers=2, cell="lstm", bidirectional=False)
    x = torch.randn(2, 8, 3)
    full, _ = net(x)
    first, state = net(x[:, :5])
    second, _ = net(x[:, 5:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), full)


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(5)
    net = DeepRNN(3, 16, num_layers=2, dropout=0.5)
    plain = DeepRNN(3, 16, num_layers=2)
    plain.load_state_dict(net.state_dict())
    x = torch.randn(4, 6, 3)
    net.eval()
    torch.testing.assert_close(net(x)[0], plain(x)[0])
    net.train()
    first_layer = net.layers[0](x)[0]
    torch.testing.assert_close(first_layer, plain.layers[0](x)[0])  # no dropout on x itself
    assert not torch.allclose(net(x)[0], plain(x)[0])
    assert not torch.allclose(net(x)[0], net(x)[0])  # a fresh mask each call


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_plain_native_stack_runs_as_one_kernel_call(monkeypatch, cell, bidirectional):
    """A plain stack of native layers is one call of torch's multi-layer kernel (as
    nn.LSTM(num_layers=3) runs), with the results of the layer-by-layer calls: outputs,
    final states and every gradient, from a given initial state."""
    import deeprnn.layer
    import deeprnn.stack

    calls = []
    whole = deeprnn.layer.native_stack_forward

    def counted(*args):
        result = whole(*args)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(deeprnn.stack, "native_stack_forward", counted)
    torch.manual_seed(0)
    net = DeepRNN(5, 4, num_layers=3, cell=cell, bidirectional=bidirectional).double()
    x, _ = random_batch(3, 6, 5, with_lengths=False)
    state = [net.layers[i].initial_state(3, x.double()) for i in range(3)]
    g = torch.Generator().manual_seed(2)
    state = [tuple(torch.randn(s.shape, generator=g).double() for s in st)
             if isinstance(st, tuple) else torch.randn(st.shape, generator=g).double()
             for st in state]  # fmt: skip

    class WithState(nn.Module):
        def __init__(self, net, layer_by_layer):
            super().__init__()
            self.net, self.layer_by_layer = net, layer_by_layer

        def forward(self, x, lengths=None):
            if self.layer_by_layer:  # the same network, one kernel call per layer
                with monkeypatch.context() as m:
                    m.setattr(deeprnn.stack, "native_stack_forward", lambda *a: None)
                    return self.net(x, state)
            return self.net(x, state)

    assert_same_outputs_and_grads(WithState(net, False), WithState(net, True), x.double(),
                                  rtol=1e-12, atol=1e-12)  # fmt: skip
    assert calls and all(calls)  # the one-call path ran (and returned) every time


def test_stacks_one_call_cannot_compute_run_layer_by_layer():
    """Different widths, lengths, dropout in training, outputs='all' or layer norm: each
    layer on its own path (the results are checked against the loop above)."""
    from deeprnn.layer import native_stack_forward

    x = torch.randn(2, 5, 3)
    mixed = DeepRNN(3, [4, 6], cell="lstm")
    states = [layer.initial_state(2, x) for layer in mixed.layers]
    assert native_stack_forward(list(mixed.layers), x, states) is None
    cells = DeepRNN(3, 4, num_layers=2, cell=["lstm", "gru"])
    states = [layer.initial_state(2, x) for layer in cells.layers]
    assert native_stack_forward(list(cells.layers), x, states) is None
    net = DeepRNN(3, 4, num_layers=2, dropout=0.5)
    assert net.train()._one_kernel_call(None, 5) is False
    assert net.eval()._one_kernel_call(None, 5) is True
    assert net._one_kernel_call(torch.tensor([5, 3]), 5) is False
    assert DeepRNN(3, 4, num_layers=2, outputs="all")._one_kernel_call(None, 5) is False
    assert DeepRNN(3, 4, num_layers=2, wiring="skip")._one_kernel_call(None, 5) is False
