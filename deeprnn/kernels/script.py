"""TorchScript for the per-step loops, with plain Python as the fallback.

The loops of the fused recurrences are a few small tensor ops per step, so the interpreter's
cost per op matters: scripted, they ran ~20% faster on CPU than as Python here. torch.compile
was slower per call than eager for these step sizes (and compiled for ~20 s), so it is not
used. Compiling 10 unrolled steps at once halves the forward (small LN-LSTM: 67 against
130 us a step) but takes ~30 s per shape, and its AOTAutograd backward was slower than ours.
The LSTM's and GRU's loops now run in C++ where that can be built (`extension.py`); these
scripted loops remain the RNN's, and the LSTM's and GRU's fallback.

`torch.jit.script` is deprecated in recent torch: its warning is silenced; where it fails
(a RuntimeWarning says why), or DEEPRNN_NO_SCRIPT=1 is set, the same functions run as plain
Python, with the same results.
"""

from __future__ import annotations

import functools
import os
import warnings

import torch


def scripted(fn):
    """`fn` compiled by TorchScript on first use, or `fn` itself when that is unavailable."""

    @functools.wraps(fn)
    def run(*args):
        return compiled()(*args)

    @functools.cache
    def compiled():
        if os.environ.get("DEEPRNN_NO_SCRIPT"):
            return fn
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return torch.jit.script(fn)
        except Exception as err:  # noqa: BLE001 - any failure: the Python version runs
            warnings.warn(f"TorchScript failed for {fn.__qualname__}, running it as Python: "
                          f"{err}", RuntimeWarning, stacklevel=2)  # fmt: skip
            return fn

    run.compiled = compiled
    return run


def is_scripted(fn) -> bool:
    """Whether a `scripted` function runs as TorchScript (compiling it if needed)."""
    return fn.compiled() is not fn.__wrapped__
