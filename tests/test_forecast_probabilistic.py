"""Likelihood heads against direct formulas, forecast quantiles of known distributions,
interval coverage, and the forecast metrics."""

import numpy as np
import pytest
import torch
from scipy import stats

from deeprnn import plots
from deeprnn.estimators import Forecaster
from deeprnn.forecast import Likelihood
from deeprnn.forecast import metrics as fm

TINY = dict(hidden_size=16, num_layers=1, seed=0)


def _softplus(x):
    return np.log1p(np.exp(x))


def _batch(rng, B=6, H=4, P=2, positive=False):
    raw = rng.normal(0, 1, (B, H * P))
    loc = np.zeros((B, 1)) if positive else rng.normal(0, 3, (B, 1))
    scale = rng.uniform(0.5, 4, (B, 1))
    y = rng.poisson(5, (B, H)).astype(float) if positive else rng.normal(0, 3, (B, H))
    packed = np.concatenate([(y - loc) / scale, loc, scale], axis=1)
    return raw, y, loc, scale, torch.tensor(raw), torch.tensor(packed)


def test_gaussian_and_student_t_losses_match_scipy():
    rng = np.random.default_rng(0)
    raw, y, loc, scale, out, packed = _batch(rng)
    loss, weight = Likelihood("gaussian").loss(out, packed)
    r = raw.reshape(6, 4, 2)
    z = (y - loc) / scale
    expect = -stats.norm.logpdf(z, r[..., 0], _softplus(r[..., 1]) + 1e-4).mean()
    assert weight == 24 and float(loss) == pytest.approx(expect, rel=1e-10)
    raw, y, loc, scale, out, packed = _batch(rng, P=3)
    r = raw.reshape(6, 4, 3)
    z = (y - loc) / scale
    expect = -stats.t.logpdf(
        z, 2 + _softplus(r[..., 2]), r[..., 0], _softplus(r[..., 1]) + 1e-4
    ).mean()
    assert float(Likelihood("student_t").loss(out, packed)[0]) == pytest.approx(expect, rel=1e-10)


def test_negative_binomial_loss_scores_the_counts():
    rng = np.random.default_rng(1)
    raw, y, loc, scale, out, packed = _batch(rng, positive=True)
    r = raw.reshape(6, 4, 2)
    mu = (_softplus(r[..., 0]) + 1e-4) * scale
    alpha = (_softplus(r[..., 1]) + 1e-4) / np.sqrt(scale)
    expect = -stats.nbinom.logpmf(y, 1 / alpha, 1 / (1 + mu * alpha)).mean()
    assert float(Likelihood("negative_binomial").loss(out, packed)[0]) == pytest.approx(
        expect, rel=1e-9
    )
    # Its quantiles are scipy's, in counts.
    lik = Likelihood("negative_binomial")
    params = lik.unit_params(r, loc, scale)
    np.testing.assert_allclose(params[0], mu, rtol=1e-12)
    q = lik.quantiles(params, [0.5])[..., 0]
    np.testing.assert_array_equal(q, stats.nbinom.ppf(0.5, 1 / alpha, 1 / (1 + mu * alpha)))


def test_quantile_loss_is_the_pinball_loss():
    rng = np.random.default_rng(2)
    levels = [0.1, 0.5, 0.9]
    raw, y, loc, scale, out, packed = _batch(rng, P=3)
    f = raw.reshape(6, 4, 3)
    z = ((y - loc) / scale)[..., None]
    expect = np.maximum(np.array(levels) * (z - f), (np.array(levels) - 1) * (z - f)).mean()
    assert float(Likelihood("quantile", levels).loss(out, packed)[0]) == pytest.approx(
        expect, rel=1e-12
    )


@pytest.mark.parametrize("likelihood", ["gaussian", "quantile"])
def test_fit_to_gaussian_noise_recovers_its_quantiles(likelihood):
    # White noise N(5, 2^2): the forecast's 0.1 / 0.9 quantiles should be 5 -/+ 1.2816 * 2.
    y = np.random.default_rng(3).normal(5.0, 2.0, 3000)
    fc = Forecaster(8, 1, likelihood=likelihood, scaling=None, epochs=8, lr=1e-2, batch_size=128,
                    validation_fraction=0, **TINY).fit(y)  # fmt: skip
    q = fc.predict(quantiles=[0.1, 0.5, 0.9])[0]
    truth = stats.norm.ppf([0.1, 0.5, 0.9], 5.0, 2.0)
    np.testing.assert_allclose(q, truth, atol=0.35)  # tolerance: 0.175 sigma


def test_intervals_cover_synthetic_data_at_their_level():
    rng = np.random.default_rng(4)
    n, H = 30, 6
    t = np.arange(90)
    full = [10 + 3 * np.sin(2 * np.pi * (t + rng.integers(12)) / 12) + rng.normal(0, 1, 90)
            for _ in range(n)]  # fmt: skip
    fc = Forecaster(24, H, likelihood="gaussian", epochs=15, lr=1e-2, validation_fraction=0,
                    **TINY).fit([s[:-H] for s in full])  # fmt: skip
    lo, hi = fc.predict_interval(0.8)
    truth = np.stack([s[-H:] for s in full])
    cov = fm.coverage(truth, lo, hi)
    assert 0.65 <= cov <= 0.95, cov
    assert (lo < hi).all()


def test_forecast_metrics_against_direct_formulas(tmp_path):
    rng = np.random.default_rng(5)
    train = rng.normal(0, 1, 50).cumsum()
    y, f = rng.normal(0, 1, 10), rng.normal(0, 1, 10)
    assert fm.mase(y, f, train) == pytest.approx(
        np.mean(np.abs(y - f)) / np.mean(np.abs(np.diff(train)))
    )
    assert fm.mase(y, f, train, season=4) == pytest.approx(
        np.mean(np.abs(y - f)) / np.mean(np.abs(train[4:] - train[:-4]))
    )
    assert fm.smape([1.0, 2.0], [3.0, 2.0]) == pytest.approx(100 * (2 * 2 / 4 + 0) / 2)
    # CRPS from many quantiles of N(mu, sigma) approaches the closed form.
    mu, sigma = rng.normal(0, 1, 200), rng.uniform(0.5, 2, 200)
    obs = rng.normal(mu, sigma)
    levels = np.linspace(0.005, 0.995, 199)
    q = stats.norm.ppf(levels, mu[:, None], sigma[:, None])
    assert fm.crps(obs, q, levels) == pytest.approx(fm.crps_gaussian(obs, mu, sigma), rel=0.02)
    wql = fm.weighted_quantile_loss(obs, q[:, [19, 179]], levels[[19, 179]])
    d = obs[:, None] - q[:, [19, 179]]
    lv = levels[[19, 179]]
    assert wql == pytest.approx(
        np.mean(2 * np.maximum(lv * d, (lv - 1) * d).sum(0) / np.abs(obs).sum())
    )
    assert fm.coverage([1, 2, 3, 4], [0, 2.5, 2, 5], [2, 3, 4, 6]) == 0.5
    path = plots.fan_chart(train, np.sort(q[:10, [19, 99, 179]], axis=1), levels[[19, 99, 179]],
                           tmp_path / "fan.png", actual=obs[:10])  # fmt: skip
    assert path.stat().st_size > 1000
