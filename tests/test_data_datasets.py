"""Bundled datasets: records, contents against known values, and the pipeline they feed."""

from collections import Counter
from importlib.resources import files

import numpy as np
import pytest

from deeprnn.data import (
    Tokenizer,
    Vocabulary,
    batches,
    list_datasets,
    load_dataset,
    make_windows,
    time_split,
)
from deeprnn.data.datasets import PLAYS, dialogue_lines

NAMES = [
    "shakespeare_char",
    "shakespeare_lines",
    "airline_passengers",
    "sunspots_monthly",
    "japanese_vowels",
    "waveforms",
    "switching_waves",
    "numbers_words",
    "dates",
]


def test_list_datasets_records():
    records = list_datasets()
    assert [r["name"] for r in records] == NAMES
    for r in records:
        assert set(r) == {"name", "task", "description", "size", "source", "licence"}
        assert all(isinstance(v, str) and v for v in r.values())
    by_name = {r["name"]: r for r in records}
    assert by_name["shakespeare_char"]["licence"].startswith("CC BY 2.5")
    assert by_name["japanese_vowels"]["licence"] == "CC BY 4.0"
    assert by_name["waveforms"]["description"].startswith("SYNTHETIC")
    assert by_name["switching_waves"]["description"].startswith("SYNTHETIC")
    assert by_name["switching_waves"]["task"] == "sequence-labelling"


def test_every_dataset_carries_its_record():
    for record in list_datasets():
        ds = load_dataset(record["name"])
        assert {k: ds[k] for k in record} == record
        assert ds.task == record["task"]  # attribute access


def test_bundled_files_are_small_and_credited():
    root = files("deeprnn.data").joinpath("files")
    total = sum(p.stat().st_size for p in _walk(root))
    assert total < 2_000_000
    sources = root.joinpath("SOURCES.md").read_text(encoding="utf-8")
    for name in ["shakespeare", "airline_passengers.csv", "sunspots_monthly.csv", "japanese"]:
        assert name in sources
    assert "Creative Commons Attribution" in root.joinpath("shakespeare", "LICENSE.txt").read_text(
        encoding="utf-8"
    )


def _walk(root):
    for p in root.iterdir():
        yield from (_walk(p) if p.is_dir() else [p])


def test_shakespeare_char_text_and_char_vocabulary():
    ds = load_dataset("shakespeare_char")
    assert len(ds.text) == 456_311  # the number list_datasets() reports
    assert list(ds.plays) == [title for _, title, _ in PLAYS]
    assert ds.text.startswith("MACBETH\n\nby William Shakespeare")
    assert "Fair is foul, and foul is fair" in ds.plays["Macbeth"]
    assert "If music be the food of love, play on" in ds.plays["Twelfth Night"]
    tok = Tokenizer(level="char", lower=False)
    chars = tok.tokenize(ds.text)
    vocab = Vocabulary.build([chars])
    assert 60 < len(vocab) < 100
    ids = vocab.encode(chars[:500])
    assert 1 not in ids  # no <unk> on the text the vocabulary came from
    assert tok.join(vocab.decode(ids)) == ds.text[:500]


def test_dialogue_lines_drop_names_directions_and_headings():
    play = (
        "THE PLAY\n\nPersons Represented\nKING, a king of some kingdom here.\n\n"
        "ACT I.\n\nSCENE I. A heath near the castle walls.\n\n[Enter two Witches,\n"
        "with thunder.]\n\nFIRST WITCH.\nWhen shall we three meet again?\n"
        "Hail! [Exit.] all hail to thee, Macbeth\n"
    )
    assert dialogue_lines(play) == [
        "When shall we three meet again?",
        "Hail! all hail to thee, Macbeth",
    ]


def test_shakespeare_lines_balanced_labelled_and_fixed():
    ds = load_dataset("shakespeare_lines")
    assert len(ds.texts) == len(ds.labels) == len(ds.plays) == 8572
    assert ds.label_names == ["comedy", "tragedy"]
    char = load_dataset("shakespeare_char")
    assert Counter(ds.plays) == {p: len(dialogue_lines(char.plays[p])) for p in char.plays}
    assert Counter(ds.labels.tolist()) == {0: 3878, 1: 4694}
    genre = {title: g for _, title, g in PLAYS}
    assert all(ds.label_names[y] == genre[p] for y, p in zip(ds.labels, ds.plays))
    assert all(len(t.split()) >= 5 and "[" not in t for t in ds.texts)
    assert ds.labels[:100].sum() not in (0, 100)  # shuffled, so a slice mixes classes
    assert all(t.split()[0] in char.plays[p] for t, p in zip(ds.texts[:50], ds.plays[:50]))
    assert load_dataset("shakespeare_lines").texts == ds.texts


def test_airline_passengers_known_values():
    ds = load_dataset("airline_passengers")
    assert ds.series.shape == (144,) and ds.series.dtype == np.float64
    assert ds.series[:6].tolist() == [112, 118, 132, 129, 121, 135]
    assert ds.series[-1] == 432 and ds.series.sum() == 40363
    assert str(ds.dates[0]) == "1949-01" and str(ds.dates[-1]) == "1960-12"
    assert np.all(np.diff(ds.dates).astype(int) == 1)  # consecutive months


def test_sunspots_monthly_known_values():
    ds = load_dataset("sunspots_monthly")
    assert ds.series.shape == (3120,)
    assert ds.series[:3].tolist() == [58.0, 62.6, 70.0]
    assert ds.series.min() >= 0 and ds.series.max() == 253.8
    assert str(ds.dates[0]) == "1749-01" and str(ds.dates[-1]) == "2008-12"


