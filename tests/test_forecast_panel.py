"""Global forecasting over many series: panel inputs, lazy windows, per-window scaling, errors."""

import numpy as np
import pandas as pd
import pytest

from deeprnn.errors import InputError
from deeprnn.estimators import Forecaster
from deeprnn.forecast import Windows, scale, to_panel, unscale, window_scale

TINY = dict(hidden_size=16, num_layers=1, seed=0)


def _frame(ys, ids, start="2020-01-01"):
    parts = [pd.DataFrame({"id": k, "time": pd.date_range(start, periods=len(v), freq="MS"),
                           "value": v}) for k, v in zip(ids, ys)]  # fmt: skip
    return pd.concat(parts)


def _sines(lengths, amplitudes, rng, noise=0.02):
    return [a * (2 + np.sin(2 * np.pi * np.arange(n) / 12)) + rng.normal(0, noise * a, n)
            for n, a in zip(lengths, amplitudes)]  # fmt: skip


def test_list_dict_and_frame_inputs_give_one_panel():
    rng = np.random.default_rng(0)
    ys = _sines([30, 41, 52], [1, 2, 3], rng)
    frame = _frame(ys, "abc")
    frame = frame.sample(frac=1, random_state=0)  # rows in any order: sorted by time per series
    for y in (ys, dict(zip("abc", ys)), frame):
        p = to_panel(y)
        assert p.lengths.tolist() == [30, 41, 52]
        for i in range(3):
            np.testing.assert_array_equal(p.series(p.select(p.ids[i])[0]), ys[i])
    assert to_panel(frame).ids == ["a", "b", "c"]  # a frame's series in sorted id order


def test_windows_are_drawn_lazily_and_read_the_right_steps():
    rng = np.random.default_rng(1)
    n = 100_000
    lengths = rng.integers(20, 60, n)
    panel = to_panel([np.arange(k, dtype=float) + 100 * i for i, k in enumerate(lengths)])
    w = Windows(panel, panel.lengths, lookback=8, horizon=4, scaling=None, batch_size=64,
                shuffle=True, seed=0, ids=True, per_epoch=512)  # fmt: skip
    assert w.total == int((lengths - 11).sum()) and len(w) == 8  # 512 windows an epoch
    # Nothing of the size of the window count is kept: per-series arrays only.
    held = [v.nbytes for v in vars(w).values() if isinstance(v, np.ndarray)]
    assert max(held) <= 8 * n
    ids = rng.integers(0, w.total, 200)
    s, first = w.locate(ids)
    x, y = w.batch(ids)
    assert (first >= 0).all() and (first + 12 <= lengths[s]).all()
    np.testing.assert_array_equal(
        x[:, :, 0].numpy(), (100 * s[:, None] + first[:, None] + np.arange(8))
    )
    np.testing.assert_array_equal(
        y[:, :4].numpy(), 100 * s[:, None] + first[:, None] + 8 + np.arange(4)
    )
    np.testing.assert_array_equal(x[:, 0, -1].numpy(), s)  # the series number channel
    batches = list(w)
    assert sum(len(b[0]) for b in batches) == 512


@pytest.mark.parametrize("kind", ["mean", "last", None])
def test_scaling_round_trip(kind):
    rng = np.random.default_rng(2)
    past = rng.normal(50, 10, (5, 12))
    past[0] = 3.0  # a constant window: scale falls back to 1 for "last"
    values = rng.normal(50, 10, (5, 7))
    np.testing.assert_allclose(unscale(past, scale(past, values, kind), kind), values, rtol=1e-12)
    loc, s = window_scale(past, kind)
    assert (s > 0).all() and loc.shape == s.shape == (5, 1)


