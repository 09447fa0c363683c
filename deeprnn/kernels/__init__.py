"""Fast recurrences for what torch's fused kernels cannot compute.

Layer-normalised cells, the sigmoid RNN, recurrent dropout and zoneout run here: the input
projection of all steps is one matrix product, the recurrence one autograd Function whose
backward is the explicit BPTT (`fused.py` drives; `lstm.py`, `gru.py`, `rnn.py` are the
Functions; `projection.py` the shared W_hh part; `noise.py` the dropout / zoneout masks;
`extension.py` builds the LSTM's and GRU's step loops in C++ (`csrc/`), TorchScript
otherwise).
`deeprnn.layer` tries torch's kernel first, then `fused_direction`, then its cell loop;
`infer.py` runs torch's kernels' math on a C++ loop for inference on a few rows.
"""

from deeprnn.kernels.fused import fused_direction
from deeprnn.kernels.noise import Noise, sample_noise

__all__ = ["Noise", "fused_direction", "sample_noise"]
