"""A character-level language model that writes Shakespeare-like text (seeds 000 / 001).

The seeds' RNN reads a sequence and predicts y_t at every step; here y_t is the next
character. CharLanguageModel: embedding -> 2-layer LSTM -> softmax over characters, trained with
truncated BPTT on a slice of `shakespeare_char`; scored in bits per character on the text
that follows the slice (lower is better), then sampled from.
Usage: python examples/char_language_model.py [--quick] [--chars N]
"""

import argparse
import math
from collections import Counter

from deeprnn.data import load_dataset
from deeprnn.estimators import CharLanguageModel

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a small slice, one epoch, for tests")
parser.add_argument("--chars", type=int, default=100_000, help="training characters")
args = parser.parse_args()

text = load_dataset("shakespeare_char").text  # four plays, 456,311 characters
n = 5_000 if args.quick else args.chars
train, held_out = text[:n], text[n : n + 5_000]
alphabet = set(train)
held_out = "".join(c for c in held_out if c in alphabet)  # unseen characters have no p

lm = CharLanguageModel(
    hidden_size=32 if args.quick else 128,
    num_layers=2,
    embedding_dim=32,
    bptt_steps=64,
    batch_size=32,
    lr=5e-3,
    epochs=1 if args.quick else 10,
    patience=3,
)
lm.fit(train)
counts = Counter(train)
unigram = -sum(math.log2(counts[c] / n) for c in held_out[1:]) / (len(held_out) - 1)
print(lm.generate("MACBETH.\n", n=300, temperature=0.8, random_state=0))
print(f"bits per character {lm.bits_per_char(held_out):.3f} (unigram model: {unigram:.3f})")
