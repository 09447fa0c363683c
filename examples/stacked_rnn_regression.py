"""Stacked SimpleRNN regression with dropout (seed 002, code examples 4.1 and 4.2).

Keras 4.2: SimpleRNN(64) -> SimpleRNN(64) -> Dropout -> SimpleRNN(64) -> Dropout -> Dense(1),
mean squared error. In deeprnn one DeepRNN(cell="rnn", num_layers=3, dropout=...) is that
stack (dropout acts between the layers, in training only), and a Head(1) is the Dense(1).
Task: predict next month's sunspot number from the last 24 months (sunspots_monthly),
windows from `make_windows`, trained with `deeprnn.fit(task="regression")`.
Usage: python examples/stacked_rnn_regression.py [--quick]
"""

import argparse

import numpy as np
import torch

import deeprnn
from deeprnn.data import SeriesScaler, load_dataset, make_windows, time_split

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a short series, one epoch, for tests")
args = parser.parse_args()

series = load_dataset("sunspots_monthly").series  # (3120,) monthly, 1749-2008
if args.quick:
    series = series[-600:]
train, val, test = time_split(series, val=0.15, test=0.15)  # in time order, never shuffled
scaler = SeriesScaler().fit(train)  # mean and std of the training part only
lookback = 24


def windows(part: np.ndarray, shuffle: bool) -> deeprnn.TensorBatches:
    x, y = make_windows(scaler.transform(part), lookback, horizon=1)  # (N, 24, 1), (N, 1)
    return deeprnn.TensorBatches(x, y, batch_size=32, shuffle=shuffle)


# Validation and test windows read the lookback steps before their part as history.
val_part = np.concatenate([train[-lookback:], val])
test_part = np.concatenate([val[-lookback:], test])
torch.manual_seed(0)  # the initial weights
body = deeprnn.DeepRNN(1, 64, num_layers=3, cell="rnn", dropout=0.2)
model = deeprnn.SequenceModel(body, deeprnn.Head(64, 1))  # linear output, like Dense(1)
config = deeprnn.TrainConfig(epochs=1 if args.quick else 30, lr=1e-3, patience=5, verbose=0)
deeprnn.fit(model, windows(train, True), windows(val_part, False), config, task="regression")

pred = scaler.inverse_transform(deeprnn.predict(model, windows(test_part, False)))[:, 0]
truth = test_part[lookback:]
rmse = float(np.sqrt(np.mean((pred - truth) ** 2)))
naive = float(np.sqrt(np.mean((test_part[lookback - 1 : -1] - truth) ** 2)))  # last month
print(f"test RMSE {rmse:.2f} sunspots (repeat last month: {naive:.2f})")
