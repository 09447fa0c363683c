"""Configuration dataclasses (typed, frozen). Imports no torch, so the reference can share it."""

from __future__ import annotations

from dataclasses import dataclass

CELL_KINDS = ("rnn", "lstm", "gru")
NONLINEARITY_NAMES = ("tanh", "relu", "sigmoid")
WIRINGS = ("stack", "skip")
BETWEEN_ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")
OUTPUT_MODES = ("top", "all")


@dataclass(frozen=True)
class RNNConfig:
    """The full description of a DeepRNN; `dataclasses.asdict` of it feeds the reference."""

    input_size: int  # features of x_t
    hidden_size: tuple[int, ...]  # units per layer (one entry per layer)
    cell: tuple[str, ...]  # "rnn" | "lstm" | "gru" per layer
    nonlinearity: str = "tanh"  # of "rnn" cells: "tanh" | "relu" | "sigmoid"
    wiring: str = "stack"  # "stack": layer l reads h^(l-1); "skip": reads (x, h^(l-1))
    residual: bool = False  # o_l = h_l + o_(l-1) (layer 0: + x when widths match)
    layer_norm: bool = False  # layer norm inside the recurrence (Ba et al. 2016)
    dropout: float = 0.0  # between layers, training only
    bidirectional: bool = False  # each layer runs both ways, outputs concatenated
    between: str | None = None  # Linear + activation between layers: relu|tanh|sigmoid|linear
    outputs: str = "top"  # "top": last layer's sequence; "all": every layer's, concatenated
    bias: bool = True  # bias_ih / bias_hh in every cell

    @property
    def num_layers(self) -> int:
        return len(self.hidden_size)
