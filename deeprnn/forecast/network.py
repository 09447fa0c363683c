"""GlobalNet: one network for every series of a panel, with an optional series-id embedding
and a likelihood that defines its training loss."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from deeprnn.forecast.likelihoods import Likelihood
from deeprnn.model import SequenceModel


class GlobalNet(nn.Module):
    """[series-id embedding] -> SequenceModel, trained by `likelihood.loss`.

    Call: `out, state = net(x, state=None, lengths=None)`; x (B, L, F [+1]) where, with an
    embedding, the last channel holds the series number: it is replaced by that series'
    embedding (n_ids, id_dim) at every step, so the inner model reads F + id_dim channels.
    `loss(out, y)` is the likelihood's (see `deeprnn.forecast.likelihoods`); the training
    loop uses a model's own `loss` in place of the task's.
    """

    def __init__(self, net: SequenceModel, likelihood: Likelihood, n_ids: int = 0, id_dim: int = 0):
        super().__init__()
        self.net = net
        self.likelihood = likelihood
        self.embedding = nn.Embedding(n_ids, id_dim) if id_dim else None

    def forward(self, x: Tensor, state=None, lengths: Tensor | None = None):
        if self.embedding is not None:
            ids = x[:, 0, -1].long()  # (B,)
            e = self.embedding(ids)[:, None].expand(-1, x.shape[1], -1)  # (B, L, id_dim)
            x = torch.cat([x[..., :-1], e], dim=-1)
        return self.net(x, state, lengths)

    def loss(self, out: Tensor, y: Tensor, lengths: Tensor | None = None):
        return self.likelihood.loss(out, y, lengths)

    def activate(self, logits: Tensor) -> Tensor:
        return logits
