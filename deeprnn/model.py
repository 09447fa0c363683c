"""SequenceModel: [embedding] -> [conv front end] -> recurrent body -> head; what the trainer
and estimators fit."""

from __future__ import annotations

from torch import Tensor, nn

from deeprnn.errors import InputError, InputTypeError
from deeprnn.explanation import Explanation
from deeprnn.frontend import ConvFrontend
from deeprnn.heads import Head


class SequenceModel(nn.Module):
    """A whole network: optional token embedding, optional conv front end, a recurrent body,
    an output head.

    Args:
        body: a `DeepRNN` or `Parallel` (called as `out, state = body(x, state, lengths)`).
        head: a `Head` whose in_features equals the body's output_size.
        embedding: optional `nn.Embedding` applied to integer token ids first.
        frontend: optional `ConvFrontend` between the input (or embedding) and the body; its
            shortened lengths are the ones the body and the head's pooling see.
    Call: `logits, state = model(x, state=None, lengths=None)`; x is (B, T, I) floats, or
    (B, T) token ids with an embedding. Logits are (B, K) or (B, T', K) for per-step heads
    (T' = T: per-step heads need a front end that keeps the length);
    `model.activate(logits)` applies the head's output activation.
    """

    def __init__(
        self,
        body: nn.Module,
        head: Head,
        embedding: nn.Embedding | None = None,
        frontend: ConvFrontend | None = None,
    ):
        super().__init__()
        expected = {
            "body": (body, nn.Module, "an nn.Module (DeepRNN, Parallel)"),
            "head": (head, Head, "a deeprnn.Head"),
            "embedding": (embedding, (nn.Embedding, type(None)), "nn.Embedding or None"),
            "frontend": (frontend, (ConvFrontend, type(None)), "a deeprnn.ConvFrontend or None"),
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
        if frontend is not None:
            _check_frontend(frontend, body, head, embedding)
        self.embedding = embedding
        self.frontend = frontend
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
        if self.frontend is not None:
            x, lengths = self.frontend(x, lengths)
        out, state = self.body(x, state, lengths)
        return self.head.logits(out, lengths), state

    def explain(self) -> Explanation:
        """One row per part that runs: the front end's blocks (convolution, norm, pool, length
        rule), then the body's layers (cell, which path runs it, and why); prints as a table."""
        rows = Explanation()
        if self.frontend is not None:
            rows += [{"part": "frontend", **row} for row in self.frontend.explain()]
        if hasattr(self.body, "explain"):
            rows += [{"part": "body", **row} for row in self.body.explain()]
        return rows

    def activate(self, logits: Tensor) -> Tensor:
        """Output activation of the head (softmax / sigmoid / identity)."""
        return self.head.activate(logits)


def _check_frontend(frontend: ConvFrontend, body: nn.Module, head: Head, embedding) -> None:
    """The front end must read the input (or the embedding) and feed the body."""
    if embedding is not None and frontend.in_features != embedding.embedding_dim:
        raise InputError(
            f"frontend in_features ({frontend.in_features}) must equal the embedding's "
            f"embedding_dim ({embedding.embedding_dim})"
        )
    width = getattr(getattr(body, "config", None), "input_size", None)
    if width is not None and width != frontend.out_features:
        raise InputError(
            f"the body's input_size ({width}) must equal the front end's out_features "
            f"({frontend.out_features}, its last entry of channels)"
        )
    if head.pooling == "every" and not frontend.keeps_length:
        raise InputError(
            "a per-step head (pooling='every') needs one output per input step, but the front "
            f"end changes the length ({frontend.length_rule()}); use stride 1, pool 1 and "
            "padding 'same', or a pooling head"
        )
