"""Training progress on stderr: a tqdm bar per epoch on a terminal (loss, a metric and
throughput in the postfix); elsewhere (logs, CI, notebooks' captured stderr) one plain line
per epoch, plus a line every LINE_EVERY seconds within a long epoch."""

from __future__ import annotations

import os
import sys
import time

from tqdm import tqdm

LINE_EVERY = 30.0  # seconds between plain lines inside one epoch


def bar_enabled(verbose: int, stream=None) -> bool:
    """Bars only with verbose >= 1 and a terminal on stderr."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return verbose >= 1 and bool(isatty and isatty())


def _size_known(stream) -> bool:
    """False for a terminal that reports a 0 x 0 size (fresh ptys, `script`): tqdm would
    draw nothing there, so it gets 80 x 24 instead."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return size.columns > 0 and size.lines > 0


def _format(metrics: dict, shown: str | None) -> str:
    parts = [f"train_loss {metrics.get('train_loss', float('nan')):.4g}"]
    if shown and shown in metrics and shown != "train_loss":
        parts.append(f"{shown} {metrics[shown]:.4g}")
    return ", ".join(parts)


class Progress:
    """`update(samples, loss)` after each update, `finish(metrics)` at the epoch's end."""

    def __init__(self, epoch: int, epochs: int, total: int | None, verbose: int):
        self.start = self.last_line = time.perf_counter()
        self.samples = self.batches = 0
        self.epoch, self.epochs, self.total = epoch, epochs, total
        self.plain = verbose >= 1 and not bar_enabled(verbose)
        known = _size_known(sys.stderr)
        self.bar = tqdm(
            total=total,
            desc=f"epoch {epoch}/{epochs}",
            unit="batch",
            file=sys.stderr,
            leave=True,
            dynamic_ncols=known,
            ncols=None if known else 80,
            nrows=None if known else 24,
            disable=not bar_enabled(verbose),
        )

    def throughput(self) -> float:
        return self.samples / max(time.perf_counter() - self.start, 1e-9)

    def _line(self, text: str) -> None:
        print(f"epoch {self.epoch}/{self.epochs}: {text}", file=sys.stderr, flush=True)
        self.last_line = time.perf_counter()

    def update(self, samples: int, loss: float) -> None:
        self.samples += samples
        self.batches += 1
        if self.plain and time.perf_counter() - self.last_line >= LINE_EVERY:
            of = f"/{self.total}" if self.total else ""
            self._line(f"batch {self.batches}{of}, loss {loss:.4g}, "
                       f"{self.throughput():.0f} samples/s")  # fmt: skip
        if self.bar.disable:
            return
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.4g}", samples_s=f"{self.throughput():.0f}")

    def finish(self, metrics: dict, shown: str | None = None) -> None:
        """Show the epoch's train loss, one metric (`shown`, e.g. the monitor) and speed."""
        if self.plain:
            seconds = time.perf_counter() - self.start
            self._line(f"{_format(metrics, shown)}, {self.throughput():.0f} samples/s, "
                       f"{seconds:.1f} s")  # fmt: skip
        if not self.bar.disable:
            post = {"loss": f"{metrics.get('train_loss', float('nan')):.4g}"}
            if shown and shown in metrics and shown != "train_loss":
                post[shown] = f"{metrics[shown]:.4g}"
            post["samples_s"] = f"{self.throughput():.0f}"
            self.bar.set_postfix(post)
        self.bar.close()
