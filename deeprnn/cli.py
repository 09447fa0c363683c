"""The `deeprnn` command: train | tune | evaluate | predict | generate | datasets | demo | export.

Errors in what the user gave (config, data, arguments) and files that cannot be read or
written print one line and exit with code 2; `--debug` shows the traceback instead. Ctrl-C
during `train` / `demo` stops after the running batch, writes a checkpoint and exits with
code 130 (`train --resume` continues); a second Ctrl-C aborts at once.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys

from deeprnn.errors import DeepRNNError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


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
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite positive number, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected a seed in [0, 2**63), got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help shows every argument's default (subcommands included:
    `add_subparsers` builds them with this class too)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)


class _Help(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default ("off" for flags); epilogs kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default" in text or action.default is argparse.SUPPRESS or not action.option_strings:
            return text
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            return f"{text} (default: off)"
        return f"{text} (default: %(default)r)"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("deeprnn")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown (not installed)"


def _task_list() -> str:
    from deeprnn.config import RUN_TASKS, TASK_DATA_KEYS

    lines = ["tasks (the config's `task:`) and the keys their `data:` section takes:"]
    lines += [f"  {t:<25} {', '.join(TASK_DATA_KEYS.get(t, ('dataset', 'path')))}"
              for t in RUN_TASKS]  # fmt: skip
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="deeprnn", description="Deep recurrent neural networks for sequence data."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"deeprnn {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train a model from a YAML config into a run directory",
                       epilog=_task_list())  # fmt: skip
    p.add_argument("config", help="YAML file: task, data, model (see examples/configs/); "
                   "relative data paths in it are read from the config file's folder")  # fmt: skip
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set model.hidden_size=128")  # fmt: skip
    p.add_argument("--run-dir", help="where to write the run (None: the config's run_dir, "
                   "else runs/TASK)")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--force", action="store_true",
                   help="train afresh into a run directory that already holds a run")  # fmt: skip
    p.add_argument("--quiet", action="store_true",
                   help="no progress (else a bar on a terminal, a line per epoch "
                        "in logs)")  # fmt: skip
    p.add_argument("--nproc", type=_positive_int, default=1, metavar="N",
                   help="train data-parallel on N processes of this machine (DDP through "
                        "torchrun; ignored inside torchrun)")  # fmt: skip

    p = sub.add_parser("tune", help="search a config's model arguments under a time budget")
    p.add_argument("config", help="YAML file as for `deeprnn train` (a classification or "
                   "regression task); its model section is the starting point")  # fmt: skip
    p.add_argument("--budget", default="10m", help="search time: seconds or e.g. 90s, 10m, 1h")
    p.add_argument("--space", help="YAML file restricting the search space, e.g. "
                   "{cell: [gru], lr: {low: 0.001, high: 0.01, log: true}}")  # fmt: skip
    p.add_argument("--ensemble", type=int, default=0, metavar="K",
                   help="also refit the K best trials as one ensemble (0: none)")  # fmt: skip
    p.add_argument(
        "--trials",
        type=_positive_int,
        default=None,
        metavar="N",
        help="at most N trials in this call (None: as many as the budget allows)",
    )
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set model.epochs=30")  # fmt: skip
    p.add_argument("--run-dir", help="where to write the search (None: runs/tune_TASK)")
    p.add_argument("--resume", action="store_true", help="continue the search in --run-dir")
    p.add_argument("--quiet", action="store_true", help="no progress")

    p = sub.add_parser("evaluate", help="score a trained run on its test part or other data")
    p.add_argument("run_dir", help="a directory written by `deeprnn train`")
    p.add_argument("--data", help="a bundled dataset name or a file (None: the run's data)")
    p.add_argument("--json", action="store_true",
                   help="print {metrics, baselines} as JSON instead of a table")  # fmt: skip

    p = sub.add_parser("predict", help="predict with a trained run")
    p.add_argument("run_dir", help="a directory written by `deeprnn train`")
    p.add_argument("--input", required=True,
                   help="series (.csv/.npy) for forecast, .npz for sequences, .txt (one text per "
                        "line) for text classification")  # fmt: skip
    p.add_argument("--column", help="CSV column holding the series (forecast; None: the "
                   "column the run trained on)")  # fmt: skip
    p.add_argument("--time-column", help="forecast: the CSV column of dates (or integers) "
                   "that the forecast's time index continues ('none': number the steps "
                   "after the input's; None: the first column of dates, if any)")  # fmt: skip
    p.add_argument("--output", help="write predictions to this CSV (None: print them)")

    p = sub.add_parser("generate", help="sample text from a trained character language model")
    p.add_argument("run_dir", help="a char_lm run directory written by `deeprnn train`")
    p.add_argument("--prompt", default="", help="text to continue")
    p.add_argument("-n", type=_positive_int, default=200,
                   help="characters to generate after the prompt")  # fmt: skip
    p.add_argument("--no-prompt", dest="include_prompt", action="store_false",
                   help="print the new characters only, not the prompt before them")  # fmt: skip
    p.add_argument("--temperature", type=_positive_float, default=1.0,
                   help="< 1 sharpens the distribution, > 1 flattens it")  # fmt: skip
    p.add_argument("--top-k", type=_positive_int, default=None,
                   help="sample among the k most probable characters only (None: all)")  # fmt: skip
    p.add_argument("--seed", type=_seed, default=None,
                   help="random seed of the sampling (None: the model's seed)")  # fmt: skip

    sub.add_parser("datasets", help="list the bundled datasets")

    p = sub.add_parser("demo", help="train a deep RNN on bundled data and compare to a baseline")
    p.add_argument("--run-dir", default="runs/demo", help="where to write the demo's run")
    p.add_argument("--quick", action="store_true", help="a few epochs only (for tests)")

    p = sub.add_parser("export", help="export a trained run's network to ONNX or TorchScript")
    p.add_argument("run_dir", help="a directory written by `deeprnn train`")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx",
                   help="the file format")  # fmt: skip
    p.add_argument("--output", help="file to write (None: RUN_DIR/export/model.onnx or .pt)")
    p.add_argument("--no-lengths", dest="lengths", action="store_false",
                   help="ONNX: no `lengths` input (every row uses all its steps)")  # fmt: skip
    for command in sub.choices.values():  # `deeprnn train --debug ...` works as well
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show tracebacks on errors (default: off)")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `deeprnn` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # plain `deeprnn`: say what there is, as `git` does
        parser.print_help()
        return 0
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what `train --nproc` relaunches
    from deeprnn import commands  # heavy imports (torch) only after the arguments are fine
    from deeprnn.train.interrupt import graceful_interrupt

    training = args.command in ("train", "demo", "tune")
    try:
        with graceful_interrupt() if training else contextlib.nullcontext():
            return getattr(commands, args.command)(args)
    except KeyboardInterrupt as err:
        if args.debug:
            raise
        print(f"deeprnn {args.command}: interrupted{f': {err}' if str(err) else ''}",
              file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    except (DeepRNNError, OSError, UnicodeError) as err:
        if args.debug:
            raise
        print(f"deeprnn {args.command}: error: {_describe(err)}", file=sys.stderr)
        return EXIT_USAGE


def _describe(err: BaseException) -> str:
    if isinstance(err, UnicodeDecodeError):
        return (
            f"a file is not valid {err.encoding} text ({err.reason} at byte {err.start}); "
            "set data.encoding to the file's encoding, e.g. latin-1"
        )
    return str(err)


if __name__ == "__main__":
    sys.exit(main())
