"""The `deeprnn` command: train | evaluate | predict | generate | datasets | demo | export.

Errors in what the user gave (config, data, arguments) print one line and exit with code 2;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys

from deeprnn.errors import DeepRNNError

EXIT_USAGE = 2


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deeprnn", description="Deep recurrent neural networks for sequence data."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a model from a YAML config into a run directory")
    p.add_argument("config", help="YAML file: task, data, model (see examples/configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set model.hidden_size=128")  # fmt: skip
    p.add_argument("--run-dir", help="where to write the run (default: config run_dir)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("evaluate", help="score a trained run on its test part or other data")
    p.add_argument("run_dir")
    p.add_argument("--data", help="a bundled dataset name or a file (default: the run's data)")

    p = sub.add_parser("predict", help="predict with a trained run")
    p.add_argument("run_dir")
    p.add_argument("--input", required=True,
                   help="series (.csv/.npy) for forecast, .npz for sequences, .txt (one text per "
                        "line) for text classification")  # fmt: skip
    p.add_argument("--column", help="CSV column holding the series (forecast)")
    p.add_argument("--output", help="write predictions to this CSV (default: print)")

    p = sub.add_parser("generate", help="sample text from a trained character language model")
    p.add_argument("run_dir")
    p.add_argument("--prompt", default="", help="text to continue")
    p.add_argument("-n", type=_positive_int, default=200, help="characters to generate")
    p.add_argument("--temperature", type=_positive_float, default=1.0)
    p.add_argument("--top-k", type=_positive_int, default=None)
    p.add_argument("--seed", type=int, default=None)

    sub.add_parser("datasets", help="list the bundled datasets")

    p = sub.add_parser("demo", help="train a deep RNN on bundled data and compare to a baseline")
    p.add_argument("--run-dir", default="runs/demo")
    p.add_argument("--quick", action="store_true", help="a few epochs only (for tests)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `deeprnn` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from deeprnn import commands  # heavy imports (torch) only after the arguments are fine

    try:
        return getattr(commands, args.command)(args)
    except (DeepRNNError, FileNotFoundError) as err:
        if args.debug:
            raise
        print(f"deeprnn {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
