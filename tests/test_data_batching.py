"""validate_sequences, pad_batch and the batches iterator."""

import numpy as np
import pytest
import torch

from deeprnn.data import batches, pad_batch, validate_sequences


def _ragged(n=10, features=2, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(int(t), features)) for t in rng.integers(1, 9, n)]


def test_validate_sequences_accepts_the_three_layouts():
    from_array = validate_sequences(np.arange(12).reshape(2, 3, 2))
    assert [a.shape for a in from_array] == [(3, 2), (3, 2)]
    assert all(a.dtype == np.float64 for a in from_array)
    np.testing.assert_array_equal(from_array[1], [[6, 7], [8, 9], [10, 11]])
    assert [a.shape for a in validate_sequences([np.ones((4, 3)), np.ones((2, 3))])] == [
        (4, 3),
        (2, 3),
    ]
    assert [a.tolist() for a in validate_sequences([[1, 2, 3], [4]])] == [[1, 2, 3], [4]]
    from_tensor = validate_sequences(torch.ones(2, 3, 1))
    assert len(from_tensor) == 2 and from_tensor[0].shape == (3, 1)


@pytest.mark.parametrize(
    "X, error, message",
    [
        ([], ValueError, "train_x is empty; expected at least one sequence"),
        ([np.ones((3, 2)), np.ones((0, 2))], ValueError, r"train_x\[1\] is empty \(0 steps\)"),
        (
            [np.ones((3, 2)), np.ones((3, 2)), np.ones((3, 5))],
            ValueError,
            r"ragged across sequences: train_x\[0\] has 2 features but train_x\[2\] has 5",
        ),
        ([[[1, 2], [3]]], ValueError, r"train_x\[0\] is ragged"),
        ([np.ones(3), np.ones((3, 1))], ValueError, r"\[0\] has no feature axis .* has 1 features"),
        (np.ones(5), ValueError, r"got an array with shape \(5,\); wrap a single sequence"),
        (np.ones((2, 3, 4, 5)), ValueError, r"got an array with shape \(2, 3, 4, 5\)"),
        ([np.ones((2, 2, 2))], ValueError, r"train_x\[0\] has shape \(2, 2, 2\)"),
        ([np.array(["a", "b"])], TypeError, r"train_x\[0\] holds <U1 values; expected numbers"),
        ("abc", TypeError, "train_x must be an array"),
        (
            [np.ones(3), np.array([1.0, 2.0, np.nan, 4.0])],
            ValueError,
            r"\[1\] contains NaN at step 2",
        ),
        ([np.array([[0.0, np.inf]])], ValueError, r"train_x\[0\] contains inf at step 0"),
    ],
)
def test_validate_sequences_errors_name_the_argument(X, error, message):
    with pytest.raises(error, match=message):
        validate_sequences(X, name="train_x")


def test_pad_batch_values_and_lengths():
    x, lengths = pad_batch([np.array([[1.0, 2.0]]), np.array([[3.0, 4.0], [5.0, 6.0]])])
    np.testing.assert_array_equal(x, [[[1, 2], [0, 0]], [[3, 4], [5, 6]]])
    np.testing.assert_array_equal(lengths, [1, 2])
    ids, id_lengths = pad_batch([np.array([3, 4, 5]), np.array([7])])
    assert ids.dtype.kind == "i"
    np.testing.assert_array_equal(ids, [[3, 4, 5], [7, 0, 0]])
    np.testing.assert_array_equal(id_lengths, [3, 1])
    with pytest.raises(ValueError, match="seqs is empty"):
        pad_batch([])


def test_batches_cover_every_row_once_with_matching_targets():
    X = _ragged(n=23)
    y = np.arange(23)
    seen = []
    for xb, lb, yb in batches(X, y, batch_size=5, seed=3):
        assert xb.dtype == torch.float32 and lb.dtype == torch.int64 and yb.dtype == torch.int64
        assert xb.shape == (len(yb), int(lb.max()), 2)  # padded to the batch's longest row
        for row, n, label in zip(xb, lb, yb):
            np.testing.assert_allclose(row[:n].numpy(), X[label], rtol=1e-6)
            assert torch.all(row[n:] == 0)
        seen += yb.tolist()
    assert sorted(seen) == list(range(23))
    assert seen != list(range(23))  # shuffled


