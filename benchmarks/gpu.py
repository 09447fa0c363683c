"""Speed and memory of deeprnn on a CUDA GPU: cuDNN, our Triton kernels, the TorchScript loops.

    python benchmarks/gpu.py                        # every size and config (a few minutes)
    python benchmarks/speed.py --device cuda        # the same
    python benchmarks/gpu.py --quick --out /tmp/b   # tiny size, one round: a smoke test
    python benchmarks/gpu.py --sizes large --configs ln_lstm,zoneout --repeats 15

It refuses (exit status 2, saying why) without a CUDA device or without triton
(`pip install 'deeprnn[gpu]'`). The 2-layer stacks and the train step (forward + backward +
SGD step) and inference (forward under no_grad, eval mode) are those of benchmarks/speed.py,
at its three sizes plus large (T=100, B=256, I=512, H=1024), in float32. Columns, all with
the same weights and measured in the same run, alternating inside each round:

    cuDNN        torch.nn.LSTM / GRU / RNN of the same sizes (for the layer-norm, recurrent
                 dropout and zoneout configs: the plain nn.LSTM, the yardstick of the targets)
    deeprnn      DeepRNN with its default paths ("path" of layer 0: native = cuDNN itself;
                 triton for what cuDNN cannot compute)
    triton       DeepRNN on our Triton kernels (torch's kernel off for the plain configs)
    torchscript  the same on the TorchScript loops (the Triton path off): the path before
Times are wall time between CUDA synchronisations, medians over rounds; ratios are medians
of per-round ratios against cuDNN. Peak memory: torch.cuda.max_memory_allocated during one
train step, minus what was allocated before it. Writes gpu.md and gpu.json to --out.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import speed  # noqa: E402  (benchmarks/speed.py: sizes, configs, models, steps)
import torch  # noqa: E402

from deeprnn.kernels import triton as triton_path  # noqa: E402

SIZES = {**speed.SIZES, "large": (100, 256, 512, 1024)}
QUICK_SIZE = speed.QUICK_SIZE
CONFIGS = ["lstm", "gru", "rnn", "ln_lstm", "recurrent_dropout", "zoneout"]
PLAIN = ("lstm", "gru", "rnn")
IMPLS = ("cudnn", "deeprnn", "triton", "torchscript")


def refusal() -> str | None:
    """Why this benchmark cannot run here, or None."""
    if not torch.cuda.is_available():
        return (f"benchmarks/gpu.py needs a CUDA device: torch.cuda.is_available() is False "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}). Run "
                "it on a machine with an NVIDIA GPU and a CUDA build of torch; "
                "benchmarks/speed.py measures the CPU.")  # fmt: skip
    if not triton_path.available():
        return ("benchmarks/gpu.py needs triton for its Triton column: "
                "pip install 'deeprnn[gpu]' (or pip install 'triton>=3').")  # fmt: skip
    return None


def target(config: str, size: str) -> float | None:
    """The agreed ceiling of the train-step ratio against cuDNN (issue 15): plain layers at
    cuDNN; the others <= 1.5x cuDNN's LSTM at the medium and large sizes."""
    if config in PLAIN:
        return 1.02
    return 1.5 if size in ("medium", "large") else None


def models(config: str, size, device) -> dict:
    """{impl: (module, triton on?)} with the same weights, on `device`."""
    net, ref, _ = speed.build(config, size)
    triton_net, script_net = (speed.build(config, size)[0] for _ in range(2))
    for other in (triton_net, script_net):
        other.load_state_dict(net.state_dict())
        for layer in other.layers:
            layer.torch_kernel = False  # plain configs: ours instead of cuDNN
    found = {"cudnn": (ref, True), "deeprnn": (net, True), "triton": (triton_net, True),
             "torchscript": (script_net, False)}  # fmt: skip
    return {name: (module.to(device), on) for name, (module, on) in found.items()}


def _with_triton(fn, on: bool):
    def run():
        triton_path.enabled = on
        try:
            fn()
        finally:
            triton_path.enabled = True

    return run


