"""SequenceTagger: one label per step (part-of-speech tags, named entities, segment labels)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from deeprnn.config_io import ConfigError
from deeprnn.data import Vocabulary
from deeprnn.errors import InputError, InputTypeError
from deeprnn.estimators.base import DataAwareEstimator
from deeprnn.estimators.defaults import DataShape
from deeprnn.estimators.inputs import FloatSequences, encode_labels, fit_labels, label_list
from deeprnn.frontend import ConvFrontend, frontend_kwargs


def _holds_tokens(X: Any) -> bool:
    """True when X looks like token lists: its first sequence holds strings."""
    if isinstance(X, np.ndarray) and X.dtype != object:
        return X.dtype.kind == "U"
    if not isinstance(X, (list, tuple)) or not X:
        return False
    first = X[0]
    if isinstance(first, str):
        raise InputTypeError(
            "X[0] is a str; pass one list of tokens per sequence, e.g. [s.split() for s in texts]"
        )
    if isinstance(first, np.ndarray):
        return first.dtype.kind == "U"
    return isinstance(first, (list, tuple)) and len(first) > 0 and isinstance(first[0], str)


def _token_lists(X: Any) -> list[list[str]]:
    out = []
    for i, tokens in enumerate(X):
        tokens = tokens.tolist() if isinstance(tokens, np.ndarray) else tokens
        if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) for t in tokens):
            raise InputTypeError(f"X[{i}] must be a list of str tokens like X[0]")
        if not tokens:
            raise InputError(f"X[{i}] is empty (0 tokens); every sequence needs a step")
        out.append(list(tokens))
    return out


def _tag_lists(y: Any, seqs: list[np.ndarray]) -> list[list]:
    """One label list per sequence, each as long as its sequence."""
    if isinstance(y, str) or not hasattr(y, "__len__"):
        raise InputTypeError(f"y must be a list of label lists, got {type(y).__name__}")
    if len(y) != len(seqs):
        raise InputError(f"y has {len(y)} label lists but X has {len(seqs)} sequences")
    out = []
    for i, (tags, s) in enumerate(zip(y, seqs)):
        tags = label_list(tags, f"y[{i}]")
        if len(tags) != len(s):
            raise InputError(
                f"y[{i}] has {len(tags)} labels but X[{i}] has {len(s)} steps; "
                "give one label per step"
            )
        out.append(tags)
    return out


@dataclass(eq=False, repr=False, kw_only=True)
class SequenceTagger(FloatSequences, DataAwareEstimator):
    """Label every step of a sequence.

    `fit(X, y)`: X a list of token lists (words: embedded through a vocabulary built from
    the training tokens, unknown ones become `<unk>`) or of float arrays (T_i, F) / (T_i,)
    (scaled per feature when `standardize`); y one list of labels per sequence, as long as
    it (any hashable labels). `predict` returns one label array per sequence,
    `predict_proba` one (T_i, K) array per sequence, `score` the accuracy over all steps.
    Bidirectional by default: a step's label may depend on what follows it.
    Args (besides RNNEstimator's): min_freq, max_size, embedding_dim (token inputs),
    standardize (float inputs). Learned: model_, fold_models_, classes_, input_kind_ ("tokens" |
    "features"), vocab_ or n_features_in_ and input_scaler_, defaults_, history_.
    Arguments left as None / "auto" are chosen from the data (`defaults_` says what and why);
    the front end stays off unless given (it must keep the length).
    """

    bidirectional: bool | None = None  # None: on (a tag may depend on the steps after it)
    min_freq: int = 1  # tokens seen fewer times in training become <unk>
    max_size: int | None = None  # most vocabulary entries, <pad> and <unk> included
    embedding_dim: int = 64  # width of the token vectors
    standardize: bool = True  # scale float features with their training mean and std

    _learned = ("classes_", "input_kind_", "vocab_", "n_features_in_", "input_scaler_",
                "defaults_")  # fmt: skip

    def _encode_inputs(self, X: Any, fitting: bool) -> list[np.ndarray]:
        if not fitting:
            check_is_fitted(self, "model_")
        kind = "tokens" if _holds_tokens(X) else "features"
        if fitting:
            self.input_kind_ = kind
        elif kind != self.input_kind_:
            raise InputError(f"X holds {kind} but the tagger was fitted on {self.input_kind_}")
        if kind == "features":
            if fitting:
                self.vocab_ = None
            return super()._encode_inputs(X, fitting)
        tokens = _token_lists(X)
        if fitting:
            self.vocab_ = Vocabulary.build(tokens, self.min_freq, self.max_size)
            self.n_features_in_ = self.input_scaler_ = None
        return [np.asarray(self.vocab_.encode(t), dtype=np.int64) for t in tokens]

    def _input_spec(self) -> dict[str, Any]:
        if self.input_kind_ == "features":
            return super()._input_spec()
        return {"n_inputs": self.embedding_dim, "vocab_size": len(self.vocab_)}

    def fit(self, X: Any, y: Any) -> SequenceTagger:
        """Learn from sequences X and their per-step labels y; returns self."""
        self._check_params()
        spec = None if self.frontend == "auto" else frontend_kwargs(self.frontend)
        if spec is not None and not ConvFrontend(1, **spec).keeps_length:
            raise ConfigError(
                "frontend: a tagger gives one label per input step, so its front end must keep "
                "the length: stride 1, pool 1 and padding 'same'"
            )
        seqs = self._encode_inputs(X, fitting=True)
        tags = _tag_lists(y, seqs)
        flat = [t for seq in tags for t in seq]
        self.classes_, codes = fit_labels(flat, len(flat))
        per_seq = np.split(codes, np.cumsum([len(s) for s in seqs])[:-1])
        shape = DataShape.of(seqs, len(self.classes_), self.input_kind_ == "tokens")
        self._choose_defaults(shape, frontend_ok=False, pooled=False)
        spec = {**self._input_spec(), "n_outputs": len(self.classes_), "pooling": "every",
                "activation": "softmax"}  # fmt: skip
        self._fit_sequences(seqs, per_seq, "tagging", spec, per_step=True)
        return self

    def predict_proba(self, X: Any) -> list[np.ndarray]:
        """One (T_i, K) array of label probabilities per sequence (columns as `classes_`)."""
        return self._outputs(self._encode_inputs(X, fitting=False), per_step=True)

    def predict(self, X: Any) -> list[np.ndarray]:
        """One array of T_i labels per sequence."""
        return [self.classes_[p.argmax(axis=1)] for p in self.predict_proba(X)]

    def score(self, X: Any, y: Any) -> float:
        """Accuracy over all steps; labels unseen at fit time raise InputError naming them."""
        seqs = self._encode_inputs(X, fitting=False)
        flat = [t for seq in _tag_lists(y, seqs) for t in seq]
        codes = encode_labels(self.classes_, flat)
        probs = self._outputs(seqs, per_step=True)
        return float(np.mean(np.concatenate([p.argmax(axis=1) for p in probs]) == codes))
