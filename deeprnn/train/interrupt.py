"""Ctrl-C during training: finish the batch, write a checkpoint, then stop.

Inside `with graceful_interrupt():` (`deeprnn train` runs every training in it) the first
Ctrl-C (SIGINT) only asks `fit` to stop: the running batch finishes, the epoch ends there
and is recorded as a callback stop would record it, a checkpoint is written (when fit has
a run_dir), and fit raises `TrainingInterrupted`, a KeyboardInterrupt. `resume=True`
(`deeprnn train --resume`) then continues with the next epoch. A second Ctrl-C interrupts
at once. Outside the context manager Ctrl-C keeps Python's behaviour.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_state = {"installed": False, "requested": False}


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C after writing its checkpoint; the message says where."""


def requested() -> bool:
    """True once Ctrl-C was pressed inside `graceful_interrupt`."""
    return _state["requested"]


def stop_on_request(event: str, state: dict) -> None:
    """A `fit` callback: ask fit to stop once Ctrl-C was pressed."""
    if _state["requested"]:
        state["stop"] = True


def _handler(signum, frame) -> None:
    if _state["requested"]:
        raise KeyboardInterrupt
    _state["requested"] = True
    print(
        "\ndeeprnn: Ctrl-C: stopping after this batch and writing a checkpoint "
        "(press Ctrl-C again to abort at once)",
        file=sys.stderr,
        flush=True,
    )


@contextmanager
def graceful_interrupt() -> Iterator[None]:
    """Turn the first Ctrl-C into a clean stop of `fit` (see the module docstring).

    Does nothing outside the main thread (signal handlers live there) or when nested.
    """
    if _state["installed"] or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _handler)
    _state.update(installed=True, requested=False)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _state.update(installed=False, requested=False)
