"""Decoding throughput of a Seq2Seq: batched beam search (widths 1, 4, 8) against greedy.

    python benchmarks/speed.py --decode                       # = python benchmarks/decode.py
    python benchmarks/speed.py --decode --quick --out /tmp/b  # tiny model, 1 round (a test)

The model is of a realistic size: a 2-layer bidirectional LSTM encoder (256 units per
direction), a 2-layer LSTM decoder (256 units) with general attention, input feeding and a
bridge, source / target vocabularies of 40 / 60 ids, embeddings of 128, sources of 8 to 12
tokens. Its weights are untrained (speed does not depend on what was learned), so its
output layer's </s> logit is biased to -1e4: no hypothesis ever ends early and every
decoder runs exactly `max_length` (40) steps, which the benchmark checks. The comparison
is thus the cost per step of each decoder, not the effect of a stopping rule.

Measured in the same run, in alternating rounds after a warm-up, under inference_mode:
    batch   sentences / s decoding a batch of 64 sources (beam search: all 64 * width
            hypotheses in one batch), and the time of each against greedy's (the median over
            rounds of the per-round ratio; > 1: slower than greedy)
    single  ms per sentence decoding sources one at a time (batch 1: the latency of a
            request), and its ratio to greedy's
Also checks that beam width 1 gives greedy's tokens. Writes decode.md and decode.json
(--quick: decode_quick.*) to --out.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402  (its timer, rounds and machine description)

from deeprnn import DeepRNN  # noqa: E402
from deeprnn.seq2seq import EOS_ID, Seq2Seq, beam_search, greedy  # noqa: E402

SIZE = dict(hidden=256, embed=128, source_vocab=40, target_vocab=60, source_length=12,
            min_length=8, max_length=40, batch=64, singles=4)  # fmt: skip
QUICK_SIZE = dict(hidden=16, embed=8, source_vocab=12, target_vocab=14, source_length=6,
                  min_length=3, max_length=6, batch=4, singles=2)  # fmt: skip
WIDTHS = (1, 4, 8)
EOS_BIAS = -1e4  # </s> never wins: every hypothesis runs max_length steps


def build_model(size: dict, seed: int = 0) -> Seq2Seq:
    """The benchmark's Seq2Seq (float32, eval mode) with its </s> logit biased away."""
    torch.manual_seed(seed)
    hidden, embed = size["hidden"], size["embed"]
    encoder = DeepRNN(embed, hidden, 2, cell="lstm", bidirectional=True)
    decoder = DeepRNN(embed + hidden, hidden, 2, cell="lstm")  # input feeding: + hidden
    model = Seq2Seq(encoder, decoder, size["source_vocab"], size["target_vocab"],
                    attention="general", input_feeding=True, bridge=True).eval()  # fmt: skip
    with torch.no_grad():
        model.output.bias[EOS_ID] = EOS_BIAS
    return model


