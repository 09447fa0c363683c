"""Likelihood heads: what the network's outputs mean, the loss that trains them, and the
forecast quantiles they give.

The network outputs P raw numbers per forecast step, (B, H * P). Training targets y are
(B, H + 2): the scaled targets z = (y - loc) / scale, then each window's loc and scale.
- "gaussian": mu, sigma = softplus(raw) + 1e-4; loss -log N(z; mu, sigma).
- "student_t": mu, sigma, df = 2 + softplus(raw); loss -log t_df(z; mu, sigma).
- "negative_binomial" (counts, loc must be 0): mean mu = softplus(raw) * scale and
  dispersion alpha = softplus(raw) / sqrt(scale) (DeepAR), so var = mu + alpha mu^2; the loss
  -log NB(y; mu, alpha) scores the counts themselves.
- "quantile": one output per level q; the pinball loss mean(max(q (z - f), (q - 1) (z - f))).
- None: one output, the mean squared error (a point forecast).
Gaussian and Student-t are scored in scaled units: their NLL differs from the one in the
series' units by log(scale), a constant per window.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from torch import Tensor

from deeprnn.errors import InputError

LIKELIHOODS = ("gaussian", "student_t", "negative_binomial", "quantile", None)
_SIGMA_FLOOR = 1e-4


def _negative_binomial(p: list[Tensor], scale: Tensor):
    """The counts' distribution: mean mu = p0 * scale, dispersion alpha = p1 / sqrt(scale)
    (DeepAR), so var = mu + alpha mu^2."""
    mu, alpha = p[0] * scale, p[1] / scale.sqrt()
    return torch.distributions.NegativeBinomial(
        total_count=1 / alpha, logits=torch.log(mu * alpha), validate_args=False
    )


def pinball(y: Tensor, f: Tensor, q: Tensor) -> Tensor:
    """Elementwise pinball (quantile) loss of forecast f of y at levels q."""
    d = y - f
    return torch.maximum(q * d, (q - 1) * d)


class Likelihood:
    """A likelihood: `n_params` outputs per step, `loss`, and `quantiles` in the series' units."""

    def __init__(self, name: str | None, quantiles=(0.1, 0.5, 0.9)):
        if name not in LIKELIHOODS:
            raise InputError(f"likelihood must be one of {list(LIKELIHOODS)}, got {name!r}")
        self.name = name
        self.levels = np.asarray(sorted(float(q) for q in quantiles), dtype=np.float64)
        if name == "quantile" and (
            not len(self.levels) or not ((self.levels > 0) & (self.levels < 1)).all()
        ):
            raise InputError(f"quantiles must lie in (0, 1), got {list(quantiles)}")
        self.n_params = {"gaussian": 2, "student_t": 3, "negative_binomial": 2,
                         "quantile": len(self.levels), None: 1}[name]  # fmt: skip

    def split(self, out: Tensor, horizon: int) -> Tensor:
        """(B, H * P) -> (B, H, P)."""
        return out.reshape(out.shape[0], horizon, self.n_params)

    def constrain(self, raw: Tensor) -> list[Tensor]:
        """The distribution's parameters in scaled units from raw outputs (B, H, P)."""
        if self.name == "gaussian":
            return [raw[..., 0], F.softplus(raw[..., 1]) + _SIGMA_FLOOR]
        if self.name == "student_t":
            return [
                raw[..., 0],
                F.softplus(raw[..., 1]) + _SIGMA_FLOOR,
                2 + F.softplus(raw[..., 2]),
            ]
        if self.name == "negative_binomial":
            return [F.softplus(raw[..., 0]) + _SIGMA_FLOOR, F.softplus(raw[..., 1]) + _SIGMA_FLOOR]
        return [raw[..., i] for i in range(self.n_params)]

    def nll_terms(self, raw: Tensor, z: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
        """(B, H) loss terms of scaled targets z (B, H); loc, scale (B, 1)."""
        p = self.constrain(raw)
        if self.name == "gaussian":
            return -torch.distributions.Normal(p[0], p[1]).log_prob(z)
        if self.name == "student_t":
            return -torch.distributions.StudentT(p[2], p[0], p[1]).log_prob(z)
        if self.name == "negative_binomial":
            return -_negative_binomial(p, scale).log_prob(z * scale + loc)
        if self.name == "quantile":
            q = torch.as_tensor(self.levels, dtype=raw.dtype, device=raw.device)
            return pinball(z[..., None], raw, q).mean(-1)
        return (raw[..., 0] - z) ** 2

    def loss(self, out: Tensor, y: Tensor, lengths=None) -> tuple[Tensor, float]:
        """Mean loss over the batch and horizon, and its weight (the number of terms).
        out (B, H * P) with y (B, H + 2) (direct), or out (B, T, P) with per-step targets
        y (B, T, 3) of z, loc, scale (autoregressive, `panel.make_ar_inputs`)."""
        if y.dim() == 3:
            raw, z, loc, scale = out, y[..., 0], y[..., 1], y[..., 2]
        else:
            horizon = y.shape[1] - 2
            z, loc, scale = y[:, :horizon], y[:, horizon : horizon + 1], y[:, horizon + 1 :]
            raw = self.split(out, horizon)
        terms = self.nll_terms(raw, z, loc, scale)
        return terms.mean(), float(terms.numel())

    def sample(self, raw: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
        """One draw of the next step per row, in scaled units, from raw outputs (B, P); loc
        and scale (B, 1). A quantile head draws by its piecewise-linear inverse CDF between
        the lowest and highest trained levels; a point head (None) returns its forecast."""
        p = self.constrain(raw[:, None])  # each (B, 1)
        if self.name == "gaussian":
            z = torch.distributions.Normal(p[0], p[1]).sample()
        elif self.name == "student_t":
            z = torch.distributions.StudentT(p[2], p[0], p[1]).sample()
        elif self.name == "negative_binomial":
            z = (_negative_binomial(p, scale).sample() - loc) / scale
        elif self.name == "quantile":
            grid = torch.sort(torch.stack(p, -1), dim=-1).values[:, 0]  # (B, K)
            levels = torch.as_tensor(self.levels, dtype=raw.dtype, device=raw.device)
            if len(levels) == 1:
                return grid[:, 0]
            u = levels[0] + (levels[-1] - levels[0]) * torch.rand(len(grid), 1, device=raw.device)
            hi = torch.searchsorted(levels, u.contiguous()).clamp(1, len(levels) - 1)
            lo = hi - 1
            w = (u - levels[lo]) / (levels[hi] - levels[lo])
            g_lo, g_hi = grid.gather(1, lo), grid.gather(1, hi)
            z = g_lo + w * (g_hi - g_lo)
        else:
            z = p[0]
        return z[:, 0]

    # ---- forecasts, in the series' units (float64 NumPy) ----
    def unit_params(self, raw: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> list[np.ndarray]:
        """Parameters (each (B, H)) in the series' units; loc, scale (B, 1)."""
        p = [t.double().numpy() for t in self.constrain(torch.as_tensor(raw, dtype=torch.float64))]
        if self.name in ("gaussian", "student_t"):
            return [p[0] * scale + loc, p[1] * scale, *p[2:]]
        if self.name == "negative_binomial":
            return [p[0] * scale, p[1] / np.sqrt(scale)]
        if self.name == "quantile":
            return [np.sort(np.stack(p, -1), axis=-1) * scale[..., None] + loc[..., None]]
        return [p[0] * scale + loc]

    def mean(self, params: list[np.ndarray]) -> np.ndarray:
        """The point forecast (B, H): the mean, or the median of a quantile head."""
        if self.name == "quantile":
            return self.quantiles(params, [0.5])[..., 0]
        return params[0]

    def check_levels(self, qs) -> np.ndarray:
        """Forecast quantile levels qs as an array; InputError unless they lie in (0, 1) and
        the likelihood has quantiles."""
        qs = np.asarray(qs, dtype=np.float64).reshape(-1)
        if not len(qs) or not ((qs > 0) & (qs < 1)).all():
            raise InputError(f"quantiles must lie in (0, 1), got {qs.tolist()}")
        if self.name is None:
            raise InputError(
                "a point forecaster (likelihood=None) has no quantiles; fit with likelihood="
                "'gaussian', 'student_t', 'negative_binomial' or 'quantile'"
            )
        return qs

    def quantiles(self, params: list[np.ndarray], qs) -> np.ndarray:
        """(B, H, Q) forecast quantiles at levels qs."""
        qs = self.check_levels(qs)
        q = qs.reshape((1,) * params[0].ndim + (-1,))
        if self.name == "gaussian":
            return stats.norm.ppf(q, params[0][..., None], params[1][..., None])
        if self.name == "student_t":
            return stats.t.ppf(q, params[2][..., None], params[0][..., None], params[1][..., None])
        if self.name == "negative_binomial":
            mu, alpha = params[0][..., None], params[1][..., None]
            return stats.nbinom.ppf(q, 1 / alpha, 1 / (1 + mu * alpha))
        levels, grid = self.levels, params[0]  # (B, H, K) at the trained levels
        outside = qs[(qs < levels[0] - 1e-9) | (qs > levels[-1] + 1e-9)]
        if len(outside):
            raise InputError(
                f"quantiles {outside.tolist()} lie outside the trained levels "
                f"[{levels[0]}, {levels[-1]}]; fit with quantiles=[...] that cover them"
            )
        flat = grid.reshape(-1, len(levels))
        out = np.stack([np.interp(qs, levels, row) for row in flat])
        return out.reshape(grid.shape[:-1] + (len(qs),))
