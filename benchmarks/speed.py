"""Speed of deeprnn against torch's fused RNN modules and a Python cell loop.

    python benchmarks/speed.py                       # every size and config (< 15 min)
    python benchmarks/speed.py --quick --out /tmp/b  # tiny sizes, one repeat (a test runs it)
    python benchmarks/speed.py --sizes long --configs lstm,zoneout --repeats 7
    python benchmarks/speed.py --device cuda         # on a GPU: cuDNN, Triton, TorchScript
                                                     # (runs benchmarks/gpu.py; see there)
    python benchmarks/speed.py --decode              # Seq2Seq beam search vs greedy decoding
                                                     # (runs benchmarks/decode.py; see there)

Every figure is a ratio measured in the same run: implementations alternate inside each
round (after a warm-up), and a ratio is the median over rounds of the per-round ratio.
With one thread (the default) times are the process's CPU time, not wall time: on a shared
machine wall time mostly measures the other jobs.
Rows: 2-layer stacks; "train" is forward + backward + SGD step, "inference" a forward
under no_grad in eval mode. Columns:
    deeprnn   DeepRNN with its default paths ("path": native | fused | loop, per layer 0)
    torch     torch.nn.LSTM / GRU / RNN of the same sizes (the fused reference); for skip
              wiring, two nn.LSTM layers joined by torch.cat (layer 2 reads I + H features)
    loop      the same DeepRNN forced onto its generic Python loop over nn.LSTMCell-style
              cells (use_native(False)), the slow reference
    GFLOP/s   matrix-product FLOPs of the step / deeprnn time; % peak: of a large matmul
              measured in this run with the same threads
Also: peak memory of one train step at the long size (ru_maxrss of a fresh subprocess per
config, minus its RSS before the step), and streaming `net.step` with B = 1 against the
same layers as torch.nn.LSTMCell calls. Writes a Markdown and a JSON file to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if find_spec("deeprnn") is None:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from deeprnn import DeepRNN  # noqa: E402

SIZES = {  # name: (T, B, I, H)
    "small": (100, 32, 32, 64),
    "medium": (100, 64, 128, 256),
    "long": (1000, 16, 32, 128),
}
QUICK_SIZE = {"tiny": (12, 4, 8, 16)}
CONFIGS = {
    "lstm": dict(cell="lstm"),
    "gru": dict(cell="gru"),
    "rnn": dict(cell="rnn"),
    "skip": dict(cell="lstm", wiring="skip"),
    "residual": dict(cell="lstm", residual=True),
    "bidirectional": dict(cell="lstm", bidirectional=True),
    "ln_lstm": dict(cell="lstm", layer_norm=True),
    "ln_gru": dict(cell="gru", layer_norm=True),
    "recurrent_dropout": dict(cell="lstm", recurrent_dropout=0.25),
    "zoneout": dict(cell="lstm", zoneout=0.1),
}
TORCH_MODULES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def target(config: str, size: str) -> float:
    """The agreed ceiling of the train-step ratio deeprnn / torch."""
    if config in ("lstm", "gru", "rnn"):
        return 1.02
    if config in ("skip", "residual", "bidirectional"):
        return 1.10
    return 2.0 if size in ("small", "tiny") else 1.5


class TorchSkip(nn.Module):
    """Skip wiring built from torch's own layers, as one writes it by hand: layer 2 is an
    nn.LSTM reading (x_t, h_t of layer 1), so it does the same arithmetic as deeprnn's."""

    def __init__(self, cls: type[nn.Module], inputs: int, hidden: int):
        super().__init__()
        self.first = cls(inputs, hidden, batch_first=True)
        self.second = cls(inputs + hidden, hidden, batch_first=True)

    def forward(self, x: torch.Tensor):
        return self.second(torch.cat([x, self.first(x)[0]], dim=-1))


