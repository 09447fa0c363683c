"""What `lengths=` costs: a train step on ragged rows against the same padded batch.

    python benchmarks/lengths.py                      # every size and config (~10 min)
    python benchmarks/lengths.py --quick --out /tmp/b # tiny size, one round (a test runs it)
    python benchmarks/lengths.py --sizes medium --configs lstm,ln_lstm --repeats 7

Rows: 2-layer stacks at the sizes of benchmarks/speed.py; a train step is forward +
backward + SGD step. Each ratio is measured in the same run, implementations alternating
inside each round (speed.py's `timed_rounds`, process CPU time with one thread):
    mid      lengths uniform in [T/2, T] (the issue's case), / the padded batch
    short    lengths uniform in [1, T] with one full row (short on average), / padded
    packed   torch.nn.LSTM / GRU / RNN on a PackedSequence of the mid lengths, / torch
             padded: the route the torch documentation gives for variable lengths
Target: mid <= 1.15 for every config; short < 1 (cheaper than padded).
Also one training epoch of a 2-layer LSTM over ragged sequences (lengths 10-200) with the
estimators' batches bucketed by length (their default when shuffling) against plain
shuffled batches. Writes lengths.md and lengths.json to --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402  (its sizes, builders and timer)

from deeprnn import DeepRNN  # noqa: E402

CONFIGS = ("lstm", "gru", "rnn", "skip", "bidirectional", "ln_lstm")
MID_TARGET = 1.15


def ragged_lengths(batch: int, time_: int, low: int, seed: int) -> torch.Tensor:
    """Lengths uniform in [low, T] with the first row full (so the batch is T long)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(low, time_ + 1, (batch,), generator=g)
    lengths[0] = time_
    return lengths


def _step(module, x, lengths=None, packed=False):
    opt = torch.optim.SGD(module.parameters(), lr=1e-3)

    def run():
        module.train()
        if packed:
            seq = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out = pad_packed_sequence(module(seq)[0], batch_first=True)[0]
        elif lengths is None:
            out = module(x)[0]
        else:
            out = module(x, lengths=lengths)[0]
        out.square().mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return run


