"""Stacking vs connecting: two inputs, two LSTM branches, concatenated (seed 004, 4.1 / 4.2).

Stacking (4.1) is depth: `DeepRNN(..., num_layers=2)`, layer 2 reading layer 1's outputs
(the seed's `Sequential(model1, model2)` would not run). Connecting (4.2) is width: two
inputs, an LSTM on each, their last outputs concatenated, then Dense(1): here
`Parallel(lstm1, lstm2, outputs="last")` and a linear head, trained with `deeprnn.fit`.
SYNTHETIC task: input a has 1 channel and 10 steps (the seed's (10, 1)), input b 2 channels
and 10-20 steps; the target is mean(a) - mean(b[:, 0]), so the model needs both branches.
Usage: python examples/two_inputs.py [--quick]
"""

import argparse

import numpy as np
import torch
from torch import nn

import deeprnn
from deeprnn.data import pad_sequences

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="little data, one epoch, for tests")
args = parser.parse_args()

rng = np.random.default_rng(0)
n = 300 if args.quick else 3000
a = rng.normal(size=(n, 10, 1)).astype(np.float32)
b = [rng.normal(size=(rng.integers(10, 21), 2)) for _ in range(n)]
y = np.array([[x.mean() - z[:, 0].mean()] for x, z in zip(a, b)], dtype=np.float32)
# fit passes one tensor per batch: both inputs side by side on features, padded to 20 steps;
# `lengths` holds the true lengths of input b (input a always has 10 steps).
xb, lengths = pad_sequences(b, maxlen=20, return_lengths=True)  # (N, 20, 2)
x = np.concatenate([np.pad(a, ((0, 0), (0, 10), (0, 0))), xb], axis=2)  # (N, 20, 3)


class TwoInputs(nn.Module):
    """x (B, 20, 1 + 2): branch a reads x[:, :10, :1], branch b x[..., 1:]; concat; Dense(1)."""

    def __init__(self, hidden: int = 32):
        super().__init__()
        lstm_a, lstm_b = deeprnn.DeepRNN(1, hidden), deeprnn.DeepRNN(2, hidden)
        self.body = deeprnn.Parallel(lstm_a, lstm_b, outputs="last")  # (B, 2 * hidden)
        self.head = nn.Linear(self.body.output_size, 1)

    def forward(self, x, state=None, lengths=None):
        merged, state = self.body([x[:, :10, :1], x[..., 1:]], state, [None, lengths])
        return self.head(merged), state


torch.manual_seed(0)  # the initial weights
model, cut = TwoInputs(), int(0.8 * n)
stacked = deeprnn.DeepRNN(1, 32, num_layers=2)  # stacking: depth instead of width (not trained)
print(f"connecting: {sum(p.numel() for p in model.parameters()):,} parameters, stacking (2 "
      f"layers on input a alone): {stacked.num_parameters():,}")  # fmt: skip
train = deeprnn.TensorBatches(x[:cut], y[:cut], lengths[:cut], batch_size=32, shuffle=True)
test = deeprnn.TensorBatches(x[cut:], y[cut:], lengths[cut:], batch_size=256)
config = deeprnn.TrainConfig(epochs=1 if args.quick else 20, lr=3e-3, verbose=0)
deeprnn.fit(model, train, config=config, task="regression")
mse = deeprnn.evaluate(model, test, task="regression")["mse"]
print(f"test MSE {mse:.4f} (predicting the mean: {float(y[cut:].var()):.4f})")
