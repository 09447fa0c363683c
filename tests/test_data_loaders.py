"""load_csv (pandas and csv-module paths), text files and folders, NumPy files."""

import numpy as np
import pytest

from deeprnn.data import load_csv, load_numpy, load_text_file, load_text_folder, loaders


@pytest.fixture(params=["pandas", "csv"])
def parser(request, monkeypatch):
    """Run each CSV test with pandas and with the stdlib fallback."""
    if request.param == "csv":
        monkeypatch.setattr(loaders, "pd", None)
    return request.param


def _write(tmp_path, text, name="data.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return path


def test_load_csv_features_and_target(tmp_path, parser):
    path = _write(tmp_path, "a,b,label\n1,2.5,0\n3,-4e-1,1\n\n5,6,1\n")
    X, y = load_csv(path, target="label")
    np.testing.assert_array_equal(X, [[1, 2.5], [3, -0.4], [5, 6]])
    np.testing.assert_array_equal(y, [0, 1, 1])
    X, y = load_csv(path, columns=["b"])
    assert X.shape == (3, 1) and y is None
    np.testing.assert_array_equal(X[:, 0], [2.5, -0.4, 6])


def test_load_csv_byte_order_mark(tmp_path, parser):
    path = _write(tmp_path, "\ufeffa,b\n1,2\n")
    X, y = load_csv(path, target="a")
    assert X.tolist() == [[2.0]] and y.tolist() == [1.0]


def test_load_csv_delimiter_quotes_and_missing(tmp_path, parser):
    path = _write(tmp_path, 'x;"y z"\n1;" 2"\n3;\n')
    X, _ = load_csv(path, delimiter=";", allow_missing=True, dtype=np.float32)
    assert X.dtype == np.float32
    np.testing.assert_array_equal(X[0], [1, 2])
    assert X[1, 0] == 3 and np.isnan(X[1, 1])


def test_load_csv_non_numeric_cell_names_file_row_and_column(tmp_path, parser):
    path = _write(tmp_path, "a,b\n1,2\n3,oops\n")
    with pytest.raises(ValueError, match=r"data.csv: data row 2, column 'b' holds 'oops'"):
        load_csv(path)


def test_load_csv_date_column_hint(tmp_path, parser):
    path = _write(tmp_path, "month,passengers\n1949-01,112\n")
    with pytest.raises(ValueError, match=r"column 'month' holds '1949-01'.*columns=\[\.\.\.\]"):
        load_csv(path)
    X, _ = load_csv(path, columns=["passengers"])
    assert X.tolist() == [[112.0]]


def test_load_csv_structure_errors(tmp_path, parser):
    with pytest.raises(ValueError, match="empty.csv is empty"):
        load_csv(_write(tmp_path, "", "empty.csv"))
    with pytest.raises(ValueError, match="head.csv has a header but no data rows"):
        load_csv(_write(tmp_path, "a,b\n", "head.csv"))
    path = _write(tmp_path, "a,b\n1,2\n")
    with pytest.raises(
        ValueError, match=r"data.csv has no column 'c'; its columns are \['a', 'b'\]"
    ):
        load_csv(path, columns=["a", "c"])
    with pytest.raises(ValueError, match="has no column 'target'"):
        load_csv(path, target="target")
    with pytest.raises(ValueError, match=r"data row 1, column 'b' is empty.*allow_missing=True"):
        load_csv(_write(tmp_path, "a,b\n1,\n", "gap.csv"))
    with pytest.raises(ValueError, match="column name 'a' appears twice"):
        load_csv(_write(tmp_path, "a,a\n1,2\n", "dup.csv"))
    with pytest.raises(ValueError, match="wide.csv"):
        load_csv(_write(tmp_path, "a,b\n1,2\n1,2,3\n", "wide.csv"))
    with pytest.raises(FileNotFoundError, match="no such CSV file"):
        load_csv(tmp_path / "missing.csv")


def test_load_csv_wrong_encoding(tmp_path, parser):
    path = _write(tmp_path, "caf\xe9,b\n1,2\n", "latin.csv", encoding="latin-1")
    with pytest.raises(ValueError, match=r"latin.csv is not valid utf-8 text.*encoding='latin-1'"):
        load_csv(path)
    X, _ = load_csv(path, encoding="latin-1")
    assert X.tolist() == [[1.0, 2.0]]


def test_load_text_file_and_encoding_error(tmp_path):
    path = _write(tmp_path, "To be, or not to be\n", "hamlet.txt")
    assert load_text_file(path) == "To be, or not to be\n"
    bad = _write(tmp_path, "na\xefve", "old.txt", encoding="latin-1")
    with pytest.raises(ValueError, match=r"old.txt is not valid utf-8 text \(byte b'\\xef'"):
        load_text_file(bad)
    assert load_text_file(bad, encoding="latin-1") == "na\xefve"
    with pytest.raises(FileNotFoundError, match="no such text file"):
        load_text_file(tmp_path / "nope.txt")


def test_load_text_folder_sorted_with_labels(tmp_path):
    for label, name, text in [
        ("pos", "b.txt", "great"),
        ("neg", "a.txt", "awful"),
        ("pos", "a.txt", "good"),
        ("neg", "note.md", "skip me"),
    ]:
        (tmp_path / label).mkdir(exist_ok=True)
        (tmp_path / label / name).write_text(text, encoding="utf-8")
    texts, labels = load_text_folder(tmp_path)
    assert texts == ["awful", "good", "great"]
    assert labels == ["neg", "pos", "pos"]


def test_load_text_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_text_folder(tmp_path / "nope")
    with pytest.raises(ValueError, match="has no subfolders; expected one subfolder per label"):
        load_text_folder(tmp_path)
    (tmp_path / "spam").mkdir()
    with pytest.raises(ValueError, match=r"no \*.txt files in its subfolders \['spam'\]"):
        load_text_folder(tmp_path)
    (tmp_path / "spam" / "x.txt").write_bytes(b"\xff\xfe bad")
    with pytest.raises(ValueError, match=r"x.txt is not valid utf-8 text.*encoding="):
        load_text_folder(tmp_path)


def test_load_numpy_npy_and_npz(tmp_path):
    X = np.arange(24.0).reshape(2, 3, 4)
    np.save(tmp_path / "x.npy", X)
    got, y = load_numpy(tmp_path / "x.npy")
    np.testing.assert_array_equal(got, X)
    assert y is None
    np.savez(tmp_path / "d.npz", X=X, y=np.array([0, 1]), feats=X[..., :2])
    got, y = load_numpy(tmp_path / "d.npz")
    np.testing.assert_array_equal(got, X)
    assert y.tolist() == [0, 1]
    got, y = load_numpy(tmp_path / "d.npz", x_key="feats", y_key=None)
    assert got.shape == (2, 3, 2) and y is None
    np.savez(tmp_path / "only_x.npz", X=X)
    assert load_numpy(tmp_path / "only_x.npz")[1] is None


def test_load_numpy_errors(tmp_path):
    ragged = np.empty(2, dtype=object)
    ragged[:] = [np.ones(2), np.ones(3)]
    np.save(tmp_path / "ragged.npy", ragged, allow_pickle=True)
    with pytest.raises(TypeError, match="ragged.npy holds Python objects"):
        load_numpy(tmp_path / "ragged.npy")
    np.savez(tmp_path / "ragged.npz", X=ragged)
    with pytest.raises(TypeError, match="ragged.npz holds Python objects"):
        load_numpy(tmp_path / "ragged.npz")
    np.savez(tmp_path / "d.npz", data=np.ones(3))
    with pytest.raises(ValueError, match=r"d.npz has no array 'X'; its arrays are \['data'\]"):
        load_numpy(tmp_path / "d.npz")
    with pytest.raises(ValueError, match="expected a .npy or .npz file, got suffix '.csv'"):
        load_numpy(tmp_path / "d.csv")
    with pytest.raises(FileNotFoundError, match="no such NumPy file"):
        load_numpy(tmp_path / "gone.npy")
