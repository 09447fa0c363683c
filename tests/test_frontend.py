"""ConvFrontend: the oracle (outputs and every gradient, both modes), the length rule,
padding independence, the zero-length error, and the checks of its arguments."""

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given, settings

from deeprnn import ConvFrontend, DeepRNN, Head, InputError, SequenceModel, reference
from deeprnn.config_io import ConfigError
from deeprnn.frontend import frontend_kwargs
from tests.helpers import assert_matches_reference, frontend_config, random_batch

CASES = [  # (frontend arguments, pooling, cell)
    (dict(channels=(4, 5), kernel_size=[3, 2], stride=[1, 2], pool=[2, 1], dilation=[2, 1],
          norm="batch", activation="relu"), "mean", "gru"),
    (dict(channels=(4,), kernel_size=4, stride=2, norm="layer", activation="gelu",
          padding="valid"), "attention", "lstm"),
    (dict(channels=(3, 4), kernel_size=3, pool=[2, 1], dilation=[1, 2], norm=None,
          activation="tanh", padding="valid"), "last", "rnn"),
    (dict(channels=(4,), kernel_size=5, norm="batch", activation="linear"), "every", "gru"),
]  # fmt: skip


def _model(spec, pooling, cell, features=3, seed=0):
    torch.manual_seed(seed)
    fe = ConvFrontend(features, **spec)
    for block in fe.blocks:  # away from the default 1 / 0, so that a swapped term shows
        if block.norm is not None:
            block.norm.weight.data.uniform_(0.5, 1.5)
            block.norm.bias.data.normal_()
        if hasattr(block.norm, "running_mean"):
            block.norm.running_mean.normal_()
            block.norm.running_var.uniform_(0.5, 2.0)
    body = DeepRNN(fe.out_features, 4, cell=cell)
    return SequenceModel(body, Head(4, 3, pooling=pooling), frontend=fe)


def _workable(lengths, fe):
    """Ragged lengths: the full row, the shortest that works, a row of 0 and one between."""
    lengths = lengths.clamp(min=fe.min_length)
    lengths[1], lengths[-1] = fe.min_length, 0
    return lengths


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("spec, pooling, cell", CASES)
def test_matches_reference_every_gradient_with_lengths(spec, pooling, cell, training):
    model = _model(spec, pooling, cell)
    x, lengths = random_batch(4, 15, 3, with_lengths=True)
    lengths = _workable(lengths, model.frontend)
    if pooling == "every":
        target = torch.randint(0, 3, (4, 15))
    else:
        target = torch.tensor([0, 1, 2, 1])
    assert_matches_reference(model, x, lengths, target=target, training=training)


