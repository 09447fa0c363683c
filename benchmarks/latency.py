"""Single-sequence predict latency of each estimator: ours, raw torch, onnxruntime.

    python benchmarks/latency.py                       # B = 1, T = 100, H = 128, 2 layers
    python benchmarks/latency.py --quick --out /tmp/b  # tiny sizes (a test runs it)
    python benchmarks/latency.py --rows                # + torch's kernel vs our loop by rows

For each estimator, fitted for one epoch on random data of the benchmark's shape (speed
does not depend on what was learned), one call of its own predict on ONE sequence
(`est.predict([x])`; the Forecaster: `predict(y=history)`) is timed against
    torch  the same sizes as raw torch modules (nn.Embedding for text, nn.LSTM, nn.Linear)
           under no_grad: the floor of a hand-written model with no input handling;
    onnx   the estimator's own `export(...)` run in onnxruntime on the prepared input
           (what the network sees, without the estimator's scaling / tokenising).
Calls alternate in rounds (one thread each; process CPU time); medians per call.
Target: ours within 2x onnxruntime. Writes latency.md and latency.json to --out.

`--rows` adds a table that sets `deeprnn.kernels.infer.MAX_ROWS`: a 2-layer bidirectional
LSTM / GRU / tanh RNN of H (the classifier's body) on B rows, torch's fused kernel against the C++
few-row loop (`deeprnn.kernels.infer`), under no_grad, at 1 and 2 threads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402  (its timer and machine description)

from deeprnn.estimators import (  # noqa: E402
    Forecaster,
    SequenceClassifier,
    SequenceRegressor,
    SequenceTagger,
    TextClassifier,
)
from deeprnn.kernels import infer  # noqa: E402

TARGET = 2.0


def fitted(name: str, time_: int, features: int, hidden: int):
    """(estimator fitted for one epoch, its predict call on one sequence, the network's
    input for that sequence as ONNX feeds it, vocabulary size or None)."""
    rng = np.random.default_rng(0)
    common = dict(hidden_size=hidden, num_layers=2, epochs=1, validation_fraction=0.0)
    seqs = [rng.standard_normal((time_, features)).astype(np.float32) for _ in range(8)]
    if name == "SequenceClassifier":
        est = SequenceClassifier(**common).fit(seqs, [0, 1] * 4)
    elif name == "SequenceRegressor":
        est = SequenceRegressor(**common).fit(seqs, rng.standard_normal(8))
    elif name == "SequenceTagger":
        est = SequenceTagger(**common).fit(seqs, [rng.integers(0, 3, time_) for _ in seqs])
    elif name == "TextClassifier":
        words = [f"w{i}" for i in range(50)]
        texts = [" ".join(rng.choice(words, time_)) for _ in range(8)]
        est = TextClassifier(**common).fit(texts, [0, 1] * 4)
        ids = np.array([est.vocab_.encode(texts[0].split())], dtype=np.int64)
        return est, lambda: est.predict([texts[0]]), ids, len(est.vocab_)
    else:  # Forecaster: one series, the lookback window is the sequence
        series = rng.standard_normal(4 * time_).cumsum()
        est = Forecaster(lookback=time_, horizon=12, **common).fit(series)
        window = np.zeros((1, time_, 1), dtype=np.float32)
        return est, lambda: est.predict(y=series), window, None
    x = seqs[0][None]
    return est, lambda: est.predict([seqs[0]]), x, None


def raw_torch(time_: int, features: int, hidden: int, outputs: int, vocab: int | None):
    """The same sizes as plain torch modules: a no-frills forward of one sequence."""
    torch.manual_seed(0)
    embed = nn.Embedding(vocab, features) if vocab else None
    lstm, linear = nn.LSTM(features, hidden, 2, batch_first=True), nn.Linear(hidden, outputs)
    x = torch.randint(0, vocab, (1, time_)) if vocab else torch.randn(1, time_, features)

    def run():
        with torch.no_grad():
            h = lstm(embed(x) if embed is not None else x)[0]
            return linear(h[:, -1])

    return run


def onnx_call(est, x: np.ndarray):
    """A callable running the estimator's ONNX export on x, or None without onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    path = Path(tempfile.mkdtemp()) / "model.onnx"
    est.export(path, "onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {"x": x, "lengths": np.array([x.shape[1]], dtype=np.int64)}
    names = {i.name for i in session.get_inputs()}
    feeds = {k: v for k, v in feeds.items() if k in names}
    return lambda: session.run(None, feeds)


def bench(name: str, time_: int, features: int, hidden: int, calls: int) -> dict:
    est, ours, x, vocab = fitted(name, time_, features, hidden)
    width = 12 if name == "Forecaster" else 2
    fns = {"deeprnn": ours, "torch": raw_torch(time_, features, hidden, width, vocab)}
    onnx = onnx_call(est, x)
    if onnx is not None:
        fns["onnx"] = onnx

    def many(fn):
        def run():
            for _ in range(calls):
                fn()

        return run

    times = speed.timed_rounds({k: many(f) for k, f in fns.items()}, dict.fromkeys(fns, 7))
    ms = {k: 1e3 * statistics.median(t) / calls for k, t in times.items()}
    ratio = None if onnx is None else ms["deeprnn"] / ms["onnx"]
    return {"estimator": name, "deeprnn_ms": ms["deeprnn"], "torch_ms": ms["torch"],
            "onnx_ms": ms.get("onnx"), "ratio_onnx": ratio, "ratio_torch":
            ms["deeprnn"] / ms["torch"], "target": TARGET}  # fmt: skip


def rows_sweep(time_: int, hidden: int, calls: int, rows=(1, 2, 4, 8, 16, 32, 64)) -> list[dict]:
    """torch's kernel vs the few-row loop (forced on) for B rows, ms per call."""
    out, threads_before, limits = [], torch.get_num_threads(), infer.MAX_ROWS
    infer.MAX_ROWS = dict.fromkeys(limits, 1 << 30)  # the loop at every row count
    try:
        _sweep(time_, hidden, calls, rows, out)
    finally:
        infer.MAX_ROWS = limits
        torch.set_num_threads(threads_before)
    return out


def _sweep(time_: int, hidden: int, calls: int, rows, out: list[dict]) -> None:
    from torch import _VF

    cells = (("lstm", _VF.lstm, 4), ("gru", _VF.gru, 3), ("rnn_tanh", _VF.rnn_tanh, 1))
    for name, kernel, gates in cells:
        torch.manual_seed(0)
        weights = []
        for layer in range(2):
            for _ in range(2):
                width = 32 if layer == 0 else 2 * hidden
                weights += [torch.randn(gates * hidden, width), torch.randn(gates * hidden, hidden),
                            torch.randn(gates * hidden), torch.randn(gates * hidden)]  # fmt: skip
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for b in rows:
                x, h = torch.randn(b, time_, 32), torch.zeros(4, b, hidden)
                hx = (h, h) if name == "lstm" else h

                def native(x=x, hx=hx, kernel=kernel, weights=weights):
                    with torch.no_grad():
                        kernel(x, hx, weights, True, 2, 0.0, False, True, True)

                def loop(x=x, hx=hx, kernel=kernel, weights=weights):
                    with torch.no_grad():
                        infer.run_kernel(kernel, x, hx, weights, True, 2, True)

                fns = {"torch": native, "loop": loop}
                times = speed.timed_rounds(
                    {k: (lambda f=f: [f() for _ in range(calls)]) for k, f in fns.items()},
                    dict.fromkeys(fns, 5),
                )
                ms = {k: 1e3 * statistics.median(t) / calls for k, t in times.items()}
                out.append({"cell": name, "threads": threads, "rows": b, "torch_ms": ms["torch"],
                            "loop_ms": ms["loop"], "ratio": ms["loop"] / ms["torch"]})  # fmt: skip


def markdown(report: dict) -> str:
    m, (t, f, h) = report["machine"], report["size"]
    lines = [
        "# deeprnn: single-sequence predict latency", "",
        f"{m['cpu']}; torch {m['torch']}, 1 thread (onnxruntime too), {m['clock']}; B = 1, "
        f"T = {t}, {f} features, 2 layers of {h}; the run took {report['wall_s']:.0f} s.", "",
        "| estimator | deeprnn ms | raw torch ms | onnxruntime ms | deeprnn / onnx "
        "| deeprnn / torch | <= 2x onnx |", "|---" * 7 + "|",
    ]  # fmt: skip
    for r in report["rows"]:
        onnx = "" if r["onnx_ms"] is None else f"{r['onnx_ms']:.2f}"
        ratio = "" if r["ratio_onnx"] is None else f"{r['ratio_onnx']:.2f}"
        met = "" if r["ratio_onnx"] is None else ("yes" if r["ratio_onnx"] <= TARGET else "NO")
        lines.append(f"| {r['estimator']} | {r['deeprnn_ms']:.2f} | {r['torch_ms']:.2f} "
                     f"| {onnx} | {ratio} | {r['ratio_torch']:.2f} | {met} |")  # fmt: skip
    if report.get("rows_sweep"):
        lines += ["", f"Few-row loop against torch's kernel (2-layer bidirectional, H = {h}, "
                  f"T = {t // 2}, 32 inputs; no_grad): `infer.MAX_ROWS` = {infer.MAX_ROWS}.", "",
                  "| cell | threads | rows | torch ms | loop ms | loop / torch |",
                  "|---" * 6 + "|"]  # fmt: skip
        for r in report["rows_sweep"]:
            lines.append(f"| {r['cell']} | {r['threads']} | {r['rows']} | {r['torch_ms']:.2f} "
                         f"| {r['loop_ms']:.2f} | {r['ratio']:.2f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


ESTIMATORS = ("SequenceClassifier", "SequenceRegressor", "SequenceTagger", "TextClassifier",
              "Forecaster")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few calls")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--rows", action="store_true", help="+ the few-row loop by batch size")
    parser.add_argument("--out", default=str(speed.ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    size = (12, 3, 8) if args.quick else (100, 8, 128)
    calls = 3 if args.quick else 50
    start = time.perf_counter()
    rows = []
    for name in ESTIMATORS:
        rows.append(bench(name, *size, calls))
        print(f"{name}: {rows[-1]['deeprnn_ms']:.2f} ms", flush=True)
    sweep = rows_sweep(size[0] // 2, size[2], calls // 5 or 1) if args.rows else []
    report = {"machine": speed.machine(), "size": size, "rows": rows, "rows_sweep": sweep,
              "wall_s": time.perf_counter() - start}  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "latency_quick" if args.quick else "latency"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (out / f"{stem}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
