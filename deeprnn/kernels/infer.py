"""Few-row inference of torch's fused recurrences on the C++ loop of csrc/infer.cpp.

Predicting one sequence (or a handful) is what a deployed model does most, and there torch's
`_VF.lstm` / `_VF.gru` / `_VF.rnn_*` spend most of their time in fixed costs per call and
per step rather than in the arithmetic (measured, one thread, 2-layer bidirectional of 128,
T = 50, one row: LSTM 1.5 ms in torch, 1.0 ms here; GRU 3.4 / 0.75 ms; tanh RNN 1.3 / 0.3 ms;
`benchmarks/latency.py --rows` has the table).
`run_kernel` takes the same arguments as those kernels and runs them here when nothing
needs a gradient, the tensors are CPU float32 and there are at most `MAX_ROWS` rows
(8 for the LSTM, 64 for the GRU and RNN);
otherwise it calls torch's kernel. Results equal torch's to float32 rounding (tests).

W_hh is packed once into contiguous panels and kept, keyed by the weight tensor itself and
its version counter: an optimizer step, `load_state_dict` or any in-place change bumps the
version, so a stale panel is never used; the cache holds the weight only weakly.
"""

from __future__ import annotations

import weakref

import torch
from torch import _VF, Tensor

from deeprnn.kernels import extension

# Rows (batch size) up to which the loop runs, per kernel (benchmarks/latency.py --rows,
# 1 and 2 threads): one pass over W_hh a step serves every row; torch's LSTM catches up at
# ~16 rows, its GRU and RNN kernels were still 1.1-4.5x slower at 64.
MAX_ROWS = {"lstm": 8, "gru": 64, "rnn": 64}
# torch's kernel -> (its cell for MAX_ROWS, the loop's kind code of csrc/infer.cpp)
_KINDS = {_VF.lstm: ("lstm", 0), _VF.gru: ("gru", 1), _VF.rnn_tanh: ("rnn", 2),
          _VF.rnn_relu: ("rnn", 3)}  # fmt: skip
_PACKED: dict[int, tuple[weakref.ref, int, Tensor]] = {}


def pack(weight: Tensor) -> Tensor:
    """W (N, K) as the loop reads it: (ceil(N / 64), K, 64) panels, zero past N."""
    return extension.ops().pack_panels(weight.detach())


def packed(weight: Tensor) -> Tensor:
    """pack_panels(weight), computed once per weight tensor and version."""
    key = id(weight)
    entry = _PACKED.get(key)
    if entry is not None and entry[0]() is weight and entry[1] == weight._version:
        return entry[2]
    panels = pack(weight)
    if entry is None or entry[0]() is not weight:
        weakref.finalize(weight, _PACKED.pop, key, None)
    _PACKED[key] = (weakref.ref(weight), weight._version, panels)
    return panels


def applies(kernel, x: Tensor, weights: list[Tensor]) -> bool:
    """Whether `run_kernel` takes the C++ loop for these arguments."""
    if kernel not in _KINDS or x.dim() != 3 or x.shape[0] > MAX_ROWS[_KINDS[kernel][0]]:
        return False
    if x.dtype != torch.float32 or x.device.type != "cpu" or 0 in x.shape[:2]:
        return False
    if torch.is_grad_enabled() and (x.requires_grad or any(w.requires_grad for w in weights)):
        return False
    if any(w.dtype != torch.float32 or w.device.type != "cpu" for w in weights):
        return False
    return extension.ops() is not None


def run_kernel(kernel, x: Tensor, hx, weights: list[Tensor], has_bias: bool, layers: int,
               bidirectional: bool):  # fmt: skip
    """`kernel(x, hx, weights, has_bias, layers, 0.0, False, bidirectional, True)`: torch's
    fused recurrence, batch first, no dropout, not training; on the C++ loop when
    `applies`. Returns what the kernel returns: (output, h_n[, c_n])."""
    if not applies(kernel, x, weights):
        return kernel(x, hx, weights, has_bias, layers, 0.0, False, bidirectional, True)
    per = 4 if has_bias else 2
    panels = [packed(w) for w in weights[1::per]]
    states = list(hx) if isinstance(hx, tuple) else [hx]
    return tuple(
        extension.ops().rnn_infer(
            x, states, weights, panels, has_bias, layers, bidirectional, _KINDS[kernel][1]
        )  # fmt: skip
    )
