"""benchmarks/speed.py --decode (benchmarks/decode.py): beam search vs greedy throughput."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from deeprnn.seq2seq import beam_search, greedy

ROOT = Path(__file__).resolve().parent.parent


def load(name: str):
    sys.path.insert(0, str(ROOT / "benchmarks"))  # decode.py imports speed, as latency.py does
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_speed_decode_quick_mode_writes_markdown_and_json(tmp_path):
    speed = load("speed")
    # --threads 0 leaves torch's thread count alone for the rest of the test session
    assert speed.main(["--decode", "--quick", "--threads", "0", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "decode_quick.json").read_text())
    rows = report["rows"]
    assert [r["decoder"] for r in rows] == ["greedy", "beam 1", "beam 4", "beam 8"]
    assert [r["width"] for r in rows] == [None, 1, 4, 8]
    for r in rows:
        assert r["sentences_per_s"] > 0 and r["single_ms"] > 0
        assert r["batch_ratio"] > 0 and r["single_ratio"] > 0
        assert r["steps"] == report["size"]["max_length"]
    assert rows[0]["batch_ratio"] == rows[0]["single_ratio"] == 1.0
    assert report["width1_matches_greedy"] is True
    assert report["machine"]["threads"] >= 1
    text = (tmp_path / "decode_quick.md").read_text()
    assert "sentences/s" in text and "time / greedy's" in text
    for name in ("| greedy |", "| beam 1 |", "| beam 4 |", "| beam 8 |"):
        assert name in text
    assert "Beam width 1 gives greedy's tokens: yes" in text


@pytest.mark.parametrize("which", ["QUICK_SIZE", "SIZE"])
def test_benchmark_model_runs_max_length_steps_and_width_one_is_greedy(which):
    decode = load("decode")
    size = dict(getattr(decode, which), batch=4)  # the benchmark's model, a few sources
    model = decode.build_model(size)
    x, lengths = decode.sources(size)
    steps = size["max_length"]
    with torch.inference_mode():
        a = greedy(model, x, lengths, steps)
        b = beam_search(model, x, lengths, 1, steps)
        wide = beam_search(model, x, lengths, 8, steps)
    assert [h.tokens for h in a] == [h.tokens for h in b]
    for g, h in zip(a, b):
        assert h.score == pytest.approx(g.score, rel=1e-9, abs=1e-9)
    # the biased </s> never wins: every hypothesis decodes the full max_length steps
    assert all(len(h.tokens) == steps for h in a + b + wide)
