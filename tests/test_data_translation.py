"""Bundled translation sets (numbers_words, dates): sizes, splits, contents re-derived by
hand-written rules, errors, packaging, and the generator script reproducing the files."""

import datetime
import importlib.util
import subprocess
import sys
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

import pytest

from deeprnn.data import Tokenizer, Vocabulary, list_datasets, load_dataset
from deeprnn.data.datasets import DATE_LOCALES, NUMBER_LANGUAGES

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "make_translation_data.py"
FOLDER = files("deeprnn.data").joinpath("files", "translation")
FILES = [f"{stem}_{part}.tsv" for stem in ("numbers_words", "dates") for part in ("train", "test")]
PINNED = {"num2words": "0.5.14", "babel": "2.19.0"}  # as in the script and SOURCES.md

SETS = [("numbers_words", "language", NUMBER_LANGUAGES, 2000, 500)] + [
    ("dates", "locale", DATE_LOCALES, 1500, 500)
]
CASES = [
    (name, option, value, n_train, n_test)
    for name, option, values, n_train, n_test in SETS
    for value in values
]


@pytest.mark.parametrize("name, option, value, n_train, n_test", CASES)
def test_sizes_types_and_disjoint_splits(name, option, value, n_train, n_test):
    ds = load_dataset(name, **{option: value})
    assert ds[option] == value and ds.task == "translation"
    assert len(ds.X_train) == len(ds.y_train) == n_train
    assert len(ds.X_test) == len(ds.y_test) == n_test
    for texts in (ds.X_train, ds.y_train, ds.X_test, ds.y_test):
        assert all(isinstance(t, str) and t and t == t.strip() for t in texts)
    assert len(set(ds.X_train)) == n_train and len(set(ds.X_test)) == n_test
    assert not set(ds.X_train) & set(ds.X_test)
    # Every character of a test target is seen in training: a char vocabulary has no <unk>.
    tok = Tokenizer(level="char", lower=False)
    vocab = Vocabulary.build([tok.tokenize(t) for t in ds.y_train])
    assert all(1 not in vocab.encode(tok.tokenize(t)) for t in ds.y_test)


def test_records_and_defaults():
    by_name = {r["name"]: r for r in list_datasets()}
    for name, option, values, n_train, n_test in SETS:
        record = by_name[name]
        assert record["task"] == "translation"
        assert record["description"].startswith("GENERATED")
        assert f"{n_train + n_test:,} pairs" in record["size"]
        assert f"({n_train:,} train, {n_test:,} test)" in record["size"]
        assert "make_translation_data.py" in record["source"]
        assert load_dataset(name)[option] == values[0]  # the default
    assert load_dataset("numbers_words").language == "en"
    assert load_dataset("dates").locale == "en_US"


def test_languages_share_sources():
    # A parallel corpus: the same sources, in the same order, whatever the target.
    en = load_dataset("numbers_words")
    for lang in NUMBER_LANGUAGES:
        ds = load_dataset("numbers_words", language=lang)
        assert ds.X_train == en.X_train and ds.X_test == en.X_test
    us = load_dataset("dates")
    assert all(load_dataset("dates", locale=loc).X_test == us.X_test for loc in DATE_LOCALES)


