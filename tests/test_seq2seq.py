"""Seq2Seq: attention masking, teacher forcing vs decoding, beam search, learning, resume."""

from __future__ import annotations

import math

import pytest
import torch

from deeprnn import DeepRNN
from deeprnn.errors import InputError
from deeprnn.seq2seq import (
    BOS_ID,
    EOS_ID,
    Attention,
    DecoderState,
    Memory,
    Seq2Seq,
    beam_search,
    greedy,
)
from deeprnn.train import IGNORE_INDEX, TensorBatches, TrainConfig, cross_entropy, fit


def make_model(feed=True, attention="general", cell="lstm", bridge=True, vocab=(9, 11), seed=0):
    torch.manual_seed(seed)
    encoder = DeepRNN(6, 8, 2, cell=cell, bidirectional=attention != "dot")  # dot: equal widths
    decoder = DeepRNN(5 + (8 if feed else 0), 8, 2, cell=cell)
    return Seq2Seq(encoder, decoder, *vocab, attention=attention, input_feeding=feed,
                   bridge=bridge).double().eval()  # fmt: skip


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(4, 9, (3, 5), generator=g)
    lengths = torch.tensor([5, 3, 1])
    y = torch.randint(4, 11, (3, 4), generator=g)
    y[1, 3] = EOS_ID
    y[2, 2:] = torch.tensor([EOS_ID, IGNORE_INDEX])
    return x, lengths, y


@pytest.mark.parametrize("kind", ["general", "dot", "additive"])
def test_attention_gives_padded_source_steps_zero_weight(kind):
    torch.manual_seed(0)
    att = Attention(4, 4, kind).double()
    keys = torch.randn(2, 6, 4, dtype=torch.float64)
    lengths = torch.tensor([6, 2])
    context, weights = att(torch.randn(2, 3, 4, dtype=torch.float64), att.memory(keys, lengths))
    assert torch.all(weights[1, :, 2:] == 0) and torch.all(weights[1, :, :2] > 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, dtype=torch.float64))
    changed = keys.clone()
    changed[1, 2:] = 100.0  # what padding holds must not matter
    again, _ = att(torch.randn(2, 3, 4, dtype=torch.float64) * 0 + 1, att.memory(changed, lengths))
    ref, _ = att(torch.ones(2, 3, 4, dtype=torch.float64), att.memory(keys, lengths))
    torch.testing.assert_close(again[1], ref[1])


@pytest.mark.parametrize("feed,attention,cell", [(True, "general", "lstm"),
                         (False, "additive", "gru"), (True, "dot", "rnn")])  # fmt: skip
def test_teacher_forcing_equals_step_by_step_decoding_of_the_gold_prefix(feed, attention, cell):
    model = make_model(feed, attention, cell)
    x, lengths, y = batch()
    logits, _ = model(x, None, lengths, y)
    ds = model.encode(x, lengths)
    tokens = torch.full((3,), BOS_ID)
    for t in range(y.shape[1]):
        step_logits, ds, _ = model.step(tokens, ds)
        torch.testing.assert_close(step_logits, logits[:, t], rtol=1e-10, atol=1e-12)
        tokens = y[:, t].clamp(min=0)


@pytest.mark.parametrize("attention", ["general", "additive"])
def test_beam_width_one_is_greedy(attention):
    model = make_model(True, attention)
    x, lengths, _ = batch(3)
    a = greedy(model, x, lengths, max_length=7)
    b = beam_search(model, x, lengths, width=1, max_length=7)
    assert [h.tokens for h in a] == [h.tokens for h in b]
    for g_, b_ in zip(a, b):
        assert math.isclose(g_.score, b_.score, rel_tol=1e-9)
        assert g_.attention.shape == b_.attention.shape
        assert g_.attention.shape[1] <= 5


class TableModel:
    """A hand-built decoder: p(next token | previous token) from a fixed table.

    From <s>: A 0.6, B 0.4. After A every token is about equally likely (</s> 0.3); after
    B, </s> has 0.9. Greedy takes A then </s> (0.18); the best sequence is B </s> (0.36).
    """

    A, B = 4, 5

    def __init__(self):
        p = torch.full((6, 6), 1e-9, dtype=torch.float64)
        p[BOS_ID, self.A], p[BOS_ID, self.B] = 0.6, 0.4
        p[self.A, [EOS_ID, self.A, self.B]] = torch.tensor([0.3, 0.35, 0.35], dtype=torch.float64)
        p[self.B, EOS_ID], p[self.B, self.A] = 0.9, 0.1
        p[EOS_ID, EOS_ID] = 1.0
        self.logp = torch.log(p / p.sum(1, keepdim=True))

    def encode(self, x, lengths):
        memory = Memory(x[..., None].double(), x[..., None].double(), torch.ones_like(x).bool())
        return DecoderState([], torch.zeros(x.shape[0], 1), memory)

    def step(self, tokens, ds):
        weights = torch.ones(tokens.shape[0], ds.memory.keys.shape[1]) / ds.memory.keys.shape[1]
        return self.logp[tokens], ds, weights


