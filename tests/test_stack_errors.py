"""Bad input to the core modules gets a clear error naming the argument and the expectation."""

import pytest
import torch

from deeprnn import DeepRNN, Head, InputError, InputTypeError, Parallel, RNNCell


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            dict(cell="transformer"),
            r"cell must be one of \['rnn', 'lstm', 'gru'\], got 'transformer'",
        ),
        (dict(cell="rnn", nonlinearity="gelu"), r"nonlinearity must be one of .*'gelu'"),
        (dict(wiring="dense"), r"wiring must be one of \['stack', 'skip'\]"),
        (dict(outputs="bottom"), r"outputs must be one of"),
        (dict(between="swish"), r"between must be one of"),
        (dict(dropout=1.5), r"dropout must be a float in \[0, 1\), got 1.5"),
        (dict(num_layers=0), r"num_layers must be a positive int"),
        (dict(hidden_size=[8, 4], num_layers=3), r"hidden_size has 2 entries but num_layers is 3"),
        (dict(hidden_size=[8, 4], residual=True), r"residual=True .* widths differ \(8 vs 4\)"),
        (dict(hidden_size=-3), r"hidden_size must hold positive ints, got -3"),
        (dict(hidden_size=[]), r"hidden_size must not be an empty list"),
    ],
)
def test_bad_construction(kwargs, match):
    args = dict(input_size=3, hidden_size=8)
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        DeepRNN(**args)


def test_input_size_must_be_positive_int():
    with pytest.raises(InputError, match="input_size must be a positive int, got 2.5"):
        DeepRNN(2.5, 4)


@pytest.fixture
def net():
    return DeepRNN(3, 4, num_layers=2)


def test_wrong_rank(net):
    with pytest.raises(InputError, match=r"x must have shape \(batch, time, features\), got 2"):
        net(torch.randn(5, 3))


def test_wrong_feature_size(net):
    with pytest.raises(InputError, match="x has 7 features .* model expects 3"):
        net(torch.randn(2, 5, 7))


def test_not_a_tensor(net):
    with pytest.raises(InputTypeError, match="x must be a torch.Tensor .*got list"):
        net([[[1.0, 2.0, 3.0]]])


def test_integer_dtype(net):
    with pytest.raises(InputTypeError, match="floating-point tensor, got dtype torch.int64"):
        net(torch.ones(2, 5, 3, dtype=torch.long))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_inf_reported_with_position(net, bad):
    x = torch.zeros(2, 5, 3)
    x[1, 4, 2] = bad
    with pytest.raises(InputError, match=r"NaN or inf, first at .* = \(1, 4, 2\)"):
        net(x)


@pytest.mark.parametrize(
    "lengths, error, match",
    [
        ([5, 6], InputError, r"lengths must lie in \[0, 5\].*max 6"),
        ([-1, 2], InputError, r"lengths must lie in \[0, 5\].*min -1"),
        ([5], InputError, r"lengths must have shape \(2,\)"),
        (torch.tensor([2.0, 3.0]), InputTypeError, "lengths must hold integers"),
        ("abc", InputTypeError, "lengths must be a sequence of ints"),
    ],
)
def test_bad_lengths(net, lengths, error, match):
    with pytest.raises(error, match=match):
        net(torch.zeros(2, 5, 3), lengths=lengths)


def test_bad_state(net):
    with pytest.raises(
        InputTypeError, match=r"state must be a list with one entry per layer \(2\)"
    ):
        net(torch.zeros(2, 5, 3), state=[None])
    good = [(torch.zeros(2, 4), torch.zeros(2, 4))] * 2
    net(torch.zeros(2, 5, 3), state=good)
    with pytest.raises(InputError, match=r"state\[1\] must be \(h, c\) with shape\(s\) \[\(2, 4\)"):
        net(torch.zeros(2, 5, 3), state=[good[0], torch.zeros(2, 4)])


def test_bad_cell_and_head_arguments():
    with pytest.raises(InputError, match="nonlinearity must be one of"):
        RNNCell(3, 4, nonlinearity="elu")
    with pytest.raises(InputError, match="hidden_size must be a positive int, got 0"):
        RNNCell(3, 0)
    with pytest.raises(InputError, match="pooling must be one of"):
        Head(4, 2, pooling="first")
    with pytest.raises(InputError, match="activation must be one of"):
        Head(4, 2, activation="relu")
    with pytest.raises(InputError, match=r"head input must be \(batch, time, 4\)"):
        Head(4, 2)(torch.zeros(2, 3, 5))


def test_bad_parallel():
    with pytest.raises(InputError, match="at least one branch"):
        Parallel()
    with pytest.raises(InputTypeError, match="branch 1 must be an nn.Module"):
        Parallel(DeepRNN(2, 3), "lstm")
    with pytest.raises(
        InputError, match=r"merge='sum' needs branches of equal width, got \[3, 4\]"
    ):
        Parallel(DeepRNN(2, 3), DeepRNN(2, 4), merge="sum")
    par = Parallel(DeepRNN(2, 3), DeepRNN(2, 3))
    with pytest.raises(InputError, match=r"x must give one entry per branch \(2\), got 3"):
        par([torch.zeros(1, 2, 2)] * 3)
    with pytest.raises(InputError, match="different lengths .* outputs='last'"):
        par([torch.zeros(1, 2, 2), torch.zeros(1, 5, 2)])


def test_step_checks_its_input_and_any_state_it_did_not_return():
    torch.manual_seed(0)
    net = DeepRNN(3, 4, num_layers=2).eval()
    _, state = net.step(torch.randn(2, 3))
    with pytest.raises(InputError, match="NaN or inf"):
        net.step(torch.tensor([[0.0, float("nan"), 0.0]] * 2), state)
    with pytest.raises(InputError, match="features"):
        net.step(torch.randn(2, 5), state)
    bad = [(h.clone(), c.clone()) for h, c in state]
    bad[1][0][0, 0] = float("inf")
    with pytest.raises(InputError, match=r"state\[1\] contains NaN or inf"):
        net.step(torch.randn(2, 3), bad)  # a plain list: checked in full
    with pytest.raises(InputError, match=r"state\[0\] must be \(h, c\) with shape"):
        net.step(torch.randn(3, 3), state)  # our state, but for 2 rows: checked again
    other = DeepRNN(3, 4, num_layers=2, cell="gru").eval()
    with pytest.raises(InputError, match=r"state\[0\] must be h with shape"):
        other.step(torch.randn(2, 3), state)  # another network's state: checked again
