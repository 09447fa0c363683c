"""The CPU BLAS behind ATen's fp32 matmul against oneDNN, on the GEMM shapes of our loops.

    python benchmarks/gemm.py                       # the shapes of the long LN-LSTM train step
    python benchmarks/gemm.py --quick --out /tmp/b  # tiny shapes, few repeats (a test runs it)

torch.nn.LSTM runs its math in oneDNN (mkldnn_rnn_layer); deeprnn's own loops call ATen's
mm / addmm, which goes to the BLAS torch was built with (MKL in the CPU wheels). On an AMD
EPYC here MKL's fp32 GEMM ran 2-2.5x slower than oneDNN's on the same shapes, which is most
of the long LN-LSTM train step's gap to nn.LSTM: this table tells, per machine, whether
routing those products to oneDNN pays. oneDNN is reached through
`torch.ops.mkldnn._linear_pointwise` (x @ w.T + b on dense fp32 tensors). Times are the
process's CPU time with 1 thread (the default), else wall time, best of the rounds; a ratio
is oneDNN / BLAS of the same shape in the same run. Writes a Markdown and a JSON file to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import speed  # noqa: E402  (its timer and machine description)

# name: (M, K, N) of out (M, N) = x (M, K) @ w.T, w (N, K)
SHAPES = {
    "input projection, layer 1 (T*B=16000, I=32 -> 4H=512)": (16000, 32, 512),
    "input projection, layer 2 (16000, H=128 -> 512)": (16000, 128, 512),
    "dL/dx, layer 2 (16000, 512 -> 128)": (16000, 512, 128),
    "dW_ih (512, 16000 -> 128)": (512, 16000, 128),
    "dW_hh block (512, 32 steps * 16 rows -> 128)": (512, 512, 128),
    "one step W_hh h (16 rows, 128 -> 512)": (16, 128, 512),
}
QUICK_SHAPES = {"tiny (64, 16 -> 32)": (64, 16, 32), "one row (1, 16 -> 32)": (1, 16, 32)}


def onednn_available() -> bool:
    """Whether this torch build has oneDNN's dense linear op."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def best_ms(fn, repeats: int) -> float:
    """Best time (speed.clock) of `repeats` calls after one warm-up, in ms."""
    fn()
    times = []
    for _ in range(repeats):
        start = speed.clock()
        fn()
        times.append(speed.clock() - start)
    return min(times) * 1e3


def bench_shape(m: int, k: int, n: int, repeats: int) -> dict:
    """BLAS and oneDNN times of one shape, and oneDNN's largest error against float64."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(m, k, generator=gen)
    w = torch.randn(n, k, generator=gen)
    b = torch.randn(n, generator=gen)
    blas = best_ms(lambda: F.linear(x, w, b), repeats)
    row = {"M": m, "K": k, "N": n, "blas_ms": blas, "onednn_ms": None, "ratio": None}
    if onednn_available():
        exact = F.linear(x.double(), w.double(), b.double())
        got = torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
        row["onednn_ms"] = best_ms(
            lambda: torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], ""), repeats
        )
        row["ratio"] = row["onednn_ms"] / blas
        row["max_error"] = float((got.double() - exact).abs().max())
        row["blas_error"] = float((F.linear(x, w, b).double() - exact).abs().max())
    row["gflops_blas"] = 2 * m * k * n / blas / 1e6
    return row


def markdown(report: dict) -> str:
    """The report as a Markdown table."""
    lines = [
        f"# fp32 GEMM: ATen's BLAS vs oneDNN ({report['machine']['cpu']}, "
        f"{report['machine']['threads']} thread(s))",
        "",
        "| shape | M x K x N | BLAS ms | GFLOP/s | oneDNN ms | oneDNN / BLAS |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        one = "n/a" if r["onednn_ms"] is None else f"{r['onednn_ms']:.3f}"
        ratio = "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(
            f"| {r['name']} | {r['M']} x {r['K']} x {r['N']} | {r['blas_ms']:.3f} | "
            f"{r['gflops_blas']:.0f} | {one} | {ratio} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the table, print it and write gemm[_quick].md / .json to --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, few repeats")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per shape")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: leave as is)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    repeats = 2 if args.quick else args.repeats
    rows = [dict(name=name, **bench_shape(*shape, repeats)) for name, shape in shapes.items()]
    report = {"machine": {**speed.machine(), "onednn": onednn_available()}, "rows": rows}
    text = markdown(report)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "gemm_quick" if args.quick else "gemm"
    (args.out / f"{stem}.md").write_text(text)
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
