"""Character language modelling: bits per character on held-out text, against the unigram
and bigram models of the training text, with sample generations for the report."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from deeprnn.config import RunConfig
from deeprnn.data import load_dataset, load_text_file
from deeprnn.errors import InputError
from deeprnn.estimators import CharLanguageModel
from deeprnn.tasks.common import Outcome, estimator_for, test_count


def load_text(cfg: RunConfig) -> str:
    data = cfg.data
    if data.dataset is not None:
        ds = load_dataset(data.dataset)
        if "text" not in ds:
            raise InputError(f"dataset {data.dataset!r} holds no text for a language model")
        return ds["text"]
    return load_text_file(Path(data.path), encoding=data.encoding)


def ngram_bits(train: str, test: str, order: int) -> float:
    """Bits per character of an add-one smoothed unigram (order 1) or bigram (order 2) model."""
    alphabet = set(train) | set(test)
    v = len(alphabet)
    if order == 1:
        counts, total = Counter(train), len(train)
        return float(-np.mean([np.log2((counts[c] + 1) / (total + v)) for c in test[1:]]))
    pairs, firsts = Counter(zip(train, train[1:])), Counter(train[:-1])
    logs = [np.log2((pairs[(a, b)] + 1) / (firsts[a] + v)) for a, b in zip(test, test[1:])]
    return float(-np.mean(logs))


def run(cfg: RunConfig, run_dir: Path, fixed: dict):
    """Train on the start of the text, score the held-out end, write samples."""
    text = load_text(cfg)
    n_test = test_count(cfg.data, len(text))
    train, test = text[:-n_test], text[-n_test:]
    est = estimator_for(CharLanguageModel, cfg.model, **fixed).fit(train)
    # Characters the model never saw have no probability: score the rest, and say so.
    unseen = sorted(c for c in set(test) if c not in est.vocab_)
    known = "".join(c for c in test if c not in unseen)
    bpc = est.bits_per_char(known)
    samples = [
        est.generate(prompt=train[i : i + 20], n=200, random_state=k)
        for k, i in enumerate(np.linspace(0, len(train) - 21, cfg.samples).astype(int))
    ]
    notes = [
        f"Left out of scoring: {len(test) - len(known)} test characters unseen in training.",
        "",
    ]
    notes += ["## Samples", ""]
    for s in samples:
        notes += ["```", s, "```", ""]
    return est, Outcome(
        metrics={"bits_per_char": bpc, "perplexity": float(2**bpc)},
        baselines={
            "unigram": {"bits_per_char": ngram_bits(train, known, 1)},
            "bigram": {"bits_per_char": ngram_bits(train, known, 2)},
        },
        notes=notes,
    )


def evaluate_baselines(cfg: RunConfig) -> dict[str, dict[str, float]]:
    """Unigram and bigram bits per character on the held-out end of the configured text."""
    text = load_text(cfg)
    n_test = test_count(cfg.data, len(text))
    train, test = text[:-n_test], text[-n_test:]
    known = "".join(c for c in test if c in set(train))
    return {"unigram": {"bits_per_char": ngram_bits(train, known, 1)},
            "bigram": {"bits_per_char": ngram_bits(train, known, 2)}}  # fmt: skip


def evaluate(cfg: RunConfig, est: CharLanguageModel) -> dict[str, float]:
    """Bits per character on the held-out end of the configured text."""
    text = load_text(cfg)
    test = text[-test_count(cfg.data, len(text)) :]
    known = "".join(c for c in test if c in est.vocab_)
    bpc = est.bits_per_char(known)
    return {"bits_per_char": bpc, "perplexity": float(2**bpc)}