def test_batches_order_is_fixed_by_seed_and_unshuffled_keeps_order():
    X = _ragged(n=12)
    first = [yb.tolist() for _, _, yb in batches(X, np.arange(12), batch_size=4, seed=1)]
    again = [yb.tolist() for _, _, yb in batches(X, np.arange(12), batch_size=4, seed=1)]
    other = [yb.tolist() for _, _, yb in batches(X, np.arange(12), batch_size=4, seed=2)]
    assert first == again and first != other
    plain = [yb.tolist() for _, _, yb in batches(X, np.arange(12), batch_size=5, shuffle=False)]
    assert plain == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]]
    dropped = list(batches(X, batch_size=5, shuffle=False, drop_last=True))
    assert [len(lb) for _, lb, yb in dropped] == [5, 5] and dropped[0][2] is None


def test_bucketing_reduces_padding():
    X = _ragged(n=400, features=1, seed=5)

    def padded_steps(bucket):
        return sum(
            xb.shape[0] * xb.shape[1] for xb, _, _ in batches(X, batch_size=8, bucket=bucket)
        )

    assert padded_steps(True) < 0.8 * padded_steps(False)
    rows = sorted(len(lb) for _, lb, _ in batches(X, batch_size=8, bucket=True))
    assert sum(rows) == 400


def test_batches_token_ids_padded_array_with_lengths_and_per_step_targets():
    X = np.array([[5, 6, 7, 0], [8, 9, 0, 0], [1, 2, 3, 4]])
    Y = X + 100
    out = list(batches(X, Y, lengths=[3, 2, 4], batch_size=2, shuffle=False, per_step=True))
    xb, lb, yb = out[0]
    assert xb.dtype == torch.int64 and xb.shape == (2, 3)
    assert xb.tolist() == [[5, 6, 7], [8, 9, 0]] and lb.tolist() == [3, 2]
    assert yb.tolist() == [[105, 106, 107], [108, 109, 0]]  # cut and padded like x
    assert out[1][0].tolist() == [[1, 2, 3, 4]]


def test_batches_ragged_targets_and_float_targets():
    X = [np.ones((3, 1)), np.ones((1, 1))]
    y_steps = [np.array([1, 2, 3]), np.array([4])]
    _, _, yb = next(batches(X, y_steps, shuffle=False, per_step=True))
    assert yb.tolist() == [[1, 2, 3], [4, 0, 0]]
    _, _, yf = next(batches(X, np.array([0.5, 1.5]), shuffle=False))
    assert yf.dtype == torch.float32 and yf.tolist() == [0.5, 1.5]


def test_batches_errors():
    X = _ragged(n=4)
    with pytest.raises(ValueError, match=r"X\[1\] is empty"):
        batches([np.ones(2), np.ones(0)])  # checked at the call, before iterating
    with pytest.raises(ValueError, match="y is ragged; pass per_step=True"):
        batches([np.ones(2), np.ones(1)], [np.ones(2), np.ones(1)])
    with pytest.raises(ValueError, match=r"X\[1\] has 1 steps but y\[1\] has 2"):
        batches([np.ones(2), np.ones(1)], [np.ones(2), np.ones(2)], per_step=True)
    with pytest.raises(ValueError, match="y has 3 entries but X has 4 sequences"):
        next(batches(X, np.arange(3)))
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        next(batches(X, batch_size=0))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 4\]"):
        next(batches(np.ones((2, 4, 1)), lengths=[0, 4]))
    with pytest.raises(ValueError, match="lengths must be 2 integers"):
        next(batches(np.ones((2, 4, 1)), lengths=[1.5, 4.0]))
    with pytest.raises(ValueError, match="X must be a padded array"):
        next(batches(X, lengths=[1, 1, 1, 1]))
    with pytest.raises(TypeError, match="y holds <U1 values"):
        next(batches(X, np.array(list("abcd"))))


def test_bucketed_shuffled_epochs_see_every_index_once():
    from deeprnn.estimators.inputs import Loader

    X = _ragged(n=203, features=2, seed=7)
    loader = Loader(X, np.arange(203), batch_size=8, shuffle=True, seed=3)
    epochs = []
    for epoch in range(3):
        loader.set_epoch(epoch)
        seen = [int(i) for _, _, yb in loader for i in yb]
        assert sorted(seen) == list(range(203))  # each index exactly once
        epochs.append(seen)
    assert epochs[0] != epochs[1] != epochs[2]  # a new order every epoch
