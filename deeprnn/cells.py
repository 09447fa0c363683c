"""Recurrent cells: one time step each, written as the textbook equations.

Every cell has PyTorch's parameter names, shapes and gate order (`weight_ih`, `weight_hh`,
`bias_ih`, `bias_hh`; LSTM i, f, g, o; GRU r, z, n), so weights copy 1:1 from
`torch.nn.RNNCell` / `LSTMCell` / `GRUCell`. A cell knows nothing of time: the loop lives
in `deeprnn.layer`. The exact equations are in docs/semantics.md.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from deeprnn.errors import InputError, check_choice

NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}

State = Tensor | tuple[Tensor, Tensor]


class _Cell(nn.Module):
    """Shared parameters of the three cells: two projections, optional biases and norms."""

    gates: int = 1
    kind: str = ""

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, layer_norm: bool = False
    ):
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name} must be a positive int, got {value!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bool(bias)
        self.layer_norm = bool(layer_norm)
        g = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(g, input_size))
        self.weight_hh = nn.Parameter(torch.empty(g, hidden_size))
        if self.bias:
            self.bias_ih = nn.Parameter(torch.empty(g))
            self.bias_hh = nn.Parameter(torch.empty(g))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        if self.layer_norm:
            self.ln_ih = nn.LayerNorm(g)
            self.ln_hh = nn.LayerNorm(g)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)), as torch's cells, so behaviour matches them."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for name, p in self.named_parameters():
            if not name.startswith("ln_"):
                nn.init.uniform_(p, -bound, bound)

    def project(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """a_x = [LN_ih](W_ih x) + b_ih and a_h = [LN_hh](W_hh h) + b_hh, each (B, G*H)."""
        a_x = x @ self.weight_ih.T
        a_h = h @ self.weight_hh.T
        if self.layer_norm:
            a_x, a_h = self.ln_ih(a_x), self.ln_hh(a_h)
        if self.bias:
            a_x, a_h = a_x + self.bias_ih, a_h + self.bias_hh
        return a_x, a_h

    def initial_state(self, batch: int, like: Tensor) -> State:
        """Zero state for `batch` rows, on `like`'s device and dtype."""
        return like.new_zeros(batch, self.hidden_size)

    def extra_repr(self) -> str:
        extra = ", layer_norm=True" if self.layer_norm else ""
        extra += "" if self.bias else ", bias=False"
        return f"{self.input_size}, {self.hidden_size}{extra}"


class RNNCell(_Cell):
    """Elman cell: h' = f(W_ih x + b_ih + W_hh h + b_hh), f in {tanh, relu, sigmoid}.

    With `layer_norm=True` the two projections are layer-normalised before their biases.

    Args:
        input_size: features of x_t.
        hidden_size: units H.
        nonlinearity: "tanh", "relu" or "sigmoid".
    Call: `h, h = cell(x_t (B, I), h (B, H) or None)`.
    """

    gates = 1
    kind = "rnn"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        nonlinearity: str = "tanh",
        bias: bool = True,
        layer_norm: bool = False,
    ):
        check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, layer_norm)

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.initial_state(x.shape[0], x) if state is None else state
        a_x, a_h = self.project(x, h)
        h = NONLINEARITIES[self.nonlinearity](a_x + a_h)
        return h, h

    def extra_repr(self) -> str:
        return super().extra_repr() + f", nonlinearity={self.nonlinearity!r}"


class LSTMCell(_Cell):
    """Long short-term memory cell (gate order i, f, g, o):

        i, f, g, o = split(W_ih x + b_ih + W_hh h + b_hh)
        c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
        h' = sigmoid(o) * tanh(c')

    With `layer_norm=True` (Ba et al. 2016): both projections are normalised before their
    biases, and c' is normalised inside the output tanh: h' = o * tanh(LN_c(c')); the
    carried c' is not normalised.
    Call: `h, (h, c) = cell(x_t (B, I), (h, c) or None)`.
    """

    gates = 4
    kind = "lstm"

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, layer_norm: bool = False
    ):
        super().__init__(input_size, hidden_size, bias, layer_norm)
        if self.layer_norm:
            self.ln_c = nn.LayerNorm(hidden_size)

    def initial_state(self, batch: int, like: Tensor) -> tuple[Tensor, Tensor]:
        zeros = like.new_zeros(batch, self.hidden_size)
        return zeros, zeros

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h, c = self.initial_state(x.shape[0], x) if state is None else state
        a_x, a_h = self.project(x, h)
        i, f, g, o = (a_x + a_h).chunk(4, dim=-1)  # 4 x (B, H)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        c_out = self.ln_c(c) if self.layer_norm else c
        h = torch.sigmoid(o) * torch.tanh(c_out)
        return h, (h, c)


class GRUCell(_Cell):
    """Gated recurrent unit (gate order r, z, n):

        r = sigmoid(a_x[r] + a_h[r]),  z = sigmoid(a_x[z] + a_h[z])
        n = tanh(a_x[n] + r * a_h[n]),  h' = (1 - z) * n + z * h

    where a_x = W_ih x + b_ih and a_h = W_hh h + b_hh (layer-normalised before the biases
    when `layer_norm=True`).
    Call: `h, h = cell(x_t (B, I), h (B, H) or None)`.
    """

    gates = 3
    kind = "gru"

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.initial_state(x.shape[0], x) if state is None else state
        a_x, a_h = self.project(x, h)
        xr, xz, xn = a_x.chunk(3, dim=-1)
        hr, hz, hn = a_h.chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        h = (1 - z) * n + z * h
        return h, h


CELLS: dict[str, type[_Cell]] = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


def make_cell(
    kind: str,
    input_size: int,
    hidden_size: int,
    nonlinearity: str = "tanh",
    bias: bool = True,
    layer_norm: bool = False,
) -> _Cell:
    """Build a cell by name ("rnn", "lstm", "gru")."""
    check_choice("cell", kind, CELLS)
    if kind == "rnn":
        return RNNCell(input_size, hidden_size, nonlinearity, bias, layer_norm)
    return CELLS[kind](input_size, hidden_size, bias, layer_norm)
