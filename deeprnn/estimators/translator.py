"""Seq2SeqTranslator: strings (or token lists) to strings with an attention encoder-decoder.

    fit(sources, targets)    teacher forcing, label smoothing, early stopping on a holdout
    predict(sources)         beam search (width `beam`; 1: greedy) -> translations
    score(sources, targets)  corpus BLEU (sacrebleu); exact_match / evaluate for the rest

The network is `deeprnn.seq2seq.Seq2Seq`: a DeepRNN encoder (the estimator's body
arguments: cell, num_layers, hidden_size, bidirectional, layer_norm, ...) and a
unidirectional DeepRNN decoder of `decoder_layers` layers with attention.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from deeprnn.data.text import PAD, UNK, Tokenizer, Vocabulary
from deeprnn.errors import DeepRNNError, InputError, InputTypeError, check_choice
from deeprnn.estimators.base import BODY, RNNEstimator
from deeprnn.estimators.inputs import python_value
from deeprnn.seq2seq import EOS_ID, PAD_ID, Hypothesis, Seq2Seq, beam_search, greedy
from deeprnn.seq2seq.export import export_seq2seq
from deeprnn.stack import DeepRNN
from deeprnn.train.losses import IGNORE_INDEX

BOS, EOS = "<s>", "</s>"
DECODE_BATCH = 64  # sources decoded together (sorted by length, so little padding)
BUCKET = 50  # batches per shuffled chunk that is sorted by length (less padding)


def token_lists(X: Any, name: str, tokenizer: Tokenizer) -> tuple[list[list[str]], bool]:
    """(tokens per item, whether the items were strings); empty items are an error."""
    if isinstance(X, str):
        raise InputTypeError(f"{name} must be a list of strings, got one str; wrap it: [text]")
    if not hasattr(X, "__len__") or isinstance(X, dict):
        raise InputTypeError(f"{name} must be a list of strings or token lists, "
                             f"got {type(X).__name__}")  # fmt: skip
    items = list(X)
    if not items:
        raise InputError(f"{name} is empty; expected at least one item")
    out, text = [], isinstance(items[0], str)
    for i, item in enumerate(items):
        if isinstance(item, str) != text:
            raise InputTypeError(f"{name} mixes strings and token lists (item {i})")
        if text:
            tokens = tokenizer.tokenize(item)
        elif isinstance(item, (list, tuple)) and all(isinstance(t, str) for t in item):
            tokens = list(item)
        else:
            raise InputTypeError(
                f"{name}[{i}] must be a str or a list of str tokens, got {type(item).__name__}"
            )
        if not tokens:
            raise InputError(f"{name}[{i}] is empty ({item!r}); every item needs at least "
                             "one token: drop or fill empty pairs")  # fmt: skip
        out.append(tokens)
    return out, text


class PairBatches:
    """Re-iterable mini-batches `(x (B, S), source lengths (B,), y (B, T))` of id pairs:
    x padded with <pad>, y ending in </s> and padded with -100 (the loss ignores it).
    Shuffled from seed + epoch, chunks of BUCKET batches sorted by source length."""

    def __init__(self, sources: list[np.ndarray], targets: list[np.ndarray], batch_size: int,
                 shuffle: bool, seed: int = 0):  # fmt: skip
        self.sources, self.targets = sources, targets
        self.batch_size, self.shuffle, self.seed, self.epoch = batch_size, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.sources) // self.batch_size)

    def _order(self) -> list[np.ndarray]:
        n, b = len(self.sources), self.batch_size
        if not self.shuffle:
            return [np.arange(i, min(n, i + b)) for i in range(0, n, b)]
        rng = np.random.default_rng([self.seed, self.epoch])
        order, batches = rng.permutation(n), []
        for start in range(0, n, b * BUCKET):
            chunk = order[start : start + b * BUCKET]
            chunk = chunk[np.argsort([len(self.sources[i]) for i in chunk], kind="stable")]
            batches += [chunk[i : i + b] for i in range(0, len(chunk), b)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self):
        self.epoch += 1
        for idx in self._order():
            yield pad_pairs([self.sources[i] for i in idx], [self.targets[i] for i in idx])


def pad_pairs(sources: list[np.ndarray], targets: list[np.ndarray] | None):
    """(x, lengths, y) tensors of one batch; y is None without targets."""
    lengths = torch.tensor([len(s) for s in sources], dtype=torch.int64)
    x = torch.full((len(sources), int(lengths.max())), PAD_ID, dtype=torch.int64)
    for i, s in enumerate(sources):
        x[i, : len(s)] = torch.as_tensor(s)
    if targets is None:
        return x, lengths, None
    y = torch.full((len(targets), max(len(t) for t in targets)), IGNORE_INDEX, dtype=torch.int64)
    for i, t in enumerate(targets):
        y[i, : len(t)] = torch.as_tensor(t)
    return x, lengths, y


def import_sacrebleu():
    """The sacrebleu module, or a DeepRNNError saying how to install it."""
    try:
        import sacrebleu
    except ImportError:
        raise DeepRNNError(
            "BLEU is computed by sacrebleu, which is not installed: pip install sacrebleu "
            "(in a deeprnn checkout: pip install -e '.[translate]'); exact_match() needs nothing"
        ) from None
    return sacrebleu


def translation_scores(hyps: list[str], refs: list[str], bleu: bool = True) -> dict[str, float]:
    """{"exact_match"} (same words, 0-1) and, with `bleu`, sacrebleu's corpus "bleu" and
    "chrf" (0-100, its default 13a tokenisation) of translations against references."""
    out = {"exact_match": float(np.mean([h.split() == r.split() for h, r in zip(hyps, refs)]))}
    if bleu:
        sacrebleu = import_sacrebleu()
        out["bleu"] = float(sacrebleu.corpus_bleu(hyps, [refs]).score)
        out["chrf"] = float(sacrebleu.corpus_chrf(hyps, [refs]).score)
    return out


@dataclass(eq=False, repr=False, kw_only=True)
class Seq2SeqTranslator(RNNEstimator):
    """Sequence-to-sequence translation with attention (Luong 2015; GNMT's building blocks).

    `fit(X, y)`: X source strings (tokenised by `level`) or token lists, y target strings
    (`target_level`) or token lists; each side has its own vocabulary, built from the
    training pairs. Targets end in </s>; training is teacher-forced with `label_smoothing`
    (and `scheduled_sampling`), early-stopped on a `validation_fraction` holdout.
    `predict(X, beam=None)`: one translation per source (strings when y was strings),
    decoded by beam search of width `beam` (1: greedy) up to `max_length` tokens.
    `translate(X)`: (translation tokens, attention (steps, S), source tokens) per source.
    `score(X, y)`: corpus BLEU (sacrebleu, an optional extra); `exact_match(X, y)`: the
    share translated exactly; `evaluate(X, y)`: both (and chrF) as a dict.
    Source tokens unseen at fit time raise InputError naming them.
    Args (besides RNNEstimator's body and training arguments, which configure the encoder):
    level, target_level, lower, embedding_dim, decoder_layers, attention ("general" | "dot"
    | "additive"), input_feeding, bridge, scheduled_sampling, label_smoothing, beam,
    length_penalty, max_length. Learned: model_, source_vocab_, target_vocab_,
    max_length_, target_text_, history_.
    """

    level: str = "char"  # source tokens: "char" | "word"
    target_level: str | None = None  # target tokens (None: as level)
    lower: bool = False  # lower-case both sides first
    embedding_dim: int = 64  # width of the source and target token vectors
    hidden_size: int | list[int] = 128  # units per encoder (and decoder) layer
    bidirectional: bool = True  # the encoder reads the source both ways
    decoder_layers: int | None = None  # depth of the decoder (None: num_layers)
    attention: str = "general"  # "general" | "dot" | "additive"
    input_feeding: bool = True  # feed the last attentional vector into the next step
    bridge: bool = True  # start the decoder from the encoder's final state (else zeros)
    scheduled_sampling: float = 0.0  # p of feeding back the model's own token in training
    label_smoothing: float = 0.1  # mix this much of a uniform target into the loss
    beam: int = 4  # beam width of predict (1: greedy)
    length_penalty: float = 0.0  # GNMT's alpha: > 0 favours longer translations
    max_length: int | None = None  # most target tokens (None: 2 x longest target + 10)
    epochs: int = 30
    batch_size: int = 64

    _learned = ("source_vocab_", "target_vocab_", "max_length_", "target_text_")

    def _tokenizers(self) -> tuple[Tokenizer, Tokenizer]:
        check_choice("level", self.level, ("char", "word"))
        target = self.level if self.target_level is None else self.target_level
        check_choice("target_level", target, ("char", "word"))
        return Tokenizer(self.level, self.lower), Tokenizer(target, self.lower)

    def _check_translator_params(self) -> None:
        self._check_params()
        if python_value(self.frontend) is not None:
            raise InputError("Seq2SeqTranslator reads tokens: frontend must be None")
        check_choice("attention", self.attention, ("general", "dot", "additive"))
        for name in ("beam", "embedding_dim"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name} must be an int >= 1, got {v!r}")
        if self.max_length is not None and (isinstance(self.max_length, bool)
                                            or not isinstance(self.max_length, int)
                                            or self.max_length < 1):  # fmt: skip
            raise InputError(f"max_length must be None or an int >= 1, got {self.max_length!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise InputError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing!r}")

    def _build_model(self, source_vocab: int, target_vocab: int) -> Seq2Seq:
        """Embeddings -> DeepRNN encoder; a DeepRNN decoder fed [token; attentional vector]."""
        encoder = DeepRNN(self.embedding_dim, **{k: self._arg(k) for k in BODY})
        hidden = self._arg("hidden_size")
        width = hidden[-1] if isinstance(hidden, list) else hidden
        feed = width if self.input_feeding else 0
        decoder = DeepRNN(
            self.embedding_dim + feed, hidden, self.decoder_layers or self._arg("num_layers"),
            cell=self._arg("cell"), nonlinearity=self.nonlinearity, residual=self.residual,
            layer_norm=self.layer_norm, dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout, bias=self.bias,
        )  # fmt: skip
        return Seq2Seq(encoder, decoder, source_vocab, target_vocab, self.attention,
                       self.input_feeding, self.bridge, self.scheduled_sampling)  # fmt: skip

    def fit(self, X: Any, y: Any) -> Seq2SeqTranslator:
        """Learn to translate the sources X into the targets y; returns self."""
        self._check_translator_params()
        source_tok, target_tok = self._tokenizers()
        sources, _ = token_lists(X, "X", source_tok)
        targets, self.target_text_ = token_lists(y, "y", target_tok)
        if len(sources) != len(targets):
            raise InputError(f"X has {len(sources)} sources but y has {len(targets)} targets; "
                             "pass one target per source")  # fmt: skip
        self.source_vocab_ = Vocabulary.build(sources)
        kept = Vocabulary.build(targets).id_to_token[2:]
        self.target_vocab_ = Vocabulary([PAD, UNK, BOS, EOS, *(t for t in kept if t not in
                                                                (BOS, EOS))])  # fmt: skip
        src = [np.asarray(self.source_vocab_.encode(s), dtype=np.int64) for s in sources]
        tgt = [np.asarray(self.target_vocab_.encode(t) + [EOS_ID], dtype=np.int64)
               for t in targets]  # fmt: skip
        self.max_length_ = self.max_length or 2 * max(len(t) for t in tgt) + 10
        train_idx, val_idx = self._holdout(len(src))
        batch, seed = self._arg("batch_size"), self.seed

        def loader(idx, shuffle):
            return PairBatches([src[i] for i in idx], [tgt[i] for i in idx], batch, shuffle, seed)

        val = None if val_idx is None else loader(val_idx, False)
        spec = {"source_vocab": len(self.source_vocab_), "target_vocab": len(self.target_vocab_)}
        self._train(spec, "seq2seq", loader(train_idx, True), val,
                    label_smoothing=float(self.label_smoothing))  # fmt: skip
        return self

    def _source_ids(self, X: Any) -> tuple[list[np.ndarray], list[list[str]]]:
        check_is_fitted(self, "model_")
        sources, _ = token_lists(X, "X", self._tokenizers()[0])
        vocab = self.source_vocab_
        for i, tokens in enumerate(sources):
            unknown = sorted({t for t in tokens if t not in vocab})
            if unknown:
                raise InputError(
                    f"X[{i}] holds token(s) {unknown[:5]} never seen in the training sources; "
                    "the model has no vectors for them: map or drop them, or refit with them"
                )
        return [np.asarray(vocab.encode(s), dtype=np.int64) for s in sources], sources

    def translate(self, X: Any, beam: int | None = None) -> list[tuple[list[str], np.ndarray,
                                                                       list[str]]]:  # fmt: skip
        """(translation tokens, attention weights (target steps, source steps), source
        tokens) for each source, decoded by beam search (width `beam`, default self.beam)."""
        ids, sources = self._source_ids(X)
        width = self.beam if beam is None else beam
        order = np.argsort([len(s) for s in ids], kind="stable")
        hyps: list[Hypothesis | None] = [None] * len(ids)
        device = next(self.model_.parameters()).device
        self.model_.eval()
        for start in range(0, len(ids), DECODE_BATCH):
            idx = order[start : start + DECODE_BATCH]
            x, lengths, _ = pad_pairs([ids[i] for i in idx], None)
            x = x.to(device)
            if width == 1:
                out = greedy(self.model_, x, lengths, self.max_length_)
            else:
                out = beam_search(self.model_, x, lengths, width, self.max_length_,
                                  self.length_penalty)  # fmt: skip
            for i, h in zip(idx, out):
                hyps[i] = h
        words = self.target_vocab_.id_to_token
        return [([words[t] for t in h.tokens], h.attention, s) for h, s in zip(hyps, sources)]

    def predict(self, X: Any, beam: int | None = None) -> list:
        """One translation per source: strings when fit saw target strings, else token lists."""
        joiner = self._tokenizers()[1]
        out = [tokens for tokens, _, _ in self.translate(X, beam)]
        return [joiner.join(t) for t in out] if self.target_text_ else out

    def export(self, path: str | os.PathLike, format: str = "onnx", lengths: bool = True) -> Path:
        """Write the folder `path`: encoder and decoder_step graphs ("onnx" or "torchscript",
        see `deeprnn.seq2seq.export`) and seq2seq.json with both vocabularies and the
        tokenisation, so a runtime without deeprnn can encode, decode and detokenise."""
        check_is_fitted(self, "model_")
        target = self.level if self.target_level is None else self.target_level
        meta = {"source_tokens": self.source_vocab_.id_to_token,
                "target_tokens": self.target_vocab_.id_to_token, "level": self.level,
                "target_level": target, "lower": self.lower,
                "max_length": self.max_length_}  # fmt: skip
        return export_seq2seq(self.model_, path, format, meta)

    def _texts(self, X: Any, y: Any, beam: int | None) -> tuple[list[str], list[str]]:
        """(translations of X, references y) as target strings."""
        hyps = self.predict(X, beam)
        if isinstance(y, str) or not hasattr(y, "__len__") or len(y) != len(hyps):
            got = "one str" if isinstance(y, str) else len(y) if hasattr(y, "__len__") else y
            raise InputError(f"y must hold one reference per source ({len(hyps)}), got {got}")
        joiner = self._tokenizers()[1]
        return ([h if isinstance(h, str) else joiner.join(h) for h in hyps],
                [r if isinstance(r, str) else joiner.join(r) for r in y])  # fmt: skip

    def exact_match(self, X: Any, y: Any, beam: int | None = None) -> float:
        """The share of sources translated exactly into their reference (same words)."""
        return translation_scores(*self._texts(X, y, beam), bleu=False)["exact_match"]

    def evaluate(self, X: Any, y: Any, beam: int | None = None) -> dict[str, float]:
        """{"bleu", "chrf", "exact_match"} of the translations of X against y (sacrebleu's
        corpus scores, 0-100; exact match 0-1)."""
        return translation_scores(*self._texts(X, y, beam))

    def score(self, X: Any, y: Any) -> float:
        """Corpus BLEU (0-100, sacrebleu) of the translations of X against the references y."""
        return self.evaluate(X, y)["bleu"]
