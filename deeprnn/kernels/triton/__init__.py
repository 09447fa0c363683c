"""The GPU path of the fused recurrences: Triton kernels, one per step beside one matrix product.

On CUDA tensors, where torch's kernels (cuDNN) cannot compute a layer (layer norm inside the
recurrence, recurrent dropout, zoneout, the sigmoid RNN), `deeprnn.kernels.fused_direction`
runs it here instead of in the TorchScript loops (~20 small kernels a step). As haste does,
each step is ONE cuBLAS product W_hh (m * h_{t-1}) and ONE Triton kernel doing all the
element-wise and layer-norm work of the step (`steps.py`); BPTT is explicit, one kernel and
one product a step backwards, and dW_hh one product over all steps (`recurrence.py`).

Triton is an optional extra (`pip install deeprnn[gpu]`). Without it, on CPU tensors, or
with DEEPRNN_NO_TRITON=1, nothing here is imported and today's paths run unchanged.
`force = True` sends CPU tensors here too: with TRITON_INTERPRET=1 set before the kernels
are first imported, Triton's interpreter runs them on the CPU (how the tests check them).
"""

from __future__ import annotations

import functools
import os
from importlib.util import find_spec

import torch

# Tests set this to run the kernels on CPU tensors (under TRITON_INTERPRET=1).
force = False
# False: CUDA tensors run the TorchScript loops as before (benchmarks/gpu.py compares them).
enabled = True

DTYPES = (torch.float32, torch.float64)
MAX_HIDDEN = 8192  # one step's row of a gate is held by one program: beyond, the TorchScript loop


@functools.cache
def available() -> bool:
    """Whether triton can be imported (the `gpu` extra), unless DEEPRNN_NO_TRITON=1."""
    if os.environ.get("DEEPRNN_NO_TRITON") or find_spec("triton") is None:
        return False
    try:
        import triton  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken install: the other paths run
        return False
    return True


def runs_on(device: torch.device, dtype: torch.dtype, hidden: int) -> bool:
    """Whether tensors of this device and dtype, with `hidden` units, take the Triton path."""
    if dtype not in DTYPES or hidden > MAX_HIDDEN:
        return False
    return enabled and (device.type == "cuda" or force) and available()


def takes(x: torch.Tensor, hidden: int) -> bool:
    """Whether a layer's input `x` takes the Triton path (see `runs_on`); not under autocast,
    whose half-precision inputs the TorchScript loops take as today."""
    try:
        if torch.is_autocast_enabled(x.device.type):
            return False
    except TypeError:  # torch < 2.4: no device argument
        if torch.is_autocast_enabled():
            return False
    return runs_on(x.device, x.dtype, hidden)


def direction(cell, x, state, valid, noise):
    """`deeprnn.kernels.fused_direction` on the Triton kernels (same arguments, results)."""
    from deeprnn.kernels.triton.recurrence import direction as run

    return run(cell, x, state, valid, noise)


__all__ = ["available", "direction", "enabled", "force", "runs_on", "takes"]
