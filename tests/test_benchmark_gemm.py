"""benchmarks/gemm.py: --quick runs end to end, writes its tables, and oneDNN's product is right."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load():
    spec = importlib.util.spec_from_file_location("gemm", ROOT / "benchmarks" / "gemm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gemm_quick_writes_markdown_and_json(tmp_path):
    gemm = load()
    assert gemm.main(["--quick", "--threads", "0", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gemm_quick.json").read_text())
    rows = report["rows"]
    assert [(r["M"], r["K"], r["N"]) for r in rows] == list(gemm.QUICK_SHAPES.values())
    for r in rows:
        assert r["blas_ms"] >= 0 and r["gflops_blas"] >= 0
        if report["machine"]["onednn"]:
            assert r["onednn_ms"] >= 0 and r["ratio"] is not None
            # both are fp32 products of the same data: oneDNN within fp32 rounding of float64
            assert r["max_error"] < 1e-3
    text = (tmp_path / "gemm_quick.md").read_text()
    assert "oneDNN / BLAS" in text and "tiny (64, 16 -> 32)" in text


def test_gemm_rejects_zero_repeats(tmp_path, capsys):
    gemm = load()
    with pytest.raises(SystemExit) as exit_:
        gemm.main(["--repeats", "0", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert "--repeats must be at least 1" in capsys.readouterr().err
