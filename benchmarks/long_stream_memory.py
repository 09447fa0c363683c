"""Training on a long stream in bounded memory: truncated BPTT over streamed chunks.

    python benchmarks/long_stream_memory.py                     # 10k, 100k, 1M steps (< 5 min)
    python benchmarks/long_stream_memory.py --lengths 2000 8000 --out /tmp/m   # quick look

A noisy sine of N steps (float32, held in memory: 4 MB at N = 1M) is fed to
`deeprnn.train.fit` as chunks of --chunk steps, one batch (B = 1) each, with
`stateful=True` (the state of one chunk starts the next) and `tbptt_k1` (one update every
k1 steps, gradients cut at the chunk's updates): next-step regression with a 1-layer LSTM
and a per-step head, one epoch. Every length runs in a fresh subprocess, which reports its
peak resident memory (ru_maxrss) before and after training. With streaming, the peak does
not grow with N beyond the series itself; as a contrast, full BPTT over the whole series as
one batch (--full-upto, default 100k) keeps every step's activations for the backward pass,
so its peak grows linearly with N. Writes a Markdown table and JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if find_spec("deeprnn") is None:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from deeprnn import DeepRNN, Head, SequenceModel, TrainConfig, fit  # noqa: E402

HIDDEN = 32


def peak_mib() -> float:
    """This process's peak resident set size so far, in MiB (ru_maxrss is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def series(steps: int, seed: int = 0) -> np.ndarray:
    """A noisy sine with a slow drift, float32 (steps,); built in place (two buffers)."""
    values = np.arange(steps, dtype=np.float32)
    extra = values / np.float32(5000.0)
    np.sin(extra, out=extra)  # the slow drift
    values /= np.float32(20.0)
    np.sin(values, out=values)
    values += extra
    np.random.default_rng(seed).standard_normal(out=extra, dtype=np.float32)
    extra *= np.float32(0.1)
    values += extra
    return values


class Chunks:
    """The stream as consecutive batches (x (1, C, 1), None, y (1, C, 1)): y is x one step on.

    Batches are views of the series: only the chunk in use is ever copied into a tensor.
    """

    def __init__(self, values: np.ndarray, chunk: int):
        self.values, self.chunk = values, chunk

    def __len__(self) -> int:
        return -(-(len(self.values) - 1) // self.chunk)

    def __iter__(self):
        n = len(self.values) - 1  # (input, next value) pairs
        for start in range(0, n, self.chunk):
            stop = min(start + self.chunk, n)
            x = torch.from_numpy(self.values[start:stop]).view(1, -1, 1)
            y = torch.from_numpy(self.values[start + 1 : stop + 1]).view(1, -1, 1)
            yield x, None, y


def model() -> SequenceModel:
    return SequenceModel(DeepRNN(1, HIDDEN, cell="lstm"), Head(HIDDEN, 1, pooling="every"))


def measure(steps: int, chunk: int = 1000, k1: int = 100, full: bool = False) -> dict:
    """Train one epoch over a stream of `steps` steps; peak memory and time.

    "before" is the peak after a warm-up fit on a stream of two chunks (imports, allocator
    pools, autograd start-up), so the growth measured is what the length costs.
    """
    torch.set_num_threads(1)
    torch.manual_seed(0)
    stream = TrainConfig(epochs=1, verbose=0, lr=1e-3, clip_norm=1.0, tbptt_k1=k1,
                         stateful=True)  # fmt: skip
    fit(model(), Chunks(series(2 * chunk + 1, seed=1), chunk), config=stream, task="regression")
    net, values = model(), series(steps)
    if full:  # the whole series as one batch, full BPTT: one update
        data, config = Chunks(values, len(values)), TrainConfig(epochs=1, verbose=0, lr=1e-3)
    else:
        data, config = Chunks(values, chunk), stream
    before = peak_mib()
    start = time.process_time()
    history = fit(net, data, config=config, task="regression")
    seconds = time.process_time() - start
    return {
        "steps": steps,
        "mode": "full BPTT, one batch" if full else f"stream: chunks of {chunk}, tbptt_k1={k1}",
        "updates": 1 if full else -(-(steps - 1) // k1),
        "series_mib": values.nbytes / 2**20,
        "peak_before_mib": before,
        "peak_after_mib": peak_mib(),
        "cpu_seconds": seconds,
        "train_loss": history["train_loss"][-1],
    }


def run_worker(steps: int, chunk: int, k1: int, full: bool) -> dict:
    """`measure` in a fresh interpreter, so every peak starts from the same baseline."""
    command = [sys.executable, __file__, "--worker", str(steps), "--chunk", str(chunk),
               "--k1", str(k1)] + (["--full"] if full else [])  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"worker for {steps} steps failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    lines = [
        "| steps | mode | updates | series (MiB) | peak RSS before (MiB) | peak RSS after (MiB) "
        "| growth in training (MiB) | CPU s | final loss |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['steps']:,} | {r['mode']} | {r['updates']:,} | {r['series_mib']:.1f} "
            f"| {r['peak_before_mib']:.0f} | {r['peak_after_mib']:.0f} "
            f"| {r['peak_after_mib'] - r['peak_before_mib']:.1f} | {r['cpu_seconds']:.1f} "
            f"| {r['train_loss']:.4f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--chunk", type=int, default=1000, help="steps per streamed batch")
    parser.add_argument("--k1", type=int, default=100, help="truncated BPTT: steps per update")
    parser.add_argument("--full-upto", type=int, default=100_000,
                        help="also run full BPTT (one batch) for lengths up to this")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(measure(args.worker, args.chunk, args.k1, args.full)))
        return 0
    rows = []
    for steps in args.lengths:
        modes = [False] + ([True] if steps <= args.full_upto else [])
        for full in modes:
            rows.append(run_worker(steps, args.chunk, args.k1, full))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    stream = [r for r in rows if r["mode"].startswith("stream")]
    growth = [r["peak_after_mib"] - r["peak_before_mib"] for r in stream]
    summary = (
        f"Streaming {stream[0]['steps']:,} to {stream[-1]['steps']:,} steps: peak RSS "
        f"{min(r['peak_after_mib'] for r in stream):.0f} to "
        f"{max(r['peak_after_mib'] for r in stream):.0f} MiB; training itself adds "
        f"{min(growth):.1f} to {max(growth):.1f} MiB whatever the length."
    )
    machine = f"{platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}"
    text = (
        "# Long streams in bounded memory\n\n"
        f"`python benchmarks/long_stream_memory.py` ({machine}; 1 thread; LSTM with "
        f"{HIDDEN} units, per-step head, one epoch; each row a fresh process; peak before: "
        "after imports, the series and a warm-up fit of two chunks).\n\n"
        f"{table(rows)}\n\n{summary}\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "long_stream_memory.md").write_text(text, encoding="utf-8")
    (args.out / "long_stream_memory.json").write_text(
        json.dumps({"machine": machine, "rows": rows, "summary": summary}, indent=2),
        encoding="utf-8",
    )
    print(f"\n{summary}\nwritten to {args.out}/long_stream_memory.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