def bench(config: str, size_name: str, size, repeats: int) -> dict:
    """One row: ms of each case and the ratios, medians over alternating rounds."""
    time_, batch, inputs, _ = size
    net, ref, _ = speed.build(config, size)
    x = torch.randn(batch, time_, inputs)
    mid = ragged_lengths(batch, time_, max(1, time_ // 2), seed=1)
    short = ragged_lengths(batch, time_, 1, seed=2)
    fns = {"padded": _step(net, x), "mid": _step(net, x, mid), "short": _step(net, x, short)}
    native_ref = isinstance(ref, (torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN))
    if native_ref and not config.startswith("ln"):
        fns["torch"], fns["torch_packed"] = _step(ref, x), _step(ref, x, mid, packed=True)
    times = speed.timed_rounds(fns, {name: repeats for name in fns}, budget_s=2.0)

    def ratio(a: str, b: str) -> float | None:
        if a not in times:
            return None
        return statistics.median(p / q for p, q in zip(times[a], times[b]))

    return {
        "size": size_name, "config": config, "path": net.explain()[0]["path"],
        "padded_ms": 1e3 * statistics.median(times["padded"]),
        "mid_ratio": ratio("mid", "padded"), "short_ratio": ratio("short", "padded"),
        "torch_packed_ratio": ratio("torch_packed", "torch"),
        "mean_short_length": float(short.float().mean()), "target": MID_TARGET,
    }  # fmt: skip


def bench_bucketing(n: int, max_len: int, repeats: int) -> dict:
    """ms of one epoch (forward + backward + SGD over every batch of 32) with bucketed and
    with plain shuffled batches of the same sequences, and the padded steps of each."""
    from deeprnn.data import batches

    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((int(t), 16)).astype(np.float32)
            for t in rng.integers(max(1, max_len // 20), max_len + 1, n)]  # fmt: skip
    torch.manual_seed(0)
    net = DeepRNN(16, 64, num_layers=2)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)

    def epoch(bucket: bool):
        def run():
            for x, lengths, _ in batches(seqs, batch_size=32, seed=1, bucket=bucket):
                net(x, lengths=lengths)[0].square().mean().backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

        return run

    times = speed.timed_rounds({"bucket": epoch(True), "plain": epoch(False)},
                               {"bucket": repeats, "plain": repeats})  # fmt: skip
    steps = {}
    for b in (True, False):
        padded = batches(seqs, batch_size=32, seed=1, bucket=b)
        steps[b] = sum(x.shape[0] * x.shape[1] for x, _, _ in padded)
    return {"n": n, "max_len": max_len, "bucket_ms": 1e3 * statistics.median(times["bucket"]),
            "plain_ms": 1e3 * statistics.median(times["plain"]),
            "ratio": statistics.median(a / b for a, b in zip(times["bucket"], times["plain"])),
            "padded_steps_ratio": steps[True] / steps[False]}  # fmt: skip


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# deeprnn: the cost of `lengths=`", "",
        f"{m['cpu']}, {m['cores']} cores; torch {m['torch']}, {m['threads']} thread(s), times "
        f"are {m['clock']}; medians of per-round ratios over {report['repeats']}+ rounds; the "
        f"run took {report['wall_s']:.0f} s (wall).", "",
        "mid: lengths in [T/2, T]; short: in [1, T] (mean shown); both / the same padded batch "
        "without lengths. torch packed: nn.LSTM & co. on a PackedSequence / padded.", "",
        "| size | config | path | padded ms | mid / padded | short / padded | mean short length "
        "| torch packed / padded | mid <= 1.15 | short < 1 |",
        "|---" * 10 + "|",
    ]  # fmt: skip
    for r in report["rows"]:
        packed = "" if r["torch_packed_ratio"] is None else f"{r['torch_packed_ratio']:.2f}"
        lines.append(
            f"| {r['size']} | {r['config']} | {r['path']} | {r['padded_ms']:.1f} "
            f"| {r['mid_ratio']:.2f} | {r['short_ratio']:.2f} | {r['mean_short_length']:.0f} "
            f"| {packed} | {'yes' if r['mid_ratio'] <= r['target'] else 'NO'} "
            f"| {'yes' if r['short_ratio'] < 1 else 'NO'} |"
        )
    b = report.get("bucketing")
    if b:
        lines += ["", f"One epoch over {b['n']} sequences of 10-{b['max_len']} steps (2-layer "
                  "LSTM, 16 -> 64, batches of 32): bucketed by length / plain shuffled = "
                  f"{b['ratio']:.2f} ({b['bucket_ms']:.0f} vs {b['plain_ms']:.0f} ms; padded "
                  f"steps {b['padded_steps_ratio']:.2f}x)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny size, one round")
    parser.add_argument("--sizes", default=",".join(speed.SIZES), help="comma-separated sizes")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated configs")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per row")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--out", default=str(speed.ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    configs = args.configs.split(",")
    for c in configs:
        if c not in speed.CONFIGS:
            parser.error(f"unknown config {c!r}; choose from {list(CONFIGS)}")
    known = {**speed.SIZES, **speed.QUICK_SIZE}
    sizes = speed.QUICK_SIZE if args.quick else {s: known[s] for s in args.sizes.split(",")}
    repeats = 1 if args.quick else args.repeats
    start = time.perf_counter()
    rows = []
    for size_name, size in sizes.items():
        for config in configs:
            rows.append(bench(config, size_name, size, repeats))
            r = rows[-1]
            print(f"{size_name} {config}: mid {r['mid_ratio']:.2f}x, short "
                  f"{r['short_ratio']:.2f}x padded", flush=True)  # fmt: skip
    bucketing = bench_bucketing(64, 30, 1) if args.quick else bench_bucketing(512, 200, 3)
    report = {"machine": speed.machine(), "repeats": repeats, "rows": rows,
              "bucketing": bucketing, "wall_s": time.perf_counter() - start}  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "lengths_quick" if args.quick else "lengths"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (out / f"{stem}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
