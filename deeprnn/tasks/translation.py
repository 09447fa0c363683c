"""Translation: a Seq2SeqTranslator scored by BLEU / chrF / exact match on a held-out part,
against copying the source and a retrieval baseline (the translation of the most similar
training source), with sample translations and attention heat maps for the report."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np

from deeprnn import plots
from deeprnn.config import RunConfig
from deeprnn.data import load_dataset
from deeprnn.data.loaders import decode_error
from deeprnn.errors import DeepRNNError, InputError
from deeprnn.estimators import Seq2SeqTranslator
from deeprnn.estimators.translator import translation_scores
from deeprnn.tasks.common import Outcome, estimator_for, read_lines, test_count

# The option of each bundled translation set that `data.target` selects.
TARGET_OPTION = {"numbers_words": "language", "dates": "locale"}
HEATMAPS = 3  # attention pictures in a report


def _read_pairs(path: Path, column: str | None, target: str | None, encoding: str):
    """(sources, targets) of a .tsv / .csv file with a header: `column` and `target` name
    the columns (default: the first two)."""
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        with open(path, newline="", encoding=encoding) as f:
            rows = list(csv.reader(f, delimiter=delimiter))
    except FileNotFoundError:
        raise InputError(f"data.path {path.resolve()}: no such file") from None
    except UnicodeDecodeError as err:
        raise decode_error(path, encoding, err) from err
    if len(rows) < 2:
        raise InputError(f"{path}: expected a header line and at least one pair")
    header = rows[0]
    names = [column or header[0], target or (header[1] if len(header) > 1 else None)]
    for name in names:
        if name not in header:
            raise InputError(f"{path}: no column {name!r}; columns are {header} (set data."
                             "column to the source and data.target to the target)")  # fmt: skip
    a, b = header.index(names[0]), header.index(names[1])
    short = next((i for i, r in enumerate(rows[1:], 2) if len(r) <= max(a, b)), None)
    if short is not None:
        raise InputError(f"{path}: line {short} has fewer than {max(a, b) + 1} columns")
    return [r[a] for r in rows[1:]], [r[b] for r in rows[1:]]


def load_pairs(cfg: RunConfig):
    """(X_train, y_train, X_test, y_test): lists of source and target strings."""
    data = cfg.data
    if data.dataset is not None:
        option = TARGET_OPTION.get(data.dataset)
        if option is None:
            raise InputError(f"dataset {data.dataset!r} holds no translation pairs; "
                             f"translation sets: {sorted(TARGET_OPTION)}")  # fmt: skip
        ds = load_dataset(data.dataset, **({option: data.target} if data.target else {}))
        return list(ds.X_train), list(ds.y_train), list(ds.X_test), list(ds.y_test)
    X, y = _read_pairs(Path(data.path), data.column, data.target, data.encoding)
    order = np.random.default_rng(0).permutation(len(X))
    k = test_count(data, len(X))
    test, train = np.sort(order[:k]), np.sort(order[k:])
    return [X[i] for i in train], [y[i] for i in train], [X[i] for i in test], [y[i] for i in test]


def retrieval(X_train: list[str], y_train: list[str], X: list[str]) -> list[str]:
    """The translation of the most similar training source (cosine of character 1-3 gram
    TF-IDF): what a lookup table with fuzzy matching gives."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3)).fit(X_train)
    sims = vec.transform(X) @ vec.transform(X_train).T
    best = np.asarray(sims.argmax(axis=1)).ravel()
    return [y_train[i] for i in best]


def text_scores(hyps: list[str], refs: list[str]) -> dict[str, float]:
    """Exact match, and BLEU / chrF where sacrebleu is installed (an optional extra)."""
    return translation_scores(hyps, refs, bleu=importlib.util.find_spec("sacrebleu") is not None)


def run(cfg: RunConfig, run_dir: Path, fixed: dict):
    """Fit on the training pairs; score the held-out ones against the baselines."""
    X_tr, y_tr, X_te, y_te = load_pairs(cfg)
    est = estimator_for(Seq2SeqTranslator, cfg.model, **fixed).fit(X_tr, y_tr)
    decoded = est.translate(X_te)
    joiner = est._tokenizers()[1]
    hyps = [joiner.join(tokens) for tokens, _, _ in decoded]
    metrics = text_scores(hyps, y_te)
    notes = (
        []
        if "bleu" in metrics
        else ["BLEU / chrF left out: sacrebleu is not installed (pip install sacrebleu).", ""]
    )
    notes += ["## Sample translations", "", "| source | reference | translation |",
              "|---|---|---|"]  # fmt: skip
    shown = np.linspace(0, len(X_te) - 1, min(len(X_te), 3 * cfg.samples)).astype(int)
    notes += [f"| {X_te[i]} | {y_te[i]} | {hyps[i]} |" for i in shown]
    pictures = [
        plots.attention(decoded[i][1], decoded[i][2], decoded[i][0],
                        run_dir / "plots" / f"attention_{k}.png", f"Attention: {X_te[i]}")
        for k, i in enumerate(shown[:HEATMAPS])
    ]  # fmt: skip
    nearest = retrieval(X_tr, y_tr, X_te)
    baselines = {"copy source": text_scores(X_te, y_te),
                 "nearest training source": text_scores(nearest, y_te)}  # fmt: skip
    return est, Outcome(metrics=metrics, baselines=baselines, plots=pictures, notes=notes)


def evaluate(cfg: RunConfig, est: Seq2SeqTranslator) -> dict[str, float]:
    """BLEU / chrF / exact match on the held-out pairs of the configured data."""
    _, _, X_te, y_te = load_pairs(cfg)
    return text_scores(est.predict(X_te), y_te)


def predict_file(est: Seq2SeqTranslator, path: Path) -> list[list]:
    """Rows (source, translation) for every non-empty line of a text file."""
    lines = read_lines(path, "translate")
    try:
        return [["source", "translation"], *zip(lines, est.predict(lines))]
    except DeepRNNError as err:
        raise InputError(f"{path}: {err}") from err
