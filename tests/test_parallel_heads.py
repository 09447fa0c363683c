"""Parallel branches and heads compute what their docstrings say."""

import torch

from deeprnn import DeepRNN, Head, Parallel, SequenceModel


def test_parallel_concat_equals_branches_run_alone():
    torch.manual_seed(0)
    a, b = DeepRNN(3, 4, cell="gru"), DeepRNN(3, 5, cell="lstm", num_layers=2)
    par = Parallel(a, b)
    x = torch.randn(2, 6, 3)
    out, states = par(x)
    assert out.shape == (2, 6, 9) and par.output_size == 9
    torch.testing.assert_close(out, torch.cat([a(x)[0], b(x)[0]], -1))
    torch.testing.assert_close(states[1][1][1], b(x)[1][1][1])


def test_parallel_sum_and_mean():
    torch.manual_seed(1)
    a, b = DeepRNN(3, 4), DeepRNN(3, 4)
    x = torch.randn(2, 5, 3)
    total = a(x)[0] + b(x)[0]
    torch.testing.assert_close(Parallel(a, b, merge="sum")(x)[0], total)
    torch.testing.assert_close(Parallel(a, b, merge="mean")(x)[0], total / 2)


def test_two_inputs_of_different_length_merge_last_steps():
    torch.manual_seed(2)
    a, b = DeepRNN(3, 4), DeepRNN(2, 6, cell="gru")
    par = Parallel(a, b, outputs="last")
    x1, x2 = torch.randn(2, 7, 3), torch.randn(2, 4, 2)
    lengths1 = torch.tensor([7, 3])
    out, _ = par([x1, x2], lengths=[lengths1, None])
    assert out.shape == (2, 10)
    seq1 = a(x1, lengths=lengths1)[0]
    torch.testing.assert_close(out[0, :4], seq1[0, 6])
    torch.testing.assert_close(out[1, :4], seq1[1, 2])
    torch.testing.assert_close(out[:, 4:], b(x2)[0][:, -1])


def test_every_layer_reads_x_formula():
    """Single-layer tanh RNN branches on the same x: h^l_t = tanh(W^l x_t + U^l h^l_{t-1} + b)."""
    torch.manual_seed(3)
    branches = [DeepRNN(2, 3, cell="rnn") for _ in range(2)]
    x = torch.randn(1, 4, 2)
    out, _ = Parallel(*branches)(x)
    for k, br in enumerate(branches):
        c = br.layers[0].cell
        h = torch.zeros(3)
        for t in range(4):
            h = torch.tanh(c.weight_ih @ x[0, t] + c.bias_ih + c.weight_hh @ h + c.bias_hh)
            torch.testing.assert_close(out[0, t, 3 * k : 3 * k + 3], h)


def test_head_poolings_by_hand():
    torch.manual_seed(4)
    o = torch.randn(3, 5, 4)
    lengths = torch.tensor([5, 2, 0])
    last = Head(4, 2, "last")
    torch.testing.assert_close(last.pool(o, lengths)[1], o[1, 1])
    assert torch.equal(last.pool(o, lengths)[2], torch.zeros(4))
    mean = Head(4, 2, "mean")
    torch.testing.assert_close(mean.pool(o, lengths)[1], o[1, :2].mean(0))
    att = Head(4, 2, "attention", attention_size=3)
    e = att.score(torch.tanh(att.attention(o[1, :2]))).squeeze(-1)
    expected = (torch.softmax(e, 0).unsqueeze(-1) * o[1, :2]).sum(0)
    torch.testing.assert_close(att.pool(o, lengths)[1], expected)
    assert torch.equal(att.pool(o, lengths)[2], torch.zeros(4))
    every = Head(4, 2, "every")
    assert torch.equal(every.pool(o, lengths)[1, 2:], torch.zeros(3, 4))
    w, b = last.linear.weight, last.linear.bias
    torch.testing.assert_close(last.logits(o, lengths)[0], o[0, 4] @ w.T + b)


def test_attention_gradient_finite_for_empty_rows():
    att = Head(4, 2, "attention")
    o = torch.randn(2, 3, 4, requires_grad=True)
    att(o, torch.tensor([0, 2])).sum().backward()
    assert torch.isfinite(o.grad).all() and torch.isfinite(att.attention.weight.grad).all()
    assert torch.equal(o.grad[0], torch.zeros(3, 4))


def test_output_activations():
    o = torch.randn(2, 3, 4)
    assert torch.allclose(Head(4, 3, activation="softmax")(o).sum(-1), torch.ones(2))
    y = Head(4, 1, activation="sigmoid")(o)
    assert ((y > 0) & (y < 1)).all()


def test_sequence_model_with_embedding():
    torch.manual_seed(5)
    emb = torch.nn.Embedding(10, 3)
    model = SequenceModel(DeepRNN(3, 4), Head(4, 2, "mean", "softmax"), embedding=emb)
    ids = torch.tensor([[1, 2, 3], [4, 0, 0]])
    logits, _ = model(ids, lengths=torch.tensor([3, 1]))
    expected = model.body(emb(ids), lengths=torch.tensor([3, 1]))[0]
    torch.testing.assert_close(logits, model.head.logits(expected, torch.tensor([3, 1])))
