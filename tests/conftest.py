"""Suite-wide settings."""

import torch

# Tiny test models are dominated by thread hand-off on a 2-core machine: one thread is ~50x
# faster for them, and makes timings independent of whatever else runs on the machine.
torch.set_num_threads(1)
