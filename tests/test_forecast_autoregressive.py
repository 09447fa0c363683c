"""DeepAR-style autoregressive decoding: teacher-forced training pairs, draws from each
likelihood, sample paths fed back step by step (issue 13 §2)."""

import numpy as np
import pytest
import torch
from scipy import stats

from deeprnn.errors import InputError
from deeprnn.estimators import Forecaster
from deeprnn.forecast.likelihoods import Likelihood
from deeprnn.forecast.panel import make_ar_inputs

TINY = dict(hidden_size=16, num_layers=1, seed=0, select="off")


def test_training_pairs_are_teacher_forced_and_scaled_by_the_lookback():
    raw = np.arange(20.0).reshape(2, 10) ** 1.5
    x, y = make_ar_inputs(raw, 6, np.array([0, 1]), "mean")
    assert x.shape == (2, 9, 3) and y.shape == (2, 9, 3)
    scale = np.abs(raw[:, :6]).mean(axis=1, keepdims=True)
    z = raw / scale
    np.testing.assert_allclose(x[..., 0].numpy(), z[:, :-1], rtol=1e-6)  # inputs: steps 0..8
    np.testing.assert_allclose(y[..., 0].numpy(), z[:, 1:], rtol=1e-6)  # targets: the next ones
    np.testing.assert_allclose(y[..., 2].numpy(), np.repeat(scale, 9, axis=1), rtol=1e-6)
    np.testing.assert_allclose(x[..., 1].numpy(), np.log(np.repeat(scale, 9, axis=1)), rtol=1e-6)
    np.testing.assert_array_equal(x[..., 2].numpy(), [[0] * 9, [1] * 9])


def test_per_step_loss_matches_the_gaussian_formula():
    rng = np.random.default_rng(0)
    raw = torch.tensor(rng.normal(size=(3, 5, 2)))
    z, loc, scale = rng.normal(size=(3, 5)), np.zeros((3, 5)), np.ones((3, 5))
    y = torch.tensor(np.stack([z, loc, scale], -1))
    mu, sigma = raw[..., 0].numpy(), torch.nn.functional.softplus(raw[..., 1]).numpy() + 1e-4
    expect = -stats.norm.logpdf(z, mu, sigma).mean()
    loss, weight = Likelihood("gaussian").loss(raw, y)
    assert float(loss) == pytest.approx(expect, rel=1e-10) and weight == 15


def test_draws_follow_each_likelihood():
    torch.manual_seed(0)
    n = 20000
    sigma_raw = float(np.log(np.expm1(2.0)))  # softplus^-1(2)
    raw = torch.tensor([[1.5, sigma_raw]], dtype=torch.float64).expand(n, 2)
    zeros, ones = torch.zeros(n, 1, dtype=torch.float64), torch.ones(n, 1, dtype=torch.float64)
    g = Likelihood("gaussian").sample(raw, zeros, ones).numpy()
    assert g.mean() == pytest.approx(1.5, abs=0.05) and g.std() == pytest.approx(2.0, abs=0.05)
    # Quantile head: outputs 0, 1, 3 at levels 0.1, 0.5, 0.9 -> draws in [0, 3], median 1.
    q = (
        Likelihood("quantile", (0.1, 0.5, 0.9))
        .sample(torch.tensor([[3.0, 0.0, 1.0]], dtype=torch.float64).expand(n, 3), zeros, ones)
        .numpy()
    )
    assert q.min() >= 0 and q.max() <= 3 and np.median(q) == pytest.approx(1.0, abs=0.05)
    # Negative binomial at scale 4: counts >= 0, integer, with mean mu * scale.
    nb_raw = torch.tensor([[float(np.log(np.expm1(2.5))), -3.0]], dtype=torch.float64)
    counts = Likelihood("negative_binomial").sample(nb_raw.expand(n, 2), zeros, 4 * ones) * 4
    counts = counts.numpy()
    assert (counts >= 0).all() and np.allclose(counts, np.round(counts))
    assert counts.mean() == pytest.approx(10.0, rel=0.05)


def test_fit_to_gaussian_noise_samples_its_quantiles_at_every_step():
    y = np.random.default_rng(3).normal(5.0, 2.0, 3000)
    fc = Forecaster(8, 4, likelihood="gaussian", decoder="autoregressive", scaling=None,
                    epochs=6, lr=1e-2, batch_size=128, validation_fraction=0, n_samples=2000,
                    **TINY).fit(y)  # fmt: skip
    q = fc.predict(quantiles=[0.1, 0.5, 0.9])  # (4, 3)
    truth = stats.norm.ppf([0.1, 0.5, 0.9], 5.0, 2.0)
    assert q.shape == (4, 3)
    np.testing.assert_allclose(q, np.broadcast_to(truth, q.shape), atol=0.4)
    # Beyond the trained horizon without a refit: the paths simply run on.
    assert fc.predict(horizon=10, quantiles=[0.5]).shape == (10, 1)


def test_paths_feed_their_draws_back_so_a_random_walk_fans_out():
    y = np.cumsum(np.random.default_rng(1).normal(0, 1.0, 2000)) + 100
    fc = Forecaster(16, 8, likelihood="gaussian", decoder="autoregressive", epochs=15, lr=1e-2,
                    batch_size=128, validation_fraction=0, n_samples=1000, relative=True,
                    **TINY).fit(y)  # fmt: skip
    paths = fc.sample_paths()
    assert paths.shape == (1000, 8)
    spread = paths.std(axis=0)
    # A random walk's h-step spread grows like sqrt(h) (2.8x at 8 steps); draws that were
    # not fed back would spread alike at every step (1x).
    assert spread[-1] > 1.5 * spread[0], spread
    np.testing.assert_allclose(fc.sample_paths(), paths)  # the seed makes them repeatable


def test_a_panel_decodes_every_series_and_bad_arguments_are_named():
    rng = np.random.default_rng(2)
    ys = [10 * (k + 1) + rng.normal(0, 1, 80 + 10 * k) for k in range(3)]
    fc = Forecaster(12, 4, likelihood="student_t", decoder="autoregressive", epochs=2,
                    id_embedding=2, n_samples=50, **TINY).fit(ys)  # fmt: skip
    assert fc.predict().shape == (3, 4)
    assert fc.sample_paths(ids=[2], n_samples=7).shape == (1, 7, 4)
    assert fc.predict(quantiles=[0.1, 0.9]).shape == (3, 4, 2)
    point = Forecaster(12, 4, decoder="autoregressive", epochs=2, **TINY).fit(ys[0])
    assert point.predict().shape == (4,)
    with pytest.raises(InputError, match="no quantiles"):
        point.predict(quantiles=[0.5])
    with pytest.raises(InputError, match="decoder must be one of"):
        Forecaster(12, 4, decoder="beam", **TINY).fit(ys)
    with pytest.raises(InputError, match="bidirectional=False"):
        Forecaster(12, 4, decoder="autoregressive", bidirectional=True, **TINY).fit(ys)
    with pytest.raises(InputError, match="sample paths need decoder='autoregressive'"):
        Forecaster(12, 4, likelihood="gaussian", epochs=1, **TINY).fit(ys).sample_paths()