def build(config: str, size: tuple[int, ...], seed: int = 0):
    """(deeprnn, torch module, loop deeprnn with the same weights) for one config."""
    _, _, inputs, hidden = size
    kw = CONFIGS[config]
    torch.manual_seed(seed)
    net = DeepRNN(inputs, hidden, num_layers=2, **kw)
    loop = DeepRNN(inputs, hidden, num_layers=2, **kw).use_native(False)
    loop.load_state_dict(net.state_dict())
    cls = TORCH_MODULES[kw["cell"]]
    if kw.get("wiring") == "skip":
        return net, TorchSkip(cls, inputs, hidden), loop
    ref = cls(
        inputs, hidden, num_layers=2, batch_first=True, bidirectional=kw.get("bidirectional", False)
    )
    return net, ref, loop


def train_step(module: nn.Module, x: torch.Tensor):
    opt = torch.optim.SGD(module.parameters(), lr=1e-3)

    def step():
        module.train()
        out = module(x)[0]
        out.square().mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def inference_step(module: nn.Module, x: torch.Tensor):
    def step():
        module.eval()
        with torch.no_grad():
            module(x)

    return step


def flops(config: str, size: tuple[int, ...], train: bool) -> float:
    """FLOPs of the matrix products (2 per multiply-add); backward adds dX and dW: x3."""
    time_, batch, inputs, hidden = size
    kw = CONFIGS[config]
    d = 2 if kw.get("bidirectional") else 1
    total, width = 0.0, inputs
    for layer in range(2):
        reads = width + (inputs if kw.get("wiring") == "skip" and layer else 0)
        total += d * 2.0 * time_ * batch * GATES[kw["cell"]] * hidden * (reads + hidden)
        width = d * hidden
    return total * (3 if train else 1)


