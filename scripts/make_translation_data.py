"""Write the bundled translation data: numbers in words and dates in words, several languages.

Regenerate (num2words and babel are needed here only; deeprnn itself reads the files):

    pip install num2words==0.5.14 babel==2.19.0
    python scripts/make_translation_data.py [--out FOLDER]

FOLDER defaults to deeprnn/data/files/translation. Four UTF-8 TSV files, each a header
line and then one row per example, tab-separated, "\\n" line ends; the first column is the
source, every other column its translation into the language the header names (a parallel
corpus: any column can be the target):

    numbers_words_{train,test}.tsv   digits   en fr de es          (num2words, cardinal)
    dates_{train,test}.tsv           iso      en_US fr_FR de_DE es_ES  (babel, format="long")

The output is a function of the seed and of the num2words / babel (CLDR) versions alone:
two runs with the pinned versions give byte-identical files. Other versions may word a few
entries differently, so the script says when they differ from the pinned ones.
"""

from __future__ import annotations

import argparse
import datetime
import random
import sys
from importlib.metadata import version
from pathlib import Path

from babel.core import get_cldr_version
from babel.dates import format_date
from num2words import num2words

SEED = 14  # issue 14
PINNED = {"num2words": "0.5.14", "babel": "2.19.0"}  # the versions the shipped files came from
LANGUAGES = ("en", "fr", "de", "es")
LOCALES = ("en_US", "fr_FR", "de_DE", "es_ES")
N_NUMBERS = (2000, 500)  # (train, test) rows
N_DATES = (1500, 500)
FIRST_DAY, LAST_DAY = datetime.date(1900, 1, 1), datetime.date(2099, 12, 31)
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "deeprnn" / "data" / "files" / "translation"


def _below(rng: random.Random, n: int) -> int:
    """A uniform int in [0, n). Only Random.random() is promised to give the same stream
    on every Python version for a given seed (randrange, sample and shuffle are not)."""
    return int(rng.random() * n)


def _shuffled(rng: random.Random, items: list) -> list:
    """Fisher-Yates on _below, for the same reason."""
    items = list(items)
    for i in range(len(items) - 1, 0, -1):
        j = _below(rng, i + 1)
        items[i], items[j] = items[j], items[i]
    return items


def _numbers(rng: random.Random) -> tuple[list[int], list[int]]:
    """Train and test numbers, disjoint. Train holds every number 0-99 (the words the others
    are built from) and both draw 3- to 6-digit numbers, each length equally often."""
    n_train, n_test = N_NUMBERS
    drawn: dict[int, None] = {}  # an ordered set
    while len(drawn) < n_train + n_test - 100:
        digits = 3 + _below(rng, 4)
        drawn[10 ** (digits - 1) + _below(rng, 9 * 10 ** (digits - 1))] = None
    order = _shuffled(rng, list(drawn))
    return sorted([*range(100), *order[n_test:]]), sorted(order[:n_test])


def _dates(rng: random.Random) -> tuple[list[datetime.date], list[datetime.date]]:
    """Train and test days, disjoint, uniform over FIRST_DAY..LAST_DAY."""
    n_train, n_test = N_DATES
    days = (LAST_DAY - FIRST_DAY).days + 1
    drawn: dict[int, None] = {}
    while len(drawn) < n_train + n_test:
        drawn[_below(rng, days)] = None
    order = [FIRST_DAY + datetime.timedelta(days=d) for d in _shuffled(rng, list(drawn))]
    return sorted(order[n_test:]), sorted(order[:n_test])


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    for row in rows:
        # The loader splits on tabs and str.splitlines(): an empty cell, a tab or any line
        # break splitlines() knows (\x85, \u2028, ...) would shift the rows or columns.
        if any("\t" in cell or cell.splitlines() != [cell] for cell in row):
            raise ValueError(f"{path.name}: a cell of {row!r} is empty or holds a tab or break")
    lines = ["\t".join(header), *("\t".join(row) for row in rows)]
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder to write into")
    out = parser.parse_args(argv).out
    found = {name: version(name) for name in PINNED}
    if found != PINNED:
        print(
            f"warning: found {found}, the shipped files came from {PINNED}; "
            "some entries may be worded differently",
            file=sys.stderr,
        )
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    written = []
    for part, numbers in zip(("train", "test"), _numbers(rng)):
        rows = [[str(n), *(num2words(n, lang=lang) for lang in LANGUAGES)] for n in numbers]
        written.append((f"numbers_words_{part}.tsv", ["digits", *LANGUAGES], rows))
    for part, days in zip(("train", "test"), _dates(rng)):
        rows = [
            [d.isoformat(), *(format_date(d, format="long", locale=loc) for loc in LOCALES)]
            for d in days
        ]
        written.append((f"dates_{part}.tsv", ["iso", *LOCALES], rows))
    for name, header, rows in written:
        _write(out / name, header, rows)
        size = (out / name).stat().st_size
        print(f"{out / name}: {len(rows)} rows, {size:,} bytes; e.g. {' | '.join(rows[-1])}")
    print(f"num2words {found['num2words']}, babel {found['babel']} (CLDR {get_cldr_version()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
