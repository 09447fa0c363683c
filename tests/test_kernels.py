"""Our fused recurrences (deeprnn.kernels) against the generic cell loop and the reference."""

import itertools
import os
import warnings

import pytest
import torch
from torch import nn

from deeprnn import DeepRNN, GRUCell, InputError, LSTMCell, RNNCell
from deeprnn.kernels import extension, sample_noise
from deeprnn.kernels.gru import GRURecurrence
from deeprnn.kernels.lstm import LSTMRecurrence
from deeprnn.kernels.rnn import RNNRecurrence

from .helpers import assert_matches_reference, assert_same_outputs_and_grads, random_batch


@pytest.fixture(autouse=True, params=["cpp", "torchscript"])
def step_loops(request, monkeypatch):
    """Every test here runs on the C++ step loops and on the TorchScript ones."""
    if request.param == "cpp" and extension.ops() is None:
        pytest.skip("no C++ toolchain here: the TorchScript run covers the fused path")
    if request.param == "torchscript":
        monkeypatch.setattr(extension, "takes", lambda x: False)
    return request.param


class Seeded(nn.Module):
    """Seeds torch before every call, so that dropout / zoneout masks repeat exactly; holds
    an initial state as parameters, so that the helpers compare its gradient too."""

    def __init__(self, net: DeepRNN, with_state: bool = False, batch: int = 4):
        super().__init__()
        self.net = net
        self.state = nn.ParameterList()
        if with_state:
            g = torch.Generator().manual_seed(5)
            for layer in net.layers:
                s = layer.initial_state(batch, next(net.parameters()))
                for t in s if isinstance(s, tuple) else (s,):
                    self.state.append(nn.Parameter(torch.randn(t.shape, generator=g).to(t)))

    def forward(self, x, lengths=None):
        state = None
        if len(self.state):
            it, state = iter(self.state), []
            for layer in self.net.layers:
                n = 2 if layer.cell.kind == "lstm" else 1
                state.append(tuple(next(it) for _ in range(n)) if n == 2 else next(it))
        torch.manual_seed(1234)
        return self.net(x, state, lengths)


def fused_and_loop(dtype=torch.float64, **kw):
    """The same DeepRNN twice: on our fused recurrence (torch's kernel off) and on the loop."""
    torch.manual_seed(0)
    net = DeepRNN(5, 4, num_layers=2, **kw).to(dtype)
    for layer in net.layers:
        layer.torch_kernel = False
    loop = DeepRNN(5, 4, num_layers=2, **kw).to(dtype).use_native(False)
    loop.load_state_dict(net.state_dict())
    assert {r["path"] for r in net.explain()} == {"fused"}
    assert {r["path"] for r in loop.explain()} == {"loop"}
    return net, loop


NOISE = [dict(), dict(recurrent_dropout=0.3), dict(zoneout=(0.2, 0.4)),
         dict(recurrent_dropout=0.2, zoneout=0.3)]  # fmt: skip
CASES = (
    [
        dict(cell=cell, layer_norm=ln, bidirectional=bi, **noise)
        for cell, ln, bi, noise in itertools.product(
            ["lstm", "gru", "rnn"], [False, True], [False, True], NOISE
        )
    ]
    + [dict(cell="rnn", nonlinearity=f) for f in ("sigmoid", "relu")]
    + [dict(bias=False)]
)


