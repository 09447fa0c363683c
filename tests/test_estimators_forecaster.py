"""Forecaster options beyond the defaults."""

import numpy as np
import pytest

from deeprnn.errors import InputError
from deeprnn.estimators import Forecaster


def test_log_option_models_log_and_rejects_non_positive():
    t = np.arange(120)
    y = np.exp(0.01 * t) * (1 + 0.3 * np.sin(2 * np.pi * t / 12)) * 100
    fc = Forecaster(24, 12, log=True, epochs=3, hidden_size=8, num_layers=1,
                    validation_fraction=0).fit(y)  # fmt: skip
    pred = fc.predict()
    assert pred.shape == (12,) and (pred > 0).all()
    np.testing.assert_allclose(fc.scaler_.mean_.ravel(), np.log(y).mean(), rtol=1e-9)
    with pytest.raises(InputError, match=r"log=True needs y > 0, but it holds -1"):
        Forecaster(4, 1, log=True).fit(np.r_[np.ones(20), -1.0])
