"""DeepAR-style autoregressive decoding (Salinas et al. 2020): the network is trained with
teacher forcing to give the likelihood of the NEXT step from the steps so far
(`panel.make_ar_inputs`); a forecast reads the lookback window, then draws one value of the
next step from the likelihood, feeds the draw back as the next input, and so on. Repeated
`n_samples` times this gives sample paths, whose quantiles are the probabilistic forecast
and whose mean is the point forecast; steps beyond the trained horizon need no refit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deeprnn.forecast.covariates import ar_extra
from deeprnn.forecast.likelihoods import Likelihood
from deeprnn.forecast.panel import features
from deeprnn.forecast.scaling import window_scale

_ROWS = 8192  # paths decoded at once


@torch.no_grad()
def sample_paths(net: nn.Module, likelihood: Likelihood, past: np.ndarray,
                 numbers: np.ndarray | None, scaling: str | None, steps: int, n_samples: int,
                 seed: int, device: torch.device, known: np.ndarray | None = None,
                 static: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """(N, n_samples, steps) paths in the series' units after the windows past (N, L);
    numbers (N,) the series numbers for an id embedding (else None); known (N, L + steps,
    Kk) the standardised known covariates of the lookback and forecast steps, static (N, S)
    (`covariates.ar_extra` places them). A point head (no likelihood) decodes one
    deterministic path, repeated."""
    n = len(past)
    draws = 1 if likelihood.name is None else n_samples
    per_chunk = max(1, _ROWS // draws)
    devices = [device.index or 0] if device.type == "cuda" else []
    out = []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for i in range(0, n, per_chunk):
            part = slice(i, i + per_chunk)
            nums = None if numbers is None else numbers[part]
            kn = None if known is None else np.repeat(known[part], draws, axis=0)
            st = None if static is None else np.repeat(static[part], draws, axis=0)
            out.append(_decode(net, likelihood, past[part], nums, scaling, steps, draws, device,
                               kn, st))  # fmt: skip
    paths = np.concatenate(out)
    return np.repeat(paths, n_samples, axis=1) if draws == 1 else paths


def _decode(net, likelihood, past, numbers, scaling, steps, draws, device, known,
            static) -> np.ndarray:  # fmt: skip
    loc, scale = window_scale(past, scaling)  # (N, 1)
    z = np.repeat((past - loc) / scale, draws, axis=0)
    loc, scale = np.repeat(loc, draws, axis=0), np.repeat(scale, draws, axis=0)
    series = None if numbers is None else np.repeat(numbers, draws)
    loc_t = torch.as_tensor(loc, dtype=torch.float64, device=device)
    scale_t = torch.as_tensor(scale, dtype=torch.float64, device=device)
    lookback = z.shape[1]
    out, state = net(features(z, scale, series, ar_extra(known, static, lookback)).to(device))
    drawn = []
    for k in range(steps):
        zk = likelihood.sample(out[:, -1].double(), loc_t, scale_t)  # (rows,)
        drawn.append(zk)
        if k + 1 < steps:
            extra = ar_extra(known, static, 1, offset=lookback + k)
            x = features(zk.cpu().numpy()[:, None], scale, series, extra).to(device)
            out, state = net(x, state)
    paths = torch.stack(drawn, 1).cpu().numpy() * scale + loc  # (rows, steps)
    return paths.reshape(len(past), draws, steps)
