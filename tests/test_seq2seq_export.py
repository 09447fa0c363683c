"""Seq2Seq export: the encoder and decoder-step graphs decode as the model does (onnxruntime
and TorchScript), for each attention kind and cell; the estimator's export folder."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from deeprnn import DeepRNN
from deeprnn.errors import InputError
from deeprnn.seq2seq import BOS_ID, EOS_ID, Seq2Seq, greedy
from deeprnn.seq2seq.export import export_seq2seq

CASES = [("general", "lstm", True, True), ("additive", "gru", False, False),
         ("dot", "rnn", True, False), ("general", "lstm", False, True)]  # fmt: skip


def make(attention, cell, feed, bidirectional, residual=False, seed=0):
    torch.manual_seed(seed)
    width = 8
    enc = DeepRNN(6, 4 if bidirectional else 8, 2, cell=cell, bidirectional=bidirectional,
                  residual=residual)  # fmt: skip
    dec = DeepRNN(5 + (width if feed else 0), width, 2, cell=cell)
    model = Seq2Seq(enc, dec, 9, 11, attention=attention, input_feeding=feed).eval()
    return model


def sources(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(4, 9, (4, 7), generator=g), torch.tensor([7, 5, 2, 1])


def loop(run_encoder, run_step, x, lengths, steps=8):
    """Greedy decoding with the exported graphs only (as a runtime without deeprnn would)."""
    keys, projected, state = run_encoder(x, lengths)
    tokens = np.full(x.shape[0], BOS_ID, dtype=np.int64)
    feed = np.zeros((x.shape[0], 8), dtype=keys.dtype)
    out, scores = [], []
    for _ in range(steps):
        logits, state, feed, _ = run_step(tokens, state, feed, keys, projected, lengths)
        tokens = logits.argmax(-1).astype(np.int64)
        out.append(tokens)
        scores.append(logits)
    rows = np.stack(out, 1).tolist()
    return [r[: r.index(EOS_ID)] if EOS_ID in r else r for r in rows], np.stack(scores, 1)


@torch.no_grad()
def eager_logits(model, x, lengths, steps=8):
    """(B, steps, V) logits of the model's own greedy path, step by step."""
    ds = model.encode(x, lengths)
    tokens = torch.full((x.shape[0],), BOS_ID)
    out = []
    for _ in range(steps):
        logits, ds, _ = model.step(tokens, ds)
        out.append(logits)
        tokens = logits.argmax(-1)
    return torch.stack(out, 1).numpy()


@pytest.mark.parametrize("attention,cell,feed,bidirectional", CASES)
def test_onnx_graphs_decode_as_the_model(tmp_path, attention, cell, feed, bidirectional):
    model = make(attention, cell, feed, bidirectional)
    folder = export_seq2seq(model, tmp_path, "onnx")
    enc = ort.InferenceSession(str(folder / "encoder.onnx"))
    step = ort.InferenceSession(str(folder / "decoder_step.onnx"))
    names = ["tokens", "state", "feed", "keys", "projected", "lengths"]
    takes = {i.name for i in step.get_inputs()}  # no feed input without input feeding
    assert takes == set(names) - ({"feed"} if not feed else set())
    x, lengths = sources()

    def run_step(*v):
        return step.run(None, {n: a for n, a in zip(names, v) if n in takes})

    got, logits = loop(lambda a, b: enc.run(None, {"x": a, "lengths": b}), run_step,
                       x.numpy(), lengths.numpy())  # fmt: skip
    assert got == [h.tokens for h in greedy(model, x, lengths, max_length=8)]
    np.testing.assert_allclose(logits, eager_logits(model, x, lengths), rtol=1e-4, atol=1e-5)
    # a longer source and another batch size than the export's example run too
    x2 = torch.randint(4, 9, (3, 11))
    out = enc.run(None, {"x": x2.numpy(), "lengths": np.array([11, 4, 9])})
    assert out[0].shape[:2] == (3, 11)


@pytest.mark.parametrize("attention,cell,feed,bidirectional", CASES[:2])
def test_torchscript_graphs_decode_as_the_model(tmp_path, attention, cell, feed, bidirectional):
    model = make(attention, cell, feed, bidirectional, seed=1)
    folder = export_seq2seq(model, tmp_path, "torchscript", meta={"note": "x"})
    enc = torch.jit.load(str(folder / "encoder.pt"))
    step = torch.jit.load(str(folder / "decoder_step.pt"))
    x, lengths = sources(1)

    def run_step(*v):
        return [t.numpy() for t in step(*[torch.as_tensor(a) for a in v])]

    got, logits = loop(lambda a, b: [t.numpy() for t in enc(torch.as_tensor(a),
                                                             torch.as_tensor(b))],
                       run_step, x.numpy(), lengths.numpy())  # fmt: skip
    assert got == [h.tokens for h in greedy(model, x, lengths, max_length=8)]
    np.testing.assert_allclose(logits, eager_logits(model, x, lengths), rtol=1e-5, atol=1e-6)
    info = json.loads((folder / "seq2seq.json").read_text())
    assert info["bos_id"] == BOS_ID and info["eos_id"] == EOS_ID and info["note"] == "x"


def test_residual_encoders_are_refused_with_the_reason(tmp_path):
    model = make("general", "lstm", True, False, residual=True)
    with pytest.raises(InputError, match="residual encoders"):
        export_seq2seq(model, tmp_path, "onnx")
    with pytest.raises(InputError, match="format must be one of"):
        export_seq2seq(make("general", "lstm", True, True), tmp_path, "tflite")


def test_translator_export_folder_holds_the_vocabularies(tmp_path):
    from deeprnn.estimators import Seq2SeqTranslator

    X = ["ab", "ba", "abc", "cab"] * 8
    est = Seq2SeqTranslator(hidden_size=8, num_layers=1, embedding_dim=4, epochs=1,
                            validation_fraction=0).fit(X, [s[::-1] for s in X])  # fmt: skip
    folder = est.export(tmp_path / "tr", "onnx")
    info = json.loads((folder / "seq2seq.json").read_text())
    assert info["source_tokens"] == est.source_vocab_.id_to_token
    assert info["target_tokens"][2:4] == ["<s>", "</s>"] and info["level"] == "char"
    assert (folder / "encoder.onnx").is_file() and (folder / "decoder_step.onnx").is_file()