def matmul_peak(repeats: int) -> float:
    """GFLOP/s of a 1024^3 float32 matrix product: the yardstick for "% peak"."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    times = []
    for _ in range(max(3, repeats)):
        start = clock()
        a @ b
        times.append(clock() - start)
    return 2 * 1024**3 / statistics.median(times) / 1e9


def clock() -> float:
    """CPU time of this process with one thread (robust to other jobs), else wall time."""
    return time.process_time() if torch.get_num_threads() == 1 else time.perf_counter()


def timed_rounds(
    fns: dict, repeats: dict[str, int], cold: tuple = (), budget_s: float = 0.0
) -> dict[str, list[float]]:
    """Warm each up once (but those in `cold`), then alternate them, `repeats[name]` rounds
    each. With `budget_s`, fast cases get more rounds (up to 4x) for the fns with the most
    repeats, as long as those rounds fit the budget."""
    start = clock()
    for name, fn in fns.items():
        if name not in cold:
            fn()
    warm = clock() - start
    most = max(repeats.values())
    rounds = most
    if budget_s and warm > 0:
        rounds = max(most, min(4 * most, int(budget_s / warm)))
    todo = {name: rounds if n == most else n for name, n in repeats.items()}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds):
        for name, fn in fns.items():
            if r < todo[name]:
                start = clock()
                fn()
                times[name].append(clock() - start)
    return times


def bench_config(config: str, size_name: str, size, repeats: int, peak: float) -> list[dict]:
    time_, batch, inputs, _ = size
    net, ref, loop = build(config, size)
    x = torch.randn(batch, time_, inputs)
    loop_repeats = max(1, repeats // 2) if time_ * batch <= 4000 else 1  # slow: one cold run
    rows = []
    for mode, make in (("train", train_step), ("inference", inference_step)):
        fns = {"deeprnn": make(net, x), "torch": make(ref, x), "loop": make(loop, x)}
        repeats_of = {"deeprnn": repeats, "torch": repeats, "loop": loop_repeats}
        # the slow loop needs no warm-up; small sizes get extra rounds within ~2 s
        times = timed_rounds(fns, repeats_of, cold=("loop",), budget_s=2.0)
        net.train(mode == "train")
        med = {name: statistics.median(t) for name, t in times.items()}
        per_round = [a / b for a, b in zip(times["deeprnn"], times["torch"])]
        work = flops(config, size, mode == "train")
        rows.append({
            "size": size_name, "config": config, "mode": mode, "path": net.explain()[0]["path"],
            "deeprnn_ms": 1e3 * med["deeprnn"], "torch_ms": 1e3 * med["torch"],
            "loop_ms": 1e3 * med["loop"], "ratio_torch": statistics.median(per_round),
            "ratio_loop": med["deeprnn"] / med["loop"],
            "gflops": work / med["deeprnn"] / 1e9,
            "peak_fraction": work / med["deeprnn"] / 1e9 / peak,
            "target": target(config, size_name) if mode == "train" else None,
        })  # fmt: skip
    return rows


def _rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process in MB, from /proc (Linux)."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def memory_child(config: str, impl: str, size: tuple[int, ...]) -> dict:
    """Run in a fresh process: peak RSS growth (MB) during one train step of `impl`.

    The peak is VmHWM after resetting it (/proc/self/clear_refs) just before the step:
    ru_maxrss would carry the parent's peak into the child, which forked from it.
    """
    time_, batch, inputs, _ = size
    net, ref, _ = build(config, size)
    x = torch.randn(batch, time_, inputs)
    step = train_step(net if impl == "deeprnn" else ref, x)
    before = _rss_mb("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak-RSS mark
        peak = lambda: _rss_mb("VmHWM")  # noqa: E731
    except OSError:
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # noqa: E731
    step()
    return {"config": config, "impl": impl, "step_mb": peak() - before}


def bench_memory(configs: list[str], size_name: str, threads: int) -> list[dict]:
    """One fresh process per measurement; torch's module is measured once per kind."""

    def child(config: str, impl: str) -> float:
        cmd = [sys.executable, __file__, "--memory-child", config, impl, size_name]
        out = subprocess.run(cmd + ["--threads", str(threads)], capture_output=True, text=True,
                             check=True).stdout  # fmt: skip
        return json.loads(out.strip().splitlines()[-1])["step_mb"]

    rows, reference = [], {}
    for config in configs:
        kw = CONFIGS[config]
        kind = (kw["cell"], kw.get("bidirectional", False))  # torch's module for this config
        if kind not in reference:
            reference[kind] = child(config, "torch")
        ours = child(config, "deeprnn")
        rows.append({"size": size_name, "config": config, "deeprnn_mb": ours,
                     "torch_mb": reference[kind], "ratio": ours / reference[kind]})  # fmt: skip
    return rows


def bench_step(size_name: str, size, config: str, calls: int) -> dict:
    """Streaming: net.step(x_t, state) with B = 1 vs the same layers as nn.LSTMCell calls;
    "layers": the RecurrentLayers called directly, without DeepRNN's input checks."""
    _, _, inputs, hidden = size
    torch.manual_seed(0)
    net = DeepRNN(inputs, hidden, num_layers=2, **CONFIGS[config]).eval()
    cells = [nn.LSTMCell(inputs, hidden), nn.LSTMCell(hidden, hidden)]
    x_t = torch.randn(1, inputs)
    state = net.step(x_t)[1]
    states = [(torch.zeros(1, hidden), torch.zeros(1, hidden)) for _ in cells]

    def ours():
        net.step(x_t, state)

    def layers():
        with torch.no_grad():
            u = x_t.unsqueeze(1)
            for layer, s in zip(net.layers, state):
                u = layer(u, s)[0]

    def theirs():
        with torch.no_grad():
            u = x_t
            for cell, s in zip(cells, states):
                u = cell(u, s)[0]

    def many(fn):
        def run():
            for _ in range(calls):
                fn()

        return run

    fns = {"deeprnn": many(ours), "layers": many(layers), "torch": many(theirs)}
    times = timed_rounds(fns, dict.fromkeys(fns, 5))
    ratio = statistics.median(a / b for a, b in zip(times["deeprnn"], times["torch"]))
    us = {k: 1e6 * statistics.median(t) / calls for k, t in times.items()}
    path = net.explain()[0]["path"]
    path = "loop (T = 1)" if path == "fused" else path  # one step: the cell loop is cheaper
    return {"size": size_name, "config": config, "path": path, "deeprnn_us": us["deeprnn"],
            "layers_us": us["layers"], "torch_cell_us": us["torch"], "ratio": ratio}  # fmt: skip