def sources(size: dict, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(x (batch, source_length) ids in [4, source_vocab), lengths in [min_length, S])."""
    g = torch.Generator().manual_seed(seed)
    n, s = size["batch"], size["source_length"]
    x = torch.randint(4, size["source_vocab"], (n, s), generator=g)
    lengths = torch.randint(size["min_length"], s + 1, (n,), generator=g)
    lengths[0] = s  # the longest source fills the padded width
    x[torch.arange(s)[None, :] >= lengths[:, None]] = 0  # padding
    return x, lengths


def decoders(max_length: int) -> dict:
    """name -> (width or None for greedy, decode(model, x, lengths))."""
    out = {"greedy": (None, lambda m, x, n: greedy(m, x, n, max_length))}
    for k in WIDTHS:
        out[f"beam {k}"] = (k, lambda m, x, n, k=k: beam_search(m, x, n, k, max_length))
    return out


def bench(size: dict, repeats: int) -> dict:
    model = build_model(size)
    x, lengths = sources(size)
    steps = size["max_length"]
    decs = decoders(steps)
    with torch.inference_mode():
        # the outputs (also a warm-up): fixed-length decoding and width 1 == greedy
        outputs = {
            name: [h.tokens for h in fn(model, x, lengths)] for name, (_, fn) in decs.items()
        }
        runs = {len(t) for tokens in outputs.values() for t in tokens}
        if runs != {steps}:
            raise RuntimeError(f"decoding ran {sorted(runs)} steps, not all {steps}: unfair")

        def batched(fn):
            return lambda: fn(model, x, lengths)

        def singles(fn):
            def run():
                for i in range(size["singles"]):
                    fn(model, x[i : i + 1], lengths[i : i + 1])

            return run

        # the outputs above were the batched decoders' warm-up: no second one
        batch_t = speed.timed_rounds({n: batched(fn) for n, (_, fn) in decs.items()},
                                     dict.fromkeys(decs, repeats), cold=tuple(decs))  # fmt: skip
        single_t = speed.timed_rounds({n: singles(fn) for n, (_, fn) in decs.items()},
                                      dict.fromkeys(decs, repeats))  # fmt: skip
    rows = []
    for name, (width, _) in decs.items():
        b, s = batch_t[name], single_t[name]
        rows.append({
            "decoder": name, "width": width, "batch": size["batch"], "steps": steps,
            "sentences_per_s": size["batch"] / statistics.median(b),
            "batch_ratio": statistics.median(t / g for t, g in zip(b, batch_t["greedy"])),
            "single_ms": 1e3 * statistics.median(s) / size["singles"],
            "single_ratio": statistics.median(t / g for t, g in zip(s, single_t["greedy"])),
        })  # fmt: skip
    return {"rows": rows, "width1_matches_greedy": outputs["beam 1"] == outputs["greedy"]}


def markdown(report: dict) -> str:
    m, z = report["machine"], report["size"]
    r0 = report["rows"][0]
    lines = [
        "# deeprnn decoding: beam search vs greedy", "",
        f"{m['cpu']}, {m['cores']} cores, {m['platform']}; Python {m['python']}, torch "
        f"{m['torch']}, {m['threads']} thread(s), times are {m['clock']}; medians of "
        f"{report['repeats']} alternating rounds after a warm-up, under inference_mode; the "
        f"run took {report['wall_s']:.0f} s (wall).", "",
        f"Seq2Seq: 2-layer bidirectional LSTM encoder ({z['hidden']} units per direction), "
        f"2-layer LSTM decoder ({z['hidden']}), general attention, input feeding, bridge; "
        f"vocabularies {z['source_vocab']} / {z['target_vocab']}, embeddings {z['embed']}; "
        f"sources of {z['min_length']} to {z['source_length']} tokens; float32. The weights "
        f"are untrained and the </s> logit is biased to {EOS_BIAS:g}, so every hypothesis "
        f"runs all max_length = {r0['steps']} steps (checked): the table compares the cost "
        "of decoding, not when an untrained model happens to stop. Batch: all sources "
        f"(and their beams) in one batch of {r0['batch']}; batch 1: {z['singles']} sources "
        "decoded one at a time. Ratios are time / greedy's (> 1: slower), medians of the "
        "per-round ratio. Beam width 1 gives greedy's tokens: "
        f"{'yes' if report['width1_matches_greedy'] else 'NO'}.", "",
        f"| decoder | width | sentences/s (batch {r0['batch']}) | time / greedy's "
        "| ms per sentence (batch 1) | time / greedy's |",
        "|---" * 6 + "|",
    ]  # fmt: skip
    for r in report["rows"]:
        lines.append(
            f"| {r['decoder']} | {r['width'] or ''} | {r['sentences_per_s']:.1f} "
            f"| {r['batch_ratio']:.2f} | {r['single_ms']:.2f} | {r['single_ratio']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, 1 round (seconds)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--out", default=str(speed.ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    size = QUICK_SIZE if args.quick else SIZE
    repeats = 1 if args.quick else args.repeats
    start = time.perf_counter()
    got = bench(size, repeats)
    report = {"machine": speed.machine(), "size": size, "repeats": repeats, **got,
              "wall_s": time.perf_counter() - start}  # fmt: skip
    speed.write_tables(Path(args.out), "decode_quick" if args.quick else "decode", report,
                       markdown)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
