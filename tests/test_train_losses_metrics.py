"""Losses, penalties and metrics against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from deeprnn.errors import InputError
from deeprnn.train import IGNORE_INDEX, task_loss, weight_penalty
from deeprnn.train import metrics as M

LN2 = math.log(2)


def test_classification_metrics_by_hand():
    y_true = [0, 1, 2, 2, 1, 0]
    y_pred = [0, 2, 2, 2, 1, 1]
    # per class (precision, recall, f1): 0: (1, 1/2, 2/3); 1: (1/2, 1/2, 1/2); 2: (2/3, 1, 4/5)
    got = M.classification_metrics(y_true, y_pred)
    assert got["accuracy"] == pytest.approx(4 / 6)
    assert got["f1_micro"] == pytest.approx(4 / 6)
    assert got["f1_macro"] == pytest.approx((2 / 3 + 1 / 2 + 4 / 5) / 3)
    assert got["precision"] == pytest.approx((1 + 1 / 2 + 2 / 3) / 3)
    assert got["recall"] == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)
    want = [[1, 1, 0], [0, 1, 1], [0, 0, 2]]
    np.testing.assert_array_equal(M.confusion_matrix(y_true, y_pred), want)
    assert M.confusion_matrix([0], [0], num_classes=3).shape == (3, 3)


def test_binary_metrics_by_hand():
    got = M.binary_metrics([1, 0, 1, 1], [0.9, 0.6, 0.4, 0.8])  # predicts 1, 1, 0, 1
    assert got["accuracy"] == pytest.approx(0.5)
    assert got["precision"] == pytest.approx(2 / 3)
    assert got["recall"] == pytest.approx(2 / 3)
    assert got["f1"] == pytest.approx(2 / 3)


def test_regression_metrics_by_hand():
    got = M.regression_metrics([1.0, 2.0, 4.0], [2.0, 2.0, 2.0])  # errors -1, 0, 2
    assert got["mse"] == pytest.approx(5 / 3)
    assert got["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert got["mae"] == pytest.approx(1.0)
    assert got["mape"] == pytest.approx(100 * (1 / 1 + 0 + 2 / 4) / 3)
    assert got["smape"] == pytest.approx(100 * (2 * 1 / 3 + 0 + 2 * 2 / 6) / 3)
    assert M.smape([0.0], [0.0]) == 0.0


def test_perplexity_and_bits_per_character():
    assert M.perplexity(math.log(4)) == pytest.approx(4.0)
    assert M.bits_per_character(math.log(4)) == pytest.approx(2.0)


def test_class_weights_change_cross_entropy_as_by_hand():
    logits = torch.tensor([[0.0, 0.0], [math.log(3), 0.0]])
    y = torch.tensor([0, 1])  # nll: ln 2 and ln 4
    loss, weight = task_loss("classification", logits, y)
    assert float(loss) == pytest.approx((LN2 + 2 * LN2) / 2)
    assert weight == 2
    loss, weight = task_loss("classification", logits, y, class_weights=(1.0, 3.0))
    assert float(loss) == pytest.approx((1 * LN2 + 3 * 2 * LN2) / 4)
    assert weight == 4


def test_binary_class_weights_by_hand():
    logits = torch.tensor([0.0, math.log(3)])
    y = torch.tensor([1.0, 0.0])  # bce: ln 2 and ln 4
    loss, _ = task_loss("binary", logits, y)
    assert float(loss) == pytest.approx(1.5 * LN2)
    loss, _ = task_loss("binary", logits.unsqueeze(-1), y, class_weights=(1.0, 3.0))
    assert float(loss) == pytest.approx((3 * LN2 + 1 * 2 * LN2) / 4)


def test_per_step_cross_entropy_masks_lengths_and_ignore_index():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 3, generator=g)
    y = torch.tensor([[0, 1, 2, 1], [2, 2, 0, 0]])
    lengths = torch.tensor([4, 2])
    nll = -torch.log_softmax(logits, -1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    want = (nll[0].sum() + nll[1, :2].sum()) / 6
    loss, weight = task_loss("tagging", logits, y, lengths)
    assert weight == 6
    torch.testing.assert_close(loss, want)
    padded = y.clone()
    padded[1, 2:] = IGNORE_INDEX
    torch.testing.assert_close(task_loss("lm", logits, padded)[0], want)
    padded[0, 0] = IGNORE_INDEX  # both rules at once
    torch.testing.assert_close(
        task_loss("lm", logits, padded, lengths)[0], (want * 6 - nll[0, 0]) / 5
    )


def test_per_step_mse_counts_only_real_steps():
    pred = torch.tensor([[[1.0], [2.0], [9.0]], [[0.0], [5.0], [5.0]]])  # (B, T, 1)
    y = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    loss, weight = task_loss("regression", pred, y, torch.tensor([2, 1]))
    assert weight == 3
    assert float(loss) == pytest.approx((1 + 4 + 0) / 3)


def test_loss_errors_name_the_problem():
    with pytest.raises(InputError, match="shape"):
        task_loss("classification", torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(InputError, match=r"\[0, 3\)"):
        task_loss("classification", torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(InputError, match="class_weights"):
        task_loss("classification", torch.zeros(2, 3), torch.tensor([0, 1]), class_weights=(1, 2))


def test_l1_l2_penalty_skips_biases():
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.0]]))
        lin.bias.fill_(100.0)
    got = weight_penalty(lin, l1=0.1, l2=0.01)
    assert float(got.detach()) == pytest.approx(0.1 * 3.5 + 0.01 * (1 + 4 + 0.25))
    assert weight_penalty(lin) is None