def keras_train_ms(config: str, size) -> float | None:
    """Keras 3 train step of the same stack, when keras is importable (not a dependency)."""
    if config not in ("lstm", "gru", "rnn") or find_spec("keras") is None:
        return None
    import numpy as np
    from keras import Sequential, layers

    time_, batch, inputs, hidden = size
    layer = {"lstm": layers.LSTM, "gru": layers.GRU, "rnn": layers.SimpleRNN}[config]
    model = Sequential([layers.Input((time_, inputs)), layer(hidden, return_sequences=True),
                        layer(hidden, return_sequences=True)])  # fmt: skip
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.randn(batch, time_, inputs).astype("float32")
    y = np.zeros((batch, time_, hidden), "float32")
    times = timed_rounds({"k": lambda: model.train_on_batch(x, y)}, {"k": 3})["k"]
    return 1e3 * statistics.median(times)


def machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    threads = torch.get_num_threads()
    return {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__, "threads": threads,
            "clock": "process CPU time" if threads == 1 else "wall time"}  # fmt: skip


def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# deeprnn speed", "",
        f"{m['cpu']}, {m['cores']} cores, {m['platform']}; Python {m['python']}, torch "
        f"{m['torch']}, {m['threads']} thread(s), times are {m['clock']}; matmul peak "
        f"{report['peak_gflops']:.1f} GFLOP/s; medians of {report['repeats']} rounds (up to 4x "
        f"more for fast cases; the loop: fewer); the run took {report['wall_s']:.0f} s (wall).",
        "", "Ratios < 1 mean deeprnn is faster. Target: train-step ratio ceiling.", "",
        "| size | config | mode | path | deeprnn ms | torch ms | loop ms | deeprnn/torch "
        "| deeprnn/loop | GFLOP/s | % peak | keras ms | target | met |",
        "|---" * 14 + "|",
    ]  # fmt: skip
    for r in report["rows"]:
        met = "" if r["target"] is None else ("yes" if r["ratio_torch"] <= r["target"] else "NO")
        lines.append(
            f"| {r['size']} | {r['config']} | {r['mode']} | {r['path']} | {r['deeprnn_ms']:.1f} "
            f"| {r['torch_ms']:.1f} | {r['loop_ms']:.1f} | {r['ratio_torch']:.2f} "
            f"| {r['ratio_loop']:.2f} | {r['gflops']:.1f} | {100 * r['peak_fraction']:.0f} "
            f"| {_fmt(r.get('keras_ms'), '.1f')} | {_fmt(r['target'], '.2f')} | {met} |"
        )
    if report["memory"]:
        lines += ["", "## Peak memory of one train step (RSS growth, MB; target <= 1.30)", "",
                  "| size | config | deeprnn | torch | ratio |", "|---" * 5 + "|"]  # fmt: skip
        for r in report["memory"]:
            lines.append(f"| {r['size']} | {r['config']} | {r['deeprnn_mb']:.0f} "
                         f"| {r['torch_mb']:.0f} | {r['ratio']:.2f} |")  # fmt: skip
    lines += ["", "## Streaming `net.step`, B = 1, per call (target <= 1.50 for lstm)", "",
              "| size | config | path | net.step us | its layers alone us | nn.LSTMCell x2 us "
              "| ratio step / cells |", "|---" * 7 + "|"]  # fmt: skip
    for r in report["step"]:
        times = [f"{r[k]:.1f}" for k in ("deeprnn_us", "layers_us", "torch_cell_us")]
        cells = [r["size"], r["config"], r["path"], *times, f"{r['ratio']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny size, 1 repeat, no memory")
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated size names")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated configs")
    parser.add_argument(  # 9: the per-round ratio moves ±5 % on a shared machine
        "--repeats", type=int, default=9, help="timed rounds per measurement"
    )
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (0: torch's default); 1 keeps timings stable on a "
                             "shared machine, where spinning OpenMP threads are at the mercy "
                             "of other jobs")  # fmt: skip
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cuda: benchmarks/gpu.py (cuDNN, Triton, TorchScript; adds the "
                             "large size); it refuses without a CUDA device")  # fmt: skip
    parser.add_argument("--decode", action="store_true",
                        help="instead: sentences / s of Seq2Seq beam search (widths 1, 4, 8) "
                             "against greedy, to decode.md (benchmarks/decode.py)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.decode:
        return _on_decode(args, parser)
    if args.device == "cuda":
        return _on_cuda(args, parser)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        config, impl, size_name = args.memory_child
        print(json.dumps(memory_child(config, impl, {**SIZES, **QUICK_SIZE}[size_name])))
        return 0
    sizes = QUICK_SIZE if args.quick else {s: SIZES[s] for s in args.sizes.split(",")}
    configs = args.configs.split(",")
    for c in configs:
        if c not in CONFIGS:
            parser.error(f"unknown config {c!r}; choose from {list(CONFIGS)}")
    repeats = 1 if args.quick else args.repeats
    start = time.perf_counter()
    peak = matmul_peak(repeats)
    rows, step = [], []
    for size_name, size in sizes.items():
        for config in configs:
            got = bench_config(config, size_name, size, repeats, peak)
            keras_ms = None if args.quick else keras_train_ms(config, size)
            got[0]["keras_ms"] = keras_ms
            rows += got
            print(markdown_row(got), flush=True)
        for config in ("lstm", "ln_lstm", "zoneout"):
            if config in configs:
                step.append(bench_step(size_name, size, config, 20 if args.quick else 200))
    memory = []
    if not args.quick and "long" in sizes:
        memory = bench_memory(configs, "long", args.threads)
    report = {"machine": machine(), "peak_gflops": peak, "repeats": repeats, "rows": rows,
              "memory": memory, "step": step, "wall_s": time.perf_counter() - start}  # fmt: skip
    write_tables(Path(args.out), "speed_quick" if args.quick else "speed", report, markdown)
    return 0


def write_tables(out: Path, stem: str, report: dict, markdown) -> None:
    """out/stem.json (the report) and out/stem.md (markdown(report)), printed too."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (out / f"{stem}.md").write_text(text)
    print(text)


def _on_cuda(args, parser) -> int:
    """`--device cuda`: benchmarks/gpu.py with this command line's choices."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import gpu

    argv = ["--repeats", str(args.repeats), "--out", args.out]
    if args.quick:
        argv.append("--quick")
    if args.sizes != parser.get_default("sizes"):  # else gpu.py's, with the large size
        argv += ["--sizes", args.sizes]
    if args.configs != parser.get_default("configs"):
        argv += ["--configs", args.configs]
    return gpu.main(argv)


def _on_decode(args, parser) -> int:
    """`--decode`: benchmarks/decode.py with this command line's --quick, --threads, --out
    and --repeats (when given; decode.py's own default otherwise)."""
    if args.device != "cpu":
        parser.error("--decode measures on the CPU; drop --device")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import decode

    argv = ["--threads", str(args.threads), "--out", args.out]
    if args.quick:
        argv.append("--quick")
    if args.repeats != parser.get_default("repeats"):
        argv += ["--repeats", str(args.repeats)]
    return decode.main(argv)


def markdown_row(rows: list[dict]) -> str:
    """A one-line progress note per config."""
    return "  ".join(
        f"{r['size']} {r['config']} {r['mode']}: {r['ratio_torch']:.2f}x torch, "
        f"{r['ratio_loop']:.2f}x loop ({r['path']})"
        for r in rows
    )


if __name__ == "__main__":
    sys.exit(main())