_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def _english(n: int) -> str:
    """num2words' British English cardinal, for 0 <= n < 1,000,000 (written from scratch)."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("-" + _ONES[n % 10] if n % 10 else "")
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + (" and " + _english(rest) if rest else "")
    rest = n % 1000
    joint = ", " if rest >= 100 else " and "
    return _english(n // 1000) + " thousand" + (joint + _english(rest) if rest else "")


def test_numbers_sources_and_english_words():
    ds = load_dataset("numbers_words")
    train = [int(x) for x in ds.X_train]
    test = [int(x) for x in ds.X_test]
    assert [str(n) for n in train + test] == ds.X_train + ds.X_test  # canonical digits
    assert train == sorted(train) and test == sorted(test)
    assert train[:100] == list(range(100))  # every number 0-99 is in training
    assert min(test) >= 100 and max(train + test) <= 999_999
    for digits in range(3, 7):  # every length 3-6 common in both parts (3 digits: only 900)
        assert sum(len(x) == digits for x in ds.X_train) > 300
        assert sum(len(x) == digits for x in ds.X_test) > 100
    pairs = dict(zip(ds.X_train + ds.X_test, ds.y_train + ds.y_test))
    assert pairs["21"] == "twenty-one" and pairs["0"] == "zero"
    assert all(_english(int(x)) == y for x, y in pairs.items())


def test_numbers_other_languages_known_words():
    known = {
        "fr": {
            "21": "vingt et un",
            "71": "soixante et onze",
            "80": "quatre-vingts",
            "99": "quatre-vingt-dix-neuf",
        },
        "de": {"1": "eins", "21": "einundzwanzig", "17": "siebzehn", "30": "dreißig"},
        "es": {"1": "uno", "16": "dieciséis", "21": "veintiuno", "55": "cincuenta y cinco"},
    }
    for lang, words in known.items():
        ds = load_dataset("numbers_words", language=lang)
        pairs = dict(zip(ds.X_train, ds.y_train))
        assert {x: pairs[x] for x in words} == words
    de = load_dataset("numbers_words", language="de")
    assert all(" " not in y for y in de.y_train + de.y_test)  # German writes one word
    fr = load_dataset("numbers_words", language="fr")
    # French: "mille" is never plural and never "un mille".
    big = [(int(x), y) for x, y in zip(fr.X_test, fr.y_test) if int(x) >= 1000]
    assert big and all("milles" not in y and not y.startswith("un mille") for _, y in big)


_MONTHS = {
    "en_US": "January February March April May June July August September October November "
    "December",
    "fr_FR": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "de_DE": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
    "es_ES": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre "
    "diciembre",
}
_LONG = {  # CLDR's long date pattern of each locale, as a format string
    "en_US": "{month} {day}, {year}",
    "fr_FR": "{day} {month} {year}",
    "de_DE": "{day}. {month} {year}",
    "es_ES": "{day} de {month} de {year}",
}


@pytest.mark.parametrize("locale", DATE_LOCALES)
def test_dates_re_derived(locale):
    ds = load_dataset("dates", locale=locale)
    months = _MONTHS[locale].split()
    for part_x, part_y in ((ds.X_train, ds.y_train), (ds.X_test, ds.y_test)):
        days = [datetime.date.fromisoformat(x) for x in part_x]
        assert [d.isoformat() for d in days] == part_x and days == sorted(days)
        assert days[0] >= datetime.date(1900, 1, 1) and days[-1] <= datetime.date(2099, 12, 31)
        expected = [
            _LONG[locale].format(day=d.day, month=months[d.month - 1], year=d.year) for d in days
        ]
        assert part_y == expected
    train_months = {datetime.date.fromisoformat(x).month for x in ds.X_train}
    train_days = {datetime.date.fromisoformat(x).day for x in ds.X_train}
    assert train_months == set(range(1, 13)) and train_days == set(range(1, 32))


def test_unknown_language_or_locale_names_the_choices():
    with pytest.raises(
        ValueError,
        match=r"numbers_words: language must be one of \['en', 'fr', 'de', 'es'\], got 'it'",
    ):
        load_dataset("numbers_words", language="it")
    with pytest.raises(
        ValueError,
        match=r"dates: locale must be one of \['en_US', 'fr_FR', 'de_DE', 'es_ES'\], got 'en'",
    ):
        load_dataset("dates", locale="en")
    with pytest.raises(
        ValueError, match=r"'dates' does not take options \['language'\]; it takes \['locale'\]"
    ):
        load_dataset("dates", language="en")


def test_files_are_tsv_small_credited_and_packaged():
    sources = files("deeprnn.data").joinpath("files", "SOURCES.md").read_text(encoding="utf-8")
    assert "num2words" in sources and "LGPL" in sources and "CLDR" in sources
    assert "Unicode License" in sources and "BSD-3-Clause" in sources
    total = 0
    for name in FILES:
        data = FOLDER.joinpath(name).read_bytes()
        total += len(data)
        text = data.decode("utf-8")
        assert text.endswith("\n") and "\r" not in text
        header, *rows = text.splitlines()
        width = len(header.split("\t"))
        assert width == 5 and all(len(r.split("\t")) == width for r in rows)
    assert total < 700_000
    # The files must reach a wheel, not only an editable install: setuptools globs each
    # package-data pattern in the package folder, so do the same.
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = config["tool"]["setuptools"]["package-data"]["deeprnn.data"]
    shipped = {p.name for g in globs for p in (ROOT / "deeprnn" / "data").glob(g)}
    assert set(FILES) <= shipped, (
        f"pyproject.toml [tool.setuptools.package-data] 'deeprnn.data' {globs} does not ship "
        "files/translation/*.tsv; add that pattern"
    )


def test_script_regenerates_identical_files(tmp_path):
    # Not skipped when the generator's dependencies are missing: CI installs them, and a
    # skip would hide a shipped file that the script no longer reproduces.
    missing = [m for m in PINNED if importlib.util.find_spec(m) is None]
    if missing:
        pytest.fail(f"{missing} not installed: pip install num2words==0.5.14 babel==2.19.0")
    found = {m: version(m) for m in PINNED}
    assert found == PINNED, f"the shipped files come from {PINNED}, found {found}"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == FOLDER.joinpath(name).read_bytes(), name
    assert "numbers_words_train.tsv: 2000 rows" in run.stdout