@pytest.mark.parametrize("kw", CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_fused_equals_loop_with_lengths_and_initial_state(kw, training):
    net, loop = fused_and_loop(**kw)
    net.train(training)
    loop.train(training)
    x, lengths = random_batch(4, 6, 5, with_lengths=True)  # a full row and a zero-length row
    assert_same_outputs_and_grads(
        Seeded(net, with_state=True), Seeded(loop, with_state=True), x, lengths, rtol=1e-10
    )


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("wiring, residual", [("skip", False), ("stack", True)])
def test_fused_equals_loop_without_lengths(cell, wiring, residual):
    kw = dict(cell=cell, layer_norm=True, zoneout=0.2, wiring=wiring, residual=residual)
    net, loop = fused_and_loop(**kw)
    x, _ = random_batch(3, 7, 5, with_lengths=False)
    assert_same_outputs_and_grads(Seeded(net), Seeded(loop), x, rtol=1e-10)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_fused_equals_loop_in_float32(cell):
    """float32: the fused path rounds differently (tanh as 2 sigmoid(2x) - 1, hoisted
    products, layer-norm sums in another order); layer norm over H = 4 amplifies it: the
    gradients reach 10-30 here, and differ by up to 5e-4 (1.5e-5 of that scale). Against a
    float64 run, the loop, TorchScript and C++ paths all err ~2-3e-4 (relative, eval mode)."""
    net, loop = fused_and_loop(torch.float32, cell=cell, layer_norm=True, zoneout=0.1)
    x, lengths = random_batch(4, 9, 5, with_lengths=True)
    assert_same_outputs_and_grads(
        Seeded(net), Seeded(loop), x.float(), lengths, rtol=1e-4, atol=1e-3
    )


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_layer_norm_in_eval_matches_the_numpy_reference(cell, bidirectional):
    torch.manual_seed(3)
    net = DeepRNN(5, 4, num_layers=2, cell=cell, layer_norm=True, bidirectional=bidirectional)
    assert {r["path"] for r in net.explain()} == {"fused"}
    x, lengths = random_batch(4, 6, 5, with_lengths=True)
    state = []
    for layer in net.layers:
        s = layer.initial_state(4, x)
        state.append(tuple(t.normal_() for t in s) if cell == "lstm" else s.normal_())
    assert_matches_reference(net, x, lengths, state=state, rtol=1e-9, atol=1e-11, fd=False)


def _tiny(*shape):
    return torch.randn(*shape, dtype=torch.float64, requires_grad=True)


def test_gradcheck_of_the_functions():
    torch.manual_seed(4)
    T, B, H = 3, 2, 3
    u = torch.rand(T, B, H, dtype=torch.float64).round()  # 0 / 1 zoneout and lengths weights
    drop = torch.rand(B, H, dtype=torch.float64).round() * 2

    def lstm(a, h0, c0, w, g, gc, bc):
        return LSTMRecurrence.apply(a, h0, c0, w, g, gc, bc, drop, u, 1 - u, 1e-5)

    def gru(a, h0, w, b, g):
        return GRURecurrence.apply(a, h0, w, b, g, drop, u, 1e-5)

    def rnn(a, h0, w):
        return RNNRecurrence.apply(a, h0, w, None, None, u, "sigmoid", 1e-5)

    lstm_in = (_tiny(T, B, 4 * H), _tiny(B, H), _tiny(B, H), _tiny(4 * H, H), _tiny(4 * H),
               _tiny(H), _tiny(H))  # fmt: skip
    assert torch.autograd.gradcheck(lstm, lstm_in)
    gru_in = (_tiny(T, B, 3 * H), _tiny(B, H), _tiny(3 * H, H), _tiny(3 * H), _tiny(3 * H))
    assert torch.autograd.gradcheck(gru, gru_in)
    assert torch.autograd.gradcheck(rnn, (_tiny(T, B, H), _tiny(B, H), _tiny(H, H)))


@pytest.mark.parametrize(
    "kw",
    [dict(cell="lstm", layer_norm=True, zoneout=(0.2, 0.3), recurrent_dropout=0.3),
     dict(cell="gru", zoneout=0.25), dict(cell="rnn", nonlinearity="sigmoid"),
     dict(cell=["lstm", "gru"], wiring="skip"), dict(cell="rnn", nonlinearity="relu")],
)  # fmt: skip
def test_step_equals_the_full_sequence(kw):
    torch.manual_seed(6)
    _assert_steps_equal_the_sequence(DeepRNN(4, [6, 5], **kw).eval(), torch.randn(2, 7, 4))


def _assert_steps_equal_the_sequence(net, x):
    full, final = net(x)
    state = None
    for t in range(x.shape[1]):
        y, state = net.step(x[:, t], state)
        torch.testing.assert_close(y, full[:, t])
    for a, b in zip(state, final):
        torch.testing.assert_close(a, b)


def test_explain_names_the_path_and_why():
    net = DeepRNN(3, 4, num_layers=2, cell="lstm", recurrent_dropout=0.2)
    assert [r["path"] for r in net.train().explain()] == ["fused", "fused"]
    assert "recurrent dropout" in net.explain()[0]["reason"]
    assert [r["path"] for r in net.eval().explain()] == ["native", "native"]
    assert "zoneout" in DeepRNN(3, 4, zoneout=0.1).eval().explain()[0]["reason"]
    assert "layer norm" in DeepRNN(3, 4, layer_norm=True).explain()[0]["reason"]
    assert "sigmoid" in DeepRNN(3, 4, cell="rnn", nonlinearity="sigmoid").explain()[0]["reason"]
    assert DeepRNN(3, 4, layer_norm=True).use_native(False).explain()[0]["path"] == "loop"


def test_recurrent_dropout_is_one_mask_per_sequence_and_off_in_eval():
    noise = sample_noise(0.25, (0.0, 0.0), True, True, 64, 5, torch.zeros(1), 32)
    assert noise.drop.shape == (64, 32) and noise.update_h is None
    torch.testing.assert_close(noise.drop.unique(), torch.tensor([0.0, 1 / 0.75]))
    assert abs((noise.drop == 0).double().mean().item() - 0.25) < 0.05
    torch.manual_seed(7)
    net = DeepRNN(3, 4, cell="gru", recurrent_dropout=0.5).eval()
    plain = DeepRNN(3, 4, cell="gru").eval()
    plain.load_state_dict(net.state_dict())
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(net(x)[0], plain(x)[0])
    net.train()
    torch.manual_seed(1)
    first = net(x)[0]
    torch.manual_seed(2)
    assert not torch.allclose(first, net(x)[0])


@pytest.mark.parametrize("cls", [LSTMCell, GRUCell, RNNCell])
def test_zoneout_in_eval_is_the_expectation(cls):
    torch.manual_seed(8)
    zoned = cls(3, 4, zoneout=(0.3, 0.6)).eval()
    plain = cls(3, 4)
    plain.load_state_dict(zoned.state_dict())
    x = torch.randn(2, 3)
    state = (torch.randn(2, 4), torch.randn(2, 4)) if cls is LSTMCell else torch.randn(2, 4)
    _, got = zoned(x, state)
    _, new = plain(x, state)
    if cls is LSTMCell:
        torch.testing.assert_close(got[0], 0.3 * state[0] + 0.7 * new[0])
        torch.testing.assert_close(got[1], 0.6 * state[1] + 0.4 * new[1])
    else:
        torch.testing.assert_close(got, 0.3 * state + 0.7 * new)


def test_zoneout_in_training_keeps_units_at_rate_p():
    noise = sample_noise(0.0, (0.3, 0.6), True, True, 64, 50, torch.zeros(1), 32)
    assert noise.drop is None and noise.update_h.shape == (50, 64, 32)
    assert abs(1 - noise.update_h.mean().item() - 0.3) < 0.02
    assert abs(1 - noise.update_c.mean().item() - 0.6) < 0.02


def test_options_are_validated_and_stored():
    assert DeepRNN(3, 4, zoneout=[0.1, 0.2]).config.zoneout == (0.1, 0.2)
    assert DeepRNN(3, 4, recurrent_dropout=0.5).config.recurrent_dropout == 0.5
    for bad in (dict(zoneout=1.0), dict(zoneout=(0.1,)), dict(recurrent_dropout=-0.1),
                dict(zoneout="x")):  # fmt: skip
        with pytest.raises(InputError):
            DeepRNN(3, 4, **bad)


@pytest.mark.skipif(bool(os.environ.get("DEEPRNN_NO_SCRIPT")), reason="TorchScript disabled")
def test_the_step_loops_compile_with_torchscript():
    from deeprnn.kernels import gru, lstm, rnn
    from deeprnn.kernels.script import is_scripted

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback to Python warns
        for module in (lstm, gru, rnn):
            assert is_scripted(module._forward) and is_scripted(module._backward)


@pytest.mark.parametrize("kw", [dict(cell="lstm"), dict(cell="gru"), dict(cell="rnn"),
                                dict(cell="lstm", layer_norm=True, zoneout=0.2)])  # fmt: skip
@pytest.mark.parametrize("with_lengths", [False, True])
def test_single_steps_equal_the_loop(kw, with_lengths):
    """T = 1 runs torch's one-step kernels (plain cells) or the cell loop (the rest)."""
    torch.manual_seed(9)
    net = DeepRNN(5, 4, num_layers=2, **kw).double()
    loop = DeepRNN(5, 4, num_layers=2, **kw).double().use_native(False)
    loop.load_state_dict(net.state_dict())
    x, lengths = random_batch(4, 1, 5, with_lengths)
    assert_same_outputs_and_grads(Seeded(net), Seeded(loop), x, lengths, rtol=1e-10)


@pytest.mark.parametrize("native", [True, False])
def test_step_follows_every_wiring(native):
    torch.manual_seed(7)
    net = DeepRNN(5, 5, num_layers=3, residual=True, between="tanh", outputs="all",
                  wiring="skip", cell=["lstm", "gru", "rnn"]).eval().use_native(native)  # fmt: skip
    _assert_steps_equal_the_sequence(net, torch.randn(3, 6, 5))