def test_global_model_forecasts_series_of_very_different_scales():
    rng = np.random.default_rng(3)
    amps = [1.0, 100.0, 1e4, 5.0]
    full = _sines([96, 120, 84, 108], amps, rng)
    train, test = [s[:-12] for s in full], [s[-12:] for s in full]
    fc = Forecaster(24, 12, scaling="mean", epochs=40, lr=1e-2, validation_fraction=0, **TINY).fit(
        train
    )
    pred = fc.predict()
    assert pred.shape == (4, 12)
    for p, t, a in zip(pred, test, amps):
        assert np.mean(np.abs(p - t)) < 0.25 * a  # the series' own units (range 2a)
    # A subset, by id, in the order asked for.
    np.testing.assert_allclose(fc.predict(ids=[2, 0]), pred[[2, 0]], rtol=1e-6)
    # Forecasting from given histories: the same as from the stored last windows.
    np.testing.assert_allclose(fc.predict(y=train), pred, rtol=1e-6)
    assert fc.score(test) > -0.25 * np.mean(amps)


def test_id_embedding_frame_output_and_save_load(tmp_path):
    rng = np.random.default_rng(4)
    ys = dict(zip(["x", "y", "z"], _sines([40, 50, 60], [1, 2, 3], rng)))
    fc = Forecaster(12, 4, id_embedding=3, epochs=2, likelihood="gaussian", **TINY).fit(ys)
    assert fc.model_.embedding.weight.shape == (3, 3)
    frame = fc.predict_frame(quantiles=[0.1, 0.9], ids=["z", "x"])
    assert list(frame.columns[:3]) == ["id", "step", "forecast"] and len(frame) == 8
    assert (frame["q0.1"] <= frame["forecast"]).all() and (frame["forecast"] <= frame["q0.9"]).all()
    back = Forecaster.load(fc.save(tmp_path / "fc"))
    np.testing.assert_allclose(
        back.predict(quantiles=[0.5]), fc.predict(quantiles=[0.5]), rtol=1e-6
    )
    with pytest.raises(InputError, match=r"series \['w'\] were not in the training panel"):
        fc.predict(y={"w": ys["x"]})


def test_datetime_frame_forecasts_carry_time_stamps():
    rng = np.random.default_rng(5)
    ys = _sines([36, 48], [1, 2], rng)
    frame = _frame(ys, ["a", "b"])
    fc = Forecaster(12, 3, epochs=1, **TINY).fit(frame)
    out = fc.predict_frame()
    last_a = pd.Timestamp("2020-01-01") + pd.DateOffset(months=35)
    assert out.loc[out.id == "a", "time"].tolist() == [
        last_a + pd.DateOffset(months=k) for k in (1, 2, 3)
    ]


def test_bad_panels_get_errors_naming_the_series():
    t = pd.date_range("2021-01-01", periods=30, freq="D")
    good = pd.DataFrame({"id": "ok", "time": t, "value": np.arange(30.0)})
    dup = pd.DataFrame({"id": "dup", "time": t.insert(5, t[4]), "value": np.arange(31.0)})
    with pytest.raises(InputError, match=r"series 'dup' has duplicate timestamps"):
        to_panel(pd.concat([good, dup]))
    gap = good.assign(id="gappy", value=np.r_[np.arange(10.0), np.nan, np.arange(19.0)])
    with pytest.raises(InputError, match=r"series 'gappy' has NaN or inf at step 10"):
        Forecaster(4, 2).fit(pd.concat([good, gap]))
    with pytest.raises(InputError, match=r"column 'id' has a missing series id at row 30"):
        to_panel(pd.concat([good, good.assign(id=None)]))
    with pytest.raises(InputError, match=r"lacks the columns \['value'\]"):
        to_panel(good.rename(columns={"value": "y"}))
    with pytest.raises(
        InputError, match=r"series 'ok' has 30 steps, fewer than lookback \+ horizon"
    ):
        Forecaster(24, 12).fit(good)
    fc = Forecaster(8, 4, epochs=1, **TINY).fit({"long": np.arange(40.0), "short": np.arange(9.0)})
    with pytest.raises(InputError, match=r"series 'short' has fewer than lookback = 8 steps"):
        fc.predict(y={"long": np.arange(40.0), "short": np.arange(5.0)})
    with pytest.raises(InputError, match=r"series \['nope'\] are not in the panel"):
        fc.predict(ids=["nope"])
    with pytest.raises(InputError, match=r"quantiles need|no quantiles"):
        fc.predict(quantiles=[0.5])
