"""Draw the pictures README shows: `make docs` (or `python docs/make_figures.py`).

gradient_flow_tanh.png / gradient_flow_lstm.png: ||dL/dh_t|| per layer and step for a
3-layer tanh RNN and a 3-layer LSTM on the same 80-step input, L the top layer's output at
the last step: the tanh stack's gradient dies out within a few steps back in time (the
seeds' vanishing-gradient problem), the LSTM's reaches much further.
"""

from __future__ import annotations

from pathlib import Path

import torch

from deeprnn import DeepRNN, plots
from deeprnn.diagnostics import gradient_flow

OUT = Path(__file__).resolve().parent


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 80, 4)
    for cell in ("rnn", "lstm"):
        net = DeepRNN(4, 32, num_layers=3, cell=cell)
        if cell == "lstm":  # the usual forget-gate bias of 1 (Jozefowicz et al. 2015)
            for layer in net.layers:
                layer.cell.bias_hh.data[32:64] = 1.0
        flow = gradient_flow(net, x)
        name = "tanh" if cell == "rnn" else cell
        path = plots.gradient_flow(flow, OUT / f"gradient_flow_{name}.png",
                                   title=f"3-layer {name.upper()} stack: ||dL/dh_t||")  # fmt: skip
        print(path.name, {k: f"{w} ({r:.1e})" for k, (w, r) in flow.verdict().items()})


if __name__ == "__main__":
    main()