def test_batch_norm_statistics_skip_padded_steps_and_update_like_torch():
    fe = _model(CASES[0][0], "mean", "gru").frontend.double()
    x, lengths = random_batch(4, 15, 3, with_lengths=True)
    lengths = _workable(lengths, fe)
    x[1, lengths[1] :] = 100.0  # garbage in the padding must not reach the statistics
    cfg = frontend_config(fe, training=True)
    params = {k: v.detach().numpy() for k, v in fe.named_parameters()}
    ref_y, ref_n, cache = reference.frontend_forward(params, cfg, x.numpy(), lengths.numpy(), True)
    y, n = fe.train()(x, lengths)
    np.testing.assert_allclose(y.detach().numpy(), ref_y, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(n.numpy(), ref_n)
    for name, value in cache["running"].items():
        np.testing.assert_allclose(fe.state_dict()[name].numpy(), value, rtol=1e-10, err_msg=name)
    # Statistics over valid steps: a batch-normalised conv output has mean 0 over them.
    block = fe.blocks[0]
    u = x * (torch.arange(15)[None] < lengths[:, None]).unsqueeze(-1)
    a = block.conv(torch.nn.functional.pad(u, (0, 0, 2, 2)).transpose(1, 2)).transpose(1, 2)
    valid = torch.arange(a.shape[1])[None] < lengths[:, None]
    z = block.norm(a, valid.unsqueeze(-1).double())
    torch.testing.assert_close(z[valid].mean(0), block.norm.bias, atol=1e-10, rtol=0)


@pytest.mark.parametrize(
    "spec",
    [dict(kernel_size=5), dict(kernel_size=4, stride=3, pool=2), dict(kernel_size=3, dilation=4,
     padding="valid", stride=2), dict(channels=(2, 2), kernel_size=[2, 5], pool=[3, 2])],
)  # fmt: skip
def test_length_rule_is_the_conv_and_pool_arithmetic(spec):
    fe = ConvFrontend(2, **{"channels": (3,), **spec, "norm": None}).eval()
    assert fe.output_length(fe.min_length) >= 1 and fe.output_length(fe.min_length - 1) == 0
    for n in range(fe.min_length, 40):
        y, _ = fe(torch.randn(1, n, 2))
        assert y.shape[1] == fe.output_length(n), (n, fe.length_rule())
    same = all(b.padding == "same" for b in fe.blocks)
    if same and spec.get("stride", 1) == 1 and "pool" not in spec:
        assert fe.min_length == 1 and fe.keeps_length
    lengths = torch.tensor([39, 25, fe.min_length, 0])
    _, n = fe(torch.randn(4, 39, 2), lengths)
    assert n.tolist() == [fe.output_length(int(v)) for v in lengths]
    assert n[-1] == 0  # a row of length 0 stays 0


def test_same_padding_keeps_one_step_and_valid_padding_needs_the_span():
    same = ConvFrontend(1, channels=(2,), kernel_size=5).eval()
    assert same(torch.randn(1, 1, 1))[0].shape == (1, 1, 2)
    assert same.length_rule() == "T"
    valid = ConvFrontend(1, channels=(2,), kernel_size=5, padding="valid").eval()
    assert valid.min_length == 5 and valid.output_length(7) == 3


@pytest.mark.parametrize("spec, pooling, cell", CASES)
def test_a_row_does_not_depend_on_its_padding(spec, pooling, cell):
    model = _model(spec, pooling, cell).double().eval()
    x, lengths = random_batch(3, 20, 3, with_lengths=True, seed=3)
    lengths = torch.tensor([20, max(11, model.frontend.min_length), 2 + model.frontend.min_length])
    noisy = x.clone()
    for b, n in enumerate(lengths):
        noisy[b, n:] = 1e3 * torch.randn(20 - n, 3, dtype=x.dtype)
    y, n_out = model.frontend(noisy, lengths)
    for b, n in enumerate(lengths):
        alone, _ = model.frontend(x[b : b + 1, :n])
        torch.testing.assert_close(y[b, : n_out[b]], alone[0], rtol=1e-10, atol=1e-12)
        assert (y[b, n_out[b] :] == 0).all()
    logits, _ = model(noisy, lengths=lengths)
    for b, n in enumerate(lengths):
        alone, _ = model(x[b : b + 1, :n])
        if pooling != "every":
            torch.testing.assert_close(logits[b], alone[0], rtol=1e-9, atol=1e-12)


def test_shortening_a_sequence_to_zero_steps_names_the_length_and_the_minimum():
    fe = ConvFrontend(2, channels=(4, 4), kernel_size=5, pool=[4, 2], padding="valid")
    # 28 -> floor((28 - 4) / 4) = 6 -> floor((6 - 4) / 2) = 1, and 27 -> 5 -> 0
    assert fe.min_length == 28 and fe.length_rule() == "floor((floor((T - 4) / 4) - 4) / 2)"
    with pytest.raises(InputError, match=r"sequence of 27 steps to 0 steps.*at least 28 steps"):
        fe(torch.randn(3, 30, 2), torch.tensor([30, 27, 0]))
    with pytest.raises(InputError, match=r"sequence of 9 steps"):
        fe(torch.randn(2, 9, 2))
    _, n = fe.eval()(torch.randn(3, 30, 2), torch.tensor([30, 28, 0]))
    assert n.tolist() == [1, 1, 0]


def test_sequence_model_checks_how_the_parts_fit():
    fe = ConvFrontend(3, channels=(8,), pool=2)
    with pytest.raises(InputError, match=r"input_size \(5\).*out_features \(8"):
        SequenceModel(DeepRNN(5, 4), Head(4, 2), frontend=fe)
    with pytest.raises(InputError, match="per-step head.*changes the length"):
        SequenceModel(DeepRNN(8, 4), Head(4, 2, pooling="every"), frontend=fe)
    with pytest.raises(InputError, match="embedding_dim"):
        SequenceModel(DeepRNN(8, 4), Head(4, 2), torch.nn.Embedding(10, 4), frontend=fe)
    rows = SequenceModel(DeepRNN(8, 4), Head(4, 2), frontend=fe).explain()
    assert [r["part"] for r in rows] == ["frontend", "body"]
    assert rows[0]["length"] == "floor(T / 2)" and rows[0]["conv"].startswith("3->8, kernel 5")


@pytest.mark.parametrize(
    "spec, message",
    [({"kernal_size": 5}, r"frontend.kernal_size: unknown key.*did you mean 'kernel_size'"),
     ({"channels": [8, 0]}, r"frontend.channels: channels must hold ints >= 1, got 0"),
     ({"channels": [8], "stride": [1, 2]}, r"frontend.stride: stride has 2 entries"),
     ({"norm": "group"}, r"frontend.norm: norm must be one of"),
     ({"dropout": 1.5}, r"frontend.dropout: dropout must be a float in \[0, 1\)"),
     ([32], r"frontend: expected a mapping")],
)  # fmt: skip
def test_bad_arguments_name_the_key(spec, message):
    with pytest.raises(ConfigError, match=message):
        frontend_kwargs(spec)
    assert frontend_kwargs({"channels": (4, 4), "pool": 2}) == {"channels": [4, 4], "pool": 2}


def test_gradient_flow_measures_the_body_on_the_front_ends_steps():
    from deeprnn.diagnostics import gradient_flow

    model = _model(CASES[0][0], "mean", "gru").eval()
    x, lengths = torch.randn(3, 21, 3), torch.tensor([21, 9, 4])
    flow = gradient_flow(model, x, lengths=lengths)
    y, n = model.frontend(x, lengths)
    alone = gradient_flow(model.body, y.detach(), lengths=n)
    assert flow.norms.shape == (1, model.frontend.output_length(21)) and flow.norms.sum() > 0
    np.testing.assert_allclose(flow.norms, alone.norms, rtol=1e-6)


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(
    blocks=st.lists(
        st.tuples(st.integers(1, 5), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
        min_size=1, max_size=2,
    ),
    padding=st.sampled_from(["same", "valid"]),
    lengths=st.lists(st.integers(0, 30), min_size=1, max_size=4),
)  # fmt: skip
def test_any_front_end_keeps_rows_apart_and_follows_its_length_rule(blocks, padding, lengths):
    k, s, p, d = (list(v) for v in zip(*blocks))
    fe = ConvFrontend(2, channels=[3] * len(blocks), kernel_size=k, stride=s, pool=p,
                      dilation=d, norm="layer", padding=padding).double().eval()  # fmt: skip
    m = fe.min_length
    assert fe.output_length(m) >= 1 and (m == 1 or fe.output_length(m - 1) == 0)
    lengths = torch.tensor(lengths)
    x = torch.randn(len(lengths), 30, 2, dtype=torch.float64)
    if any(0 < n < fe.min_length for n in lengths.tolist()) or fe.output_length(30) < 1:
        with pytest.raises(InputError, match="to 0 steps"):
            fe(x, lengths)
        return
    y, n = fe(x, lengths)
    assert n.tolist() == [fe.output_length(v) for v in lengths.tolist()]
    for b, v in enumerate(lengths.tolist()):
        assert (y[b, n[b] :] == 0).all()
        if v:
            alone, _ = fe(x[b : b + 1, :v])
            torch.testing.assert_close(y[b, : n[b]], alone[0], rtol=1e-10, atol=1e-12)
