"""Text classification: tokenizer + padding + LSTM + sigmoid output (seed 001, section 4).

Keras: Tokenizer.fit_on_texts -> texts_to_sequences -> pad_sequences -> LSTM(32) ->
Dense(1, sigmoid), binary cross-entropy. Here: Tokenizer / Vocabulary / pad_sequences, then
Embedding -> DeepRNN -> Head(activation="sigmoid") trained with `deeprnn.fit(task="binary")`.
(The seed feeds ids straight into the LSTM; an embedding is what that step needs.)
Data: shakespeare_lines, a spoken line -> comedy (0) or tragedy (1).
Usage: python examples/text_classification.py [--quick]
"""

import argparse

import numpy as np
import torch
from torch import nn

import deeprnn
from deeprnn.data import Tokenizer, Vocabulary, load_dataset, pad_sequences

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="little data, one epoch, for tests")
args = parser.parse_args()

ds = load_dataset("shakespeare_lines")  # 8572 lines, shuffled once: a slice is a fair split
n = 400 if args.quick else len(ds.texts)
texts, labels = ds.texts[:n], ds.labels[:n].astype(np.float32)
cut = int(0.8 * n)

tokenizer = Tokenizer(level="word", lower=True)  # punctuation marks are tokens too
tokens = [tokenizer.tokenize(t) for t in texts]
vocab = Vocabulary.build(tokens[:cut])  # from the training lines only
ids, lengths = pad_sequences([vocab.encode(t) for t in tokens], maxlen=40, return_lengths=True)
print(f"{texts[0]!r}\n  -> {ids[0][: lengths[0]].tolist()}  ({len(vocab)} words)")

torch.manual_seed(0)  # the initial weights
model = deeprnn.SequenceModel(
    deeprnn.DeepRNN(64, 32, cell="lstm"),
    deeprnn.Head(32, 1, pooling="mean", activation="sigmoid"),
    embedding=nn.Embedding(len(vocab), 64, padding_idx=Vocabulary.pad_id),
)
train = deeprnn.TensorBatches(ids[:cut], labels[:cut], lengths[:cut], batch_size=32, shuffle=True)
test = deeprnn.TensorBatches(ids[cut:], labels[cut:], lengths[cut:], batch_size=256)
config = deeprnn.TrainConfig(epochs=1 if args.quick else 5, lr=1e-2, verbose=0)
deeprnn.fit(model, train, config=config, task="binary")

prob = deeprnn.predict(model, test)[:, 0]  # P(tragedy) per test line
accuracy = float(((prob > 0.5) == (labels[cut:] > 0.5)).mean())
majority = max(labels[cut:].mean(), 1 - labels[cut:].mean())
print(f"test accuracy {accuracy:.3f} (majority class {majority:.3f})")
