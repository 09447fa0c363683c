"""An LSTM and a deep LSTM for softmax classification (seed 000, code examples 4.1 and 4.2).

Keras 4.1: LSTM(128) -> Dense(softmax).  Keras 4.2: LSTM(128) -> Dense(128, relu) -> LSTM(128)
-> Dense(softmax); in deeprnn the Dense(relu) between the layers is `between="relu"`.
Data: japanese_vowels (9 speakers, 12 features, 7-29 steps), padded, with true lengths.
Usage: python examples/lstm_classification.py [--quick]
"""

import argparse

import numpy as np
import torch

import deeprnn
from deeprnn.data import load_dataset, pad_sequences

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a few epochs, for tests")
args = parser.parse_args()

ds = load_dataset("japanese_vowels")
mean = np.concatenate(ds.X_train).mean(0)
std = np.concatenate(ds.X_train).std(0)
X_train, len_train = pad_sequences([(x - mean) / std for x in ds.X_train], return_lengths=True)
X_test, len_test = pad_sequences([(x - mean) / std for x in ds.X_test], return_lengths=True)
features, classes = X_train.shape[-1], len(ds.label_names)  # 12, 9
train = deeprnn.TensorBatches(X_train, ds.y_train, len_train, batch_size=64, shuffle=True)
test = deeprnn.TensorBatches(X_test, ds.y_test, len_test, batch_size=256)
config = deeprnn.TrainConfig(epochs=2 if args.quick else 30, lr=3e-3, verbose=0)

torch.manual_seed(0)  # the initial weights
models = {
    "LSTM(128)": deeprnn.DeepRNN(features, 128, cell="lstm"),
    "LSTM(128) -> Dense(relu) -> LSTM(128)": deeprnn.DeepRNN(
        features, 128, num_layers=2, cell="lstm", between="relu"
    ),
}
for name, body in models.items():
    model = deeprnn.SequenceModel(body, deeprnn.Head(128, classes, activation="softmax"))
    deeprnn.fit(model, train, config=config, task="classification")
    probs = deeprnn.predict(model, test)  # (N, 9) softmax probabilities
    accuracy = float((probs.argmax(1) == ds.y_test).mean())
    print(f"{name:40s} params {body.num_parameters():7,d}  test accuracy {accuracy:.3f}")
