"""The long-stream benchmark's worker trains on streamed chunks with truncated BPTT (its
full run, with peak memory per length, is `python benchmarks/long_stream_memory.py`)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import torch

PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "long_stream_memory.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("long_stream_memory", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_stream_trains_chunk_by_chunk_and_reports_a_row():
    bench = load_benchmark()
    threads = torch.get_num_threads()
    try:
        row = bench.measure(3001, chunk=500, k1=50)
        full = bench.measure(1001, full=True)
    finally:
        torch.set_num_threads(threads)
    assert row["steps"] == 3001 and row["updates"] == 60 and row["mode"].startswith("stream")
    assert math.isfinite(row["train_loss"]) and row["peak_after_mib"] >= row["peak_before_mib"]
    assert full["updates"] == 1 and math.isfinite(full["train_loss"])
    chunks = list(bench.Chunks(bench.series(1201), 500))
    assert [x.shape[1] for x, _, _ in chunks] == [500, 500, 200]
    x, _, y = chunks[1]
    assert torch.equal(x[0, 1:], y[0, :-1])  # y is x one step on
    lines = bench.table([row, full]).splitlines()
    assert len(lines) == 4 and lines[2].startswith("| 3,001 | stream: chunks of 500")
