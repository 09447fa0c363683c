"""Plots write real PNG pictures with the data drawn in them."""

import numpy as np
from matplotlib.image import imread

from deeprnn import plots


def _png_ok(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = imread(path)
    assert img.shape[0] > 100 and img.shape[1] > 100
    assert img[..., :3].std() > 0.01  # not a blank canvas


def test_training_curves(tmp_path):
    hist = {
        "train_loss": [1.0, 0.6, 0.4],
        "val_loss": [1.1, 0.8, 0.7],
        "val_accuracy": [0.3, 0.5, 0.6],
        "lr": [0.1, 0.1, 0.1],
        "note": ["a", "b", "c"],
    }
    _png_ok(plots.training_curves(hist, tmp_path / "curves.png"))


def test_forecast_and_confusion(tmp_path):
    t = np.arange(60)
    future = np.sin(np.arange(60, 72) / 5)
    path = tmp_path / "sub" / "fc.png"
    _png_ok(plots.forecast(np.sin(t / 5), future, future + 0.1, path, baseline=np.zeros(12)))
    _png_ok(plots.confusion_matrix(np.array([[5, 1], [2, 7]]), ["a", "b"], tmp_path / "cm.png"))