def _synced(fn, device) -> float:
    """Wall time of fn() from an idle device to an idle device (the tests run it on CPU)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def bench_config(config: str, size_name: str, size, repeats: int, device) -> list[dict]:
    time_, batch, inputs, _ = size
    found = models(config, size, device)
    x = torch.randn(batch, time_, inputs, device=device)
    rows = []
    for mode, make in (("train", speed.train_step), ("inference", speed.inference_step)):
        fns = {name: _with_triton(make(module, x), on) for name, (module, on) in found.items()}
        for fn in fns.values():  # warm-up: Triton compiles each kernel variant once
            fn()
            fn()
        times = {name: [] for name in fns}
        for _ in range(repeats):
            for name, fn in fns.items():
                times[name].append(_synced(fn, device))
        med = {name: statistics.median(t) for name, t in times.items()}
        paths = {}
        for name in ("deeprnn", "triton", "torchscript"):
            module, on = found[name]
            module.train(mode == "train")
            triton_path.enabled = on
            paths[name] = module.explain()[0]["path"]
            triton_path.enabled = True
        row = {"size": size_name, "config": config, "mode": mode, "paths": paths,
               "target": target(config, size_name) if mode == "train" else None}  # fmt: skip
        for name in fns:
            row[f"{name}_ms"] = 1e3 * med[name]
            per_round = [a / b for a, b in zip(times[name], times["cudnn"])]
            row[f"{name}_ratio"] = statistics.median(per_round)
        rows.append(row)
    return rows


def bench_memory(config: str, size_name: str, size, device) -> dict:
    """Peak CUDA memory (MB) of one train step per implementation, beyond what was held."""
    time_, batch, inputs, _ = size
    row = {"size": size_name, "config": config}
    for name, (module, on) in models(config, size, device).items():
        x = torch.randn(batch, time_, inputs, device=device)
        step = _with_triton(speed.train_step(module, x), on)
        step()  # compiled and warm: the peak is the step's own
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize()
        row[f"{name}_mb"] = (torch.cuda.max_memory_allocated(device) - before) / 2**20
        del module, x, step
    return row


def machine(device) -> dict:
    props = torch.cuda.get_device_properties(device)
    import triton

    return {"gpu": props.name, "gpu_memory_gb": props.total_memory / 2**30,
            "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "triton": triton.__version__}  # fmt: skip


def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# deeprnn on a GPU", "",
        f"{m['gpu']} ({m['gpu_memory_gb']:.0f} GiB), CUDA {m['cuda']}, cuDNN {m['cudnn']}, "
        f"torch {m['torch']}, triton {m['triton']}, Python {m['python']}; float32; medians of "
        f"{report['repeats']} alternating rounds; the run took {report['wall_s']:.0f} s.", "",
        "Ratios are against cuDNN (nn.LSTM / GRU / RNN; the plain nn.LSTM for layer norm, "
        "recurrent dropout and zoneout); < 1 is faster. Target: the train-step ceiling of "
        "the deeprnn column.", "",
        "| size | config | mode | deeprnn path | cuDNN ms | deeprnn ms | triton ms "
        "| torchscript ms | deeprnn/cuDNN | triton/cuDNN | torchscript/cuDNN | target | met |",
        "|---" * 13 + "|",
    ]  # fmt: skip
    for r in report["rows"]:
        met = "" if r["target"] is None else ("yes" if r["deeprnn_ratio"] <= r["target"] else "NO")
        cells = [r["size"], r["config"], r["mode"], r["paths"]["deeprnn"]]
        cells += [f"{r[f'{name}_ms']:.2f}" for name in IMPLS]
        cells += [f"{r[f'{name}_ratio']:.2f}" for name in IMPLS[1:]]
        cells += [_fmt(r["target"], ".2f"), met]
        lines.append("| " + " | ".join(cells) + " |")
    if report["memory"]:
        lines += ["", "## Peak CUDA memory of one train step (MB beyond the model)", "",
                  "| size | config | cuDNN | deeprnn | triton | torchscript | deeprnn/cuDNN "
                  "| triton/cuDNN |", "|---" * 8 + "|"]  # fmt: skip
        for r in report["memory"]:
            mb = [f"{r[f'{name}_mb']:.0f}" for name in IMPLS]
            ratios = [f"{r[f'{name}_mb'] / max(r['cudnn_mb'], 1e-9):.2f}"
                      for name in ("deeprnn", "triton")]  # fmt: skip
            lines.append("| " + " | ".join([r["size"], r["config"], *mb, *ratios]) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny size, 1 round")
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated size names")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"comma-separated, from {list(speed.CONFIGS)}")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=9, help="timed rounds per measurement")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory table")
    parser.add_argument("--out", default=str(speed.ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    sizes = QUICK_SIZE if args.quick else {}
    for s in [] if args.quick else args.sizes.split(","):
        if s not in SIZES:
            parser.error(f"unknown size {s!r}; choose from {list(SIZES)}")
        sizes[s] = SIZES[s]
    configs = args.configs.split(",")
    for c in configs:
        if c not in speed.CONFIGS:
            parser.error(f"unknown config {c!r}; choose from {list(speed.CONFIGS)}")
    why = refusal()
    if why is not None:
        print(why, file=sys.stderr)
        return 2
    device = torch.device("cuda")
    repeats = 1 if args.quick else args.repeats
    start = time.perf_counter()
    rows, memory = [], []
    for size_name, size in sizes.items():
        for config in configs:
            got = bench_config(config, size_name, size, repeats, device)
            rows += got
            print("  ".join(f"{r['size']} {r['config']} {r['mode']}: deeprnn "
                            f"{r['deeprnn_ratio']:.2f}x cuDNN ({r['paths']['deeprnn']}), triton "
                            f"{r['triton_ratio']:.2f}x, torchscript {r['torchscript_ratio']:.2f}x"
                            for r in got), flush=True)  # fmt: skip
            if not args.no_memory:
                memory.append(bench_memory(config, size_name, size, device))
    report = {"machine": machine(device), "repeats": repeats, "rows": rows, "memory": memory,
              "wall_s": time.perf_counter() - start}  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "gpu_quick" if args.quick else "gpu"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (out / f"{stem}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