def test_beam_search_finds_the_best_sequence_that_greedy_misses():
    model, x = TableModel(), torch.zeros(2, 3, dtype=torch.int64)
    greedy_first = greedy(model, x, max_length=5)[0]
    assert greedy_first.tokens[0] == TableModel.A  # greedy commits to the likelier first token
    best = beam_search(model, x, width=2, max_length=5)
    for h in best:
        assert h.tokens == [TableModel.B]
        best_score = model.logp[BOS_ID, TableModel.B] + model.logp[TableModel.B, EOS_ID]
        assert math.isclose(h.score, float(best_score))
        assert h.attention.shape == (2, 3)


def test_label_smoothing_is_the_mix_with_a_uniform_target():
    logits = torch.randn(2, 3, 5, dtype=torch.float64)
    y = torch.tensor([[1, 2, IGNORE_INDEX], [0, 4, 3]])
    loss, weight = cross_entropy(logits, y, label_smoothing=0.2)
    logp = torch.log_softmax(logits, -1)
    keep = y != IGNORE_INDEX
    terms = -(0.8 * logp[keep].gather(1, y[keep][:, None])[:, 0] + 0.2 * logp[keep].mean(-1))
    assert weight == 5
    torch.testing.assert_close(loss, terms.mean())


def reverse_pairs(n, seed):
    """Source: 2-5 random symbols; target: them reversed, then </s>; padded with -100."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 6, (n,), generator=g)
    x = torch.zeros(n, 5, dtype=torch.int64)
    y = torch.full((n, 6), IGNORE_INDEX)
    for i, k in enumerate(lengths.tolist()):
        x[i, :k] = torch.randint(4, 10, (k,), generator=g)
        y[i, :k] = x[i, :k].flip(0)
        y[i, k] = EOS_ID
    return x, lengths, y


def small_model(seed=0):
    torch.manual_seed(seed)
    encoder = DeepRNN(16, 32, 1, bidirectional=True)
    decoder = DeepRNN(16 + 32, 32, 1)
    return Seq2Seq(encoder, decoder, 10, 10, attention="general")


def test_learns_to_reverse_sequences_to_high_exact_match():
    x, lengths, y = reverse_pairs(1200, 0)
    model = small_model()
    config = TrainConfig(epochs=8, lr=1e-2, clip_norm=1.0, verbose=0, label_smoothing=0.05)
    fit(model, TensorBatches(x, y, lengths, batch_size=32, shuffle=True), config=config,
        task="seq2seq")  # fmt: skip
    xt, lt, yt = reverse_pairs(200, 1)
    hyps = beam_search(model.eval(), xt, lt, width=3, max_length=8)
    exact = sum(h.tokens == yt[i, : lt[i]].tolist() for i, h in enumerate(hyps)) / len(hyps)
    assert exact >= 0.9, exact


def test_resume_reaches_the_weights_of_an_uninterrupted_run(tmp_path):
    x, lengths, y = reverse_pairs(64, 2)
    data = TensorBatches(x, y, lengths, batch_size=16, shuffle=True)
    config = TrainConfig(epochs=2, lr=1e-2, verbose=0, label_smoothing=0.1)
    whole = small_model()
    expected = fit(whole, data, data, config=config, task="seq2seq")
    part = small_model()
    fit(part, data, data, config=TrainConfig(epochs=1, lr=1e-2, verbose=0, label_smoothing=0.1),
        task="seq2seq", run_dir=tmp_path)  # fmt: skip
    resumed = small_model(seed=5)
    history = fit(resumed, data, data, config, "seq2seq", run_dir=tmp_path, resume=True)
    assert history["val_loss"] == pytest.approx(expected["val_loss"], rel=1e-6)
    assert history["val_perplexity"][-1] < history["val_perplexity"][0]
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_scheduled_sampling_trains_and_changes_the_inputs():
    x, lengths, y = reverse_pairs(32, 3)
    model = small_model()
    model.scheduled_sampling = 1.0
    model.train()
    torch.manual_seed(0)
    sampled, _ = model(x, None, lengths, y)
    model.scheduled_sampling = 0.0
    gold, _ = model(x, None, lengths, y)
    torch.testing.assert_close(sampled[:, 0], gold[:, 0])  # step 0 always reads <s>
    assert not torch.allclose(sampled[:, 1:], gold[:, 1:])


def test_bad_input_gets_clear_errors():
    model = make_model()
    x, lengths, y = batch()
    with pytest.raises(InputError, match="at least one token"):
        greedy(model, x, torch.tensor([5, 0, 1]))
    with pytest.raises(InputError, match="max_length must be an int >= 1"):
        greedy(model, x, lengths, max_length=0)
    with pytest.raises(InputError, match="beam width"):
        beam_search(model, x, lengths, width=0)
    with pytest.raises(InputError, match=r"source ids x must lie in \[0, 9\)"):
        greedy(model, x + 20, lengths)
    with pytest.raises(InputError, match="needs targets"):
        model(x, None, lengths)
    with pytest.raises(InputError, match="tbptt_k1 and stateful do not apply"):
        fit(model, [(x, lengths, y)], config=TrainConfig(tbptt_k1=2, verbose=0), task="seq2seq")
    with pytest.raises(InputError, match="bidirectional must be False"):
        Seq2Seq(DeepRNN(4, 4), DeepRNN(8, 4, bidirectional=True), 5, 5)
