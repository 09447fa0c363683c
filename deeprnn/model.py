"""SequenceModel: [embedding] -> recurrent body -> head; what the trainer and estimators fit."""

from __future__ import annotations

from torch import Tensor, nn

from deeprnn.errors import InputError, InputTypeError
from deeprnn.heads import Head


class SequenceModel(nn.Module):
    """A whole network: optional token embedding, a recurrent body, an output head.

    Args:
        body: a `DeepRNN` or `Parallel` (called as `out, state = body(x, state, lengths)`).
        head: a `Head` whose in_features equals the body's output_size.
        embedding: optional `nn.Embedding` applied to integer token ids first.
    Call: `logits, state = model(x, state=None, lengths=None)`; x is (B, T, I) floats, or
    (B, T) token ids with an embedding. Logits are (B, K) or (B, T, K) for per-step heads;
    `model.activate(logits)` applies the head's output activation.
    """

    def __init__(self, body: nn.Module, head: Head, embedding: nn.Embedding | None = None):
        super().__init__()
        expected = {
            "body": (body, nn.Module, "an nn.Module (DeepRNN, Parallel)"),
            "head": (head, Head, "a deeprnn.Head"),
            "embedding": (embedding, (nn.Embedding, type(None)), "nn.Embedding or None"),
        }
        for name, (value, kind, what) in expected.items():
            if not isinstance(value, kind):
                raise InputTypeError(f"{name} must be {what}, got {type(value).__name__}")
        width = getattr(body, "output_size", None)
        if width is not None and width != head.linear.in_features:
            raise InputError(
                f"head in_features ({head.linear.in_features}) must equal the body's "
                f"output_size ({width})"
            )
        self.embedding = embedding
        self.body = body
        self.head = head

    def forward(
        self, x: Tensor, state: list | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, list]:
        if self.embedding is not None:
            if not isinstance(x, Tensor) or x.is_floating_point():
                raise InputTypeError(
                    f"x must be integer token ids (batch, time) for a model with an embedding, "
                    f"got {getattr(x, 'dtype', type(x).__name__)}"
                )
            if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.embedding.num_embeddings):
                raise InputError(
                    f"token ids must lie in [0, {self.embedding.num_embeddings}), got "
                    f"[{int(x.min())}, {int(x.max())}]"
                )
            x = self.embedding(x)
        out, state = self.body(x, state, lengths)
        return self.head.logits(out, lengths), state

    def activate(self, logits: Tensor) -> Tensor:
        """Output activation of the head (softmax / sigmoid / identity)."""
        return self.head.activate(logits)
