"""A tqdm progress bar per epoch: loss, a metric and throughput (samples/s) in the postfix."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


def bar_enabled(verbose: int, stream=None) -> bool:
    """Bars only with verbose >= 1 and a terminal on stderr (logs and CI stay clean)."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return verbose >= 1 and bool(isatty and isatty())


class Progress:
    """`update(samples, loss)` after each update, `finish(metrics)` at the epoch's end."""

    def __init__(self, epoch: int, epochs: int, total: int | None, verbose: int):
        self.start = time.perf_counter()
        self.samples = 0
        self.bar = tqdm(
            total=total,
            desc=f"epoch {epoch}/{epochs}",
            unit="batch",
            file=sys.stderr,
            leave=True,
            dynamic_ncols=True,
            disable=not bar_enabled(verbose),
        )

    def throughput(self) -> float:
        return self.samples / max(time.perf_counter() - self.start, 1e-9)

    def update(self, samples: int, loss: float) -> None:
        self.samples += samples
        if self.bar.disable:
            return
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.4g}", samples_s=f"{self.throughput():.0f}")

    def finish(self, metrics: dict, shown: str | None = None) -> None:
        """Show the epoch's train loss, one metric (`shown`, e.g. the monitor) and speed."""
        if not self.bar.disable:
            post = {"loss": f"{metrics.get('train_loss', float('nan')):.4g}"}
            if shown and shown in metrics and shown != "train_loss":
                post[shown] = f"{metrics[shown]:.4g}"
            post["samples_s"] = f"{self.throughput():.0f}"
            self.bar.set_postfix(post)
        self.bar.close()
