"""Long-format CSV (seq_id, step, features..., label): ragged sequences, label types kept,
and the `data:` form of `deeprnn train` that reads it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deeprnn.cli import main
from deeprnn.data import load_long_csv
from deeprnn.errors import InputError


def _write(tmp_path, text, name="long.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_rows_group_into_ragged_sequences_in_step_order(tmp_path):
    path = _write(tmp_path, "seq_id,step,a,b,label\n"
                  "s2,1,5,50,2\ns1,2,2,20,1\ns1,1,1,10,1\ns2,0,4,40,2\ns1,3,3,30,1\n")  # fmt: skip
    X, y, ids = load_long_csv(path)
    assert ids == ["s2", "s1"]  # order of first appearance
    np.testing.assert_array_equal(X[0], [[4, 40], [5, 50]])
    np.testing.assert_array_equal(X[1], [[1, 10], [2, 20], [3, 30]])
    assert y.dtype.kind == "i" and y.tolist() == [2, 1]  # integer classes, not floats
    X, y, _ = load_long_csv(path, step_column=None, features=["b"], target=None)
    np.testing.assert_array_equal(X[1][:, 0], [20, 10, 30])  # file order
    assert y is None


def test_labels_keep_their_types(tmp_path):
    words = _write(tmp_path, "id,x,label\na,1,walk\nb,2,run\n")
    assert load_long_csv(words, "id", None).y.tolist() == ["walk", "run"]
    floats = _write(tmp_path, "id,x,label\na,1,0.5\nb,2,1\n", "f.csv")
    y = load_long_csv(floats, "id", None).y
    assert y.dtype == np.float64 and y.tolist() == [0.5, 1.0]


def test_long_csv_errors_say_what_and_how(tmp_path):
    path = _write(tmp_path, "seq_id,step,x,label\na,1,1,u\na,1,2,u\n")
    with pytest.raises(InputError, match=r"sequence 'a' has step 1 twice; every \(id, step\)"):
        load_long_csv(path)
    path = _write(tmp_path, "seq_id,step,x,label\na,1,1,u\na,2,2,v\n")
    with pytest.raises(InputError, match=r"sequence 'a' has label values \['u', 'v'\] .*"
                       "one non-empty label per sequence .*sequence_labelling"):  # fmt: skip
        load_long_csv(path)
    with pytest.raises(InputError, match=r"has no column 'seq'; its columns are \['seq_id'"):
        load_long_csv(path, id_column="seq")
    with pytest.raises(InputError, match=r"column 'x' holds 'abc', which is not a number"):
        load_long_csv(_write(tmp_path, "seq_id,step,x,label\na,1,abc,u\n"))
    with pytest.raises(FileNotFoundError, match=f"no such CSV file: {tmp_path / 'nope.csv'}"):
        load_long_csv(tmp_path / "nope.csv")


def _events(tmp_path, rng) -> str:
    """Sequences of 3 to 8 steps; 'up' ones rise, 'down' ones fall."""
    lines = ["seq_id,step,value,noise,label"]
    for i in range(40):
        label = "up" if i % 2 else "down"
        for t in range(int(rng.integers(3, 9))):
            v = t if label == "up" else -t
            lines.append(f"e{i},{t},{v + rng.normal(0, 0.1):.3f},{rng.normal():.3f},{label}")
    return _write(tmp_path, "\n".join(lines) + "\n", "events.csv")


def test_train_and_predict_a_long_csv_through_the_cli(tmp_path, capsys):
    path = _events(tmp_path, np.random.default_rng(0))
    cfg = _write(tmp_path, f"task: sequence_classification\ndata:\n  path: {path.name}\n"
                 "  id_column: seq_id\n  step_column: step\n  target: label\n  test_size: 10\n"
                 "model:\n  epochs: 3\n  hidden_size: 8\n  num_layers: 1\n", "c.yaml")  # fmt: skip
    assert main(["train", str(cfg), "--run-dir", str(tmp_path / "run"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 <= summary["metrics"]["accuracy"] <= 1 and "majority_class" in summary["baselines"]
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), "--input", str(path)]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0] == "index,prediction" and len(rows) == 41
    assert {r.split(",")[1] for r in rows[1:]} <= {"up", "down"}  # the file's label strings

    cfg.write_text(f"task: sequence_classification\ndata:\n  path: {path}\n", encoding="utf-8")
    assert main(["train", str(cfg), "--run-dir", str(tmp_path / "r2"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "a CSV of sequences is read in long format (one row per step); set data.id_column" in err
    assert "id_column: seq_id, step_column: step, target: label" in err