def test_japanese_vowels_shapes_labels_and_exact_values():
    ds = load_dataset("japanese_vowels")
    assert len(ds.X_train) == 270 and len(ds.X_test) == 370
    lengths = [len(x) for x in ds.X_train + ds.X_test]
    assert min(lengths) == 7 and max(lengths) == 29
    assert all(x.shape[1] == 12 and x.dtype == np.float64 for x in ds.X_train + ds.X_test)
    assert np.bincount(ds.y_train).tolist() == [30] * 9
    assert np.bincount(ds.y_test).tolist() == [31, 35, 88, 44, 29, 24, 40, 50, 29]
    assert ds.X_train[0][0, 0] == 1.860936 and ds.X_train[0][0, 1] == -0.207383
    assert ds.X_test[-1][-1, -1] == 0.224688
    assert ds.label_names[0] == "speaker 1"


def test_waveforms_deterministic_and_options():
    ds = load_dataset("waveforms")
    assert len(ds.X_train) == 600 and len(ds.X_test) == 200
    assert ds.label_names == ["sine", "square", "sawtooth", "triangle"]
    assert set(ds.y_train.tolist()) == {0, 1, 2, 3}
    assert all(x.shape[1] == 3 and 40 <= len(x) <= 120 for x in ds.X_train)
    again = load_dataset("waveforms")
    np.testing.assert_array_equal(again.X_train[5], ds.X_train[5])
    small = load_dataset("waveforms", n_train=10, n_test=20, seed=0)
    assert len(small.X_train) == 10
    np.testing.assert_array_equal(small.X_train[3], ds.X_train[3])  # sample i is fixed
    np.testing.assert_array_equal(small.X_test[13], ds.X_test[13])
    other = load_dataset("waveforms", n_train=10, seed=1)
    assert not np.array_equal(other.X_train[0][:5], ds.X_train[0][:5])


def test_waveform_classes_differ_in_shape():
    # Square waves sit near +-amplitude; sines spend more time near 0. The mean |x| / max |x|
    # ratio separates them on average despite the noise.
    ds = load_dataset("waveforms", n_train=400, n_test=1)
    ratio = np.array([np.abs(x).mean() / np.abs(x).max() for x in ds.X_train])
    assert ratio[ds.y_train == 1].mean() > ratio[ds.y_train == 0].mean() + 0.1


def test_switching_waves_label_every_step_and_are_fixed():
    ds = load_dataset("switching_waves")
    assert len(ds.X_train) == len(ds.y_train) == 400 and len(ds.X_test) == len(ds.y_test) == 150
    assert ds.label_names == ["sine", "square", "sawtooth", "triangle"]
    for x, y in zip(ds.X_train + ds.X_test, ds.y_train + ds.y_test):
        assert x.shape == (len(y), 3) and x.dtype == np.float64 and 60 <= len(y) <= 160
        assert y.dtype == np.int64 and y.min() >= 0 and y.max() <= 3
        changes = np.count_nonzero(np.diff(y))
        assert 1 <= changes <= 4  # 2-5 segments, each a different shape from the one before
        starts = np.flatnonzero(np.diff(y, prepend=-1, append=-1))
        assert np.diff(starts).min() >= 12  # no segment too short to show its shape
    steps = np.concatenate(ds.y_train)
    assert (np.bincount(steps, minlength=4) / len(steps) > 0.15).all()  # every shape common
    again = load_dataset("switching_waves")
    np.testing.assert_array_equal(again.X_train[7], ds.X_train[7])
    np.testing.assert_array_equal(again.y_test[3], ds.y_test[3])
    small = load_dataset("switching_waves", n_train=10, n_test=5, seed=0)
    np.testing.assert_array_equal(small.X_train[9], ds.X_train[9])  # sequence i is fixed
    np.testing.assert_array_equal(small.y_test[4], ds.y_test[4])
    other = load_dataset("switching_waves", n_train=3, n_test=1, seed=1)
    assert not np.array_equal(other.X_train[0][:5], ds.X_train[0][:5])
    for bad in ({"n_train": 0}, {"n_test": 1.5}, {"seed": -1}, {"n_train": True}):
        with pytest.raises(ValueError, match="switching_waves: .* must be an int >="):
            load_dataset("switching_waves", **bad)


def test_load_dataset_errors():
    with pytest.raises(ValueError, match=r"unknown dataset 'airline' \(did you mean"):
        load_dataset("airline")
    with pytest.raises(ValueError, match="available: "):
        load_dataset("mnist")
    with pytest.raises(ValueError, match=r"'waveforms' does not take options \['n'\]"):
        load_dataset("waveforms", n=5)
    with pytest.raises(ValueError, match="does not take options"):
        load_dataset("airline_passengers", seed=1)
    with pytest.raises(AttributeError, match="dataset has no field 'nope'"):
        _ = load_dataset("airline_passengers").nope


def test_datasets_feed_windows_and_batches():
    air = load_dataset("airline_passengers")
    train, val, test = time_split(air.series)
    X, Y = make_windows(train, lookback=12, horizon=3)
    assert X.shape == (len(train) - 14, 12, 1) and Y.shape == (len(train) - 14, 3)
    jv = load_dataset("japanese_vowels")
    xb, lb, yb = next(batches(jv.X_train, jv.y_train, batch_size=16, bucket=True))
    assert xb.shape == (16, int(lb.max()), 12) and yb.shape == (16,)
