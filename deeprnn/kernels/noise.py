"""Recurrent dropout and zoneout: the random masks of one direction of one layer.

Both act inside the recurrence, so torch's fused kernels cannot compute them. The masks
are drawn ONCE per forward call (`sample_noise`), before the layer picks its path, so the
fused recurrence and the generic cell loop consume the same masks: seed torch's generator
before two calls and they compare exactly.

    recurrent dropout (Gal & Ghahramani 2016, training only): a_h = W_hh (m * h_{t-1}) + b_hh
        with one mask m ~ Bernoulli(1 - p) / (1 - p) of shape (B, H) for the whole sequence.
    zoneout (Krueger et al. 2017), on h and on the LSTM c separately, with probability p:
        h_t = h_{t-1} + u_t * (h~_t - h_{t-1})       (the same for c)
        training: u_t ~ Bernoulli(1 - p), per unit and step; eval: u_t = 1 - p (expectation).
        h~_t is the cell's usual update; for the LSTM it uses the un-zoned c~_t.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from deeprnn.errors import InputError

Update = Tensor | float | None


@dataclass(frozen=True)
class Noise:
    """The masks of one direction: for T steps (`sample_noise`) or one step (`at`).

    drop: (B, H) recurrent-dropout mask on h_{t-1}, already scaled by 1 / (1 - p); or None.
    update_h: share of the new h kept at each step: (T, B, H) (one step: (B, H)) of 0 / 1 in
        training, the float 1 - p in eval; None without zoneout on h. Time-major, as the
        fused recurrences read it.
    update_c: the same for the LSTM cell state c.
    """

    drop: Tensor | None = None
    update_h: Update = None
    update_c: Update = None

    def at(self, t: int) -> Noise:
        """The masks of step t."""

        def pick(u: Update) -> Update:
            return u[t] if isinstance(u, Tensor) else u

        return Noise(self.drop, pick(self.update_h), pick(self.update_c))

    def dropped(self, h: Tensor) -> Tensor:
        """h_{t-1} as the recurrent projection sees it: m * h_{t-1}."""
        return h if self.drop is None else h * self.drop

    def zoneout_h(self, old: Tensor, new: Tensor) -> Tensor:
        return _blend(old, new, self.update_h)

    def zoneout_c(self, old: Tensor, new: Tensor) -> Tensor:
        return _blend(old, new, self.update_c)


def _blend(old: Tensor, new: Tensor, update: Update) -> Tensor:
    """old + update * (new - old); the new value itself without zoneout."""
    return new if update is None else torch.lerp(old, new, update)


def dropout_rate(p: float) -> float:
    """Check the `recurrent_dropout` option: a float in [0, 1)."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise InputError(f"recurrent_dropout must be a float in [0, 1), got {p!r}")
    return float(p)


def zoneout_pair(zoneout: float | tuple[float, float]) -> tuple[float, float]:
    """Normalise the `zoneout` option to (p_h, p_c); one float applies to both."""
    if isinstance(zoneout, (tuple, list)):
        if len(zoneout) != 2:
            raise InputError(f"zoneout must be a float or a pair (h, c), got {zoneout!r}")
        pair = (zoneout[0], zoneout[1])
    else:
        pair = (zoneout, zoneout)
    for p in pair:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise InputError(f"zoneout probabilities must be floats in [0, 1), got {zoneout!r}")
    return float(pair[0]), float(pair[1])


def sample_noise(
    recurrent_dropout: float,
    zoneout: tuple[float, float],
    lstm: bool,
    training: bool,
    batch: int,
    time: int,
    like: Tensor,
    hidden: int,
) -> Noise | None:
    """Draw the masks for `time` steps of `batch` rows (None when nothing applies).

    Draws in a fixed order (dropout, then zoneout h, then c) from torch's generator of
    `like`'s device, so that equal seeds give equal masks on every path.
    """
    p_h, p_c = zoneout
    if not lstm:
        p_c = 0.0
    if not training:
        if p_h == 0.0 and p_c == 0.0:
            return None
        return Noise(None, 1.0 - p_h if p_h else None, 1.0 - p_c if p_c else None)
    if recurrent_dropout == 0.0 and p_h == 0.0 and p_c == 0.0:
        return None
    drop = None
    if recurrent_dropout > 0.0:
        keep = 1.0 - recurrent_dropout
        drop = _bernoulli(like, (batch, hidden), keep).div_(keep)
    update_h = _bernoulli(like, (time, batch, hidden), 1.0 - p_h) if p_h else None
    update_c = _bernoulli(like, (time, batch, hidden), 1.0 - p_c) if p_c else None
    return Noise(drop, update_h, update_c)


def _bernoulli(like: Tensor, shape: tuple[int, ...], p: float) -> Tensor:
    """0 / 1 with P(1) = p, as U < p for U ~ uniform[0, 1): twice as fast as bernoulli_."""
    return like.new_empty(shape).uniform_().lt_(p)
