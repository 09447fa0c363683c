"""Whole-sequence classifiers: SequenceClassifier (feature sequences), TextClassifier (texts)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.utils.validation import check_is_fitted

from deeprnn.data import Tokenizer, Vocabulary
from deeprnn.errors import InputError
from deeprnn.estimators.base import DataAwareEstimator
from deeprnn.estimators.defaults import DataShape
from deeprnn.estimators.inputs import (
    FloatSequences,
    check_texts,
    encode_labels,
    encode_tokens,
    fit_labels,
)


class UnknownTokensWarning(UserWarning):
    """Texts to predict hold no token the fitted vocabulary knows."""


class _LabelsSequences(ClassifierMixin):
    """fit / predict / predict_proba / score of one label per sequence (softmax head).

    The concrete class supplies `_encode_inputs(X, fitting)` and `_input_spec()`.
    """

    def fit(self, X: Any, y: Any):
        """Learn from sequences X and one label per sequence y (any hashable values);
        returns self. Sets model_, classes_, history_ and the input attributes."""
        self._check_params()
        seqs = self._encode_inputs(X, fitting=True)
        self.classes_, codes = fit_labels(y, len(seqs))
        tokens = isinstance(self, TextClassifier)
        self._choose_defaults(DataShape.of(seqs, len(self.classes_), tokens), not tokens, True)
        spec = {**self._input_spec(), "n_outputs": len(self.classes_),
                "pooling": self._pooling(), "activation": "softmax"}  # fmt: skip
        self._fit_sequences(seqs, codes, "classification", spec, stratify=codes)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """(N, K) class probabilities, columns in the order of `classes_`."""
        return self._outputs(self._encode_inputs(X, fitting=False))

    def predict(self, X: Any) -> np.ndarray:
        """(N,) the most probable label of each sequence."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def score(self, X: Any, y: Any, sample_weight=None) -> float:
        """Accuracy on (X, y); a label of y unseen at fit time raises InputError naming it."""
        check_is_fitted(self, "model_")
        codes = encode_labels(self.classes_, y)
        pred = self.predict_proba(X).argmax(axis=1)
        if len(codes) != len(pred):
            raise InputError(f"y has {len(codes)} labels but X has {len(pred)} sequences")
        return float(accuracy_score(codes, pred, sample_weight=sample_weight))


@dataclass(eq=False, repr=False, kw_only=True)
class SequenceClassifier(_LabelsSequences, FloatSequences, DataAwareEstimator):
    """Label whole sequences of feature vectors (e.g. the speaker of an utterance).

    `fit(X, y)`: X an array (N, T, F) or a list of N arrays (T_i, F) or (T_i,) of any
    lengths; y (N,) labels of any hashable type. `predict` returns labels, `predict_proba`
    (N, K) probabilities ordered as `classes_`, `score` the accuracy.
    Arguments left as None / "auto" are chosen from the data (see `DataAwareEstimator`;
    `defaults_` says what and why).
    Args (besides RNNEstimator's): pooling ("auto" | "last" | "mean" | "attention": how the
    head summarises the outputs over time); standardize (scale each feature by its training
    mean and std); per_sequence (first z-normalise every sequence by its own mean and std
    per feature, as UCR-style data expects: the offset and scale of a sequence are then not
    used). Learned: model_, fold_models_, classes_, n_features_in_, input_scaler_, defaults_,
    history_.
    """

    pooling: str = "auto"  # "auto" (mean) | "last" | "mean" | "attention"
    standardize: bool = True  # scale features with their training mean and std
    per_sequence: bool = False  # z-normalise each sequence on its own first

    _learned = ("classes_", "n_features_in_", "input_scaler_", "defaults_")


@dataclass(eq=False, repr=False, kw_only=True)
class TextClassifier(_LabelsSequences, DataAwareEstimator):
    """Label texts (sentiment, topic, author...): tokens -> embedding -> DeepRNN -> softmax.

    `fit(X, y)`: X a list of strings, y one label per text. The vocabulary is built from
    the training texts; words it lacks become `<unk>` at prediction time. A text with no
    known token still gets a prediction: it is read as `<unk>` tokens (a text with no token
    at all as one `<unk>`), so the prediction rests on what the model learned for `<unk>`,
    which with min_freq = 1 is close to nothing. `score` is the accuracy.
    Args (besides RNNEstimator's): level ("word" | "char"), lower, strip_punctuation (of the
    `deeprnn.data.Tokenizer`), min_freq and max_size (of the `Vocabulary`: rarer words become
    `<unk>`), embedding_dim, max_len (tokens kept per text, the first ones; None: all),
    pooling. Arguments left as None / "auto" are chosen from the data (`defaults_`).
    Learned: model_, fold_models_, classes_, vocab_, defaults_, history_.
    """

    level: str = "word"  # "word" | "char" tokens
    lower: bool = True  # lower-case texts first
    strip_punctuation: bool = False  # drop punctuation tokens
    min_freq: int = 1  # words seen fewer times in training become <unk>
    max_size: int | None = None  # most vocabulary entries, <pad> and <unk> included
    embedding_dim: int = 64  # width of the word vectors
    max_len: int | None = None  # tokens kept per text (None: all)
    pooling: str = "auto"  # "auto" (mean) | "last" | "mean" | "attention"

    _learned = ("classes_", "vocab_", "defaults_")

    def _encode_inputs(self, X: Any, fitting: bool) -> list[np.ndarray]:
        if not fitting:
            check_is_fitted(self, "model_")
        tokenizer = Tokenizer(self.level, self.lower, self.strip_punctuation)
        tokens = [tokenizer.tokenize(t) for t in check_texts(X)]
        if fitting:
            if not any(tokens):
                raise InputError(f"X holds no tokens at all: every text is empty for {tokenizer}")
            self.vocab_ = Vocabulary.build(tokens, self.min_freq, self.max_size)
            if len(self.vocab_) <= 2:
                raise InputError(
                    f"no token is seen min_freq = {self.min_freq} times in X, so the vocabulary "
                    "is empty and every text would read as <unk>; lower min_freq"
                )
        else:
            unknown = sum(1 for t in tokens if all(w not in self.vocab_ for w in t))
            if unknown:
                warnings.warn(
                    f"{unknown} of {len(tokens)} texts have no token the vocabulary knows; "
                    "their predictions rest on <unk> alone",
                    UnknownTokensWarning,
                    stacklevel=4,
                )
        return encode_tokens(self.vocab_, tokens, self.max_len)

    def _input_spec(self) -> dict[str, Any]:
        return {"n_inputs": self.embedding_dim, "vocab_size": len(self.vocab_)}
