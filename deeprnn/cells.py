"""Recurrent cells: one time step each, written as the textbook equations.

Every cell has PyTorch's parameter names, shapes and gate order (`weight_ih`, `weight_hh`,
`bias_ih`, `bias_hh`; LSTM i, f, g, o; GRU r, z, n), so weights copy 1:1 from
`torch.nn.RNNCell` / `LSTMCell` / `GRUCell`. A cell knows nothing of time: the loop lives
in `deeprnn.layer`. The exact equations are in docs/semantics.md.

Recurrent dropout and zoneout (equations in `deeprnn.kernels.noise`) act on a step through
that step's `Noise`: the loop passes the masks it drew for the whole sequence; a cell
called on its own draws its own.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from deeprnn.errors import InputError, check_choice
from deeprnn.kernels.noise import Noise, dropout_rate, sample_noise, zoneout_pair

NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}

State = Tensor | tuple[Tensor, Tensor]


class _Cell(nn.Module):
    """Shared parameters of the three cells: two projections, optional biases and norms."""

    gates: int = 1
    kind: str = ""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
    ):
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name} must be a positive int, got {value!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bool(bias)
        self.layer_norm = bool(layer_norm)
        self.recurrent_dropout = dropout_rate(recurrent_dropout)
        self.zoneout = zoneout_pair(zoneout)  # (p_h, p_c); p_c only matters for the LSTM
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
            if self.kind == "lstm":  # LN_c inside the output tanh
                self.ln_c = nn.LayerNorm(hidden_size)
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

    @property
    def noisy(self) -> bool:
        """Whether recurrent dropout (training) or zoneout changes the recurrence now."""
        p_h, p_c = self.zoneout
        zoned = p_h > 0.0 or (p_c > 0.0 and self.kind == "lstm")
        return zoned or (self.training and self.recurrent_dropout > 0.0)

    def sample_noise(self, batch: int, time: int, like: Tensor) -> Noise | None:
        """The masks for `time` steps of `batch` rows (None when nothing applies)."""
        return sample_noise(
            self.recurrent_dropout, self.zoneout, self.kind == "lstm", self.training,
            batch, time, like, self.hidden_size,
        )  # fmt: skip

    def _step_noise(self, x: Tensor, noise: Noise | None) -> Noise:
        """The masks of this step: those the loop gives, or fresh ones for a lone call."""
        if noise is not None:
            return noise
        fresh = self.sample_noise(x.shape[0], 1, x)
        return Noise() if fresh is None else fresh.at(0)

    def extra_repr(self) -> str:
        extra = ", layer_norm=True" if self.layer_norm else ""
        extra += "" if self.bias else ", bias=False"
        if self.recurrent_dropout:
            extra += f", recurrent_dropout={self.recurrent_dropout}"
        if self.zoneout != (0.0, 0.0):
            extra += f", zoneout={self.zoneout}"
        return f"{self.input_size}, {self.hidden_size}{extra}"


class RNNCell(_Cell):
    """Elman cell: h' = f(W_ih x + b_ih + W_hh h + b_hh), f in {tanh, relu, sigmoid}.

    With `layer_norm=True` the two projections are layer-normalised before their biases.

    Args:
        input_size: features of x_t.
        hidden_size: units H.
        nonlinearity: "tanh", "relu" or "sigmoid".
        bias: use bias_ih / bias_hh.
        layer_norm: layer-normalise the two projections.
        recurrent_dropout: p of the per-sequence dropout mask on h inside W_hh h (training).
        zoneout: p of keeping the previous h (LSTM: and c), one float or a pair (h, c).
    Call: `h, h = cell(x_t (B, I), h (B, H) or None, noise=None)`.
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
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
    ):
        check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, layer_norm, recurrent_dropout, zoneout)

    def forward(
        self, x: Tensor, state: Tensor | None = None, noise: Noise | None = None
    ) -> tuple[Tensor, Tensor]:
        h = self.initial_state(x.shape[0], x) if state is None else state
        noise = self._step_noise(x, noise)
        a_x, a_h = self.project(x, noise.dropped(h))
        h = noise.zoneout_h(h, NONLINEARITIES[self.nonlinearity](a_x + a_h))
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
    carried c' is not normalised. Recurrent dropout and zoneout as in `RNNCell`; zoneout
    blends h' with h and c' with c (h' computed from the un-zoned c').
    Call: `h, (h, c) = cell(x_t (B, I), (h, c) or None, noise=None)`.
    """

    gates = 4
    kind = "lstm"

    def initial_state(self, batch: int, like: Tensor) -> tuple[Tensor, Tensor]:
        zeros = like.new_zeros(batch, self.hidden_size)
        return zeros, zeros

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None, noise: Noise | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h, c = self.initial_state(x.shape[0], x) if state is None else state
        noise = self._step_noise(x, noise)
        a_x, a_h = self.project(x, noise.dropped(h))
        i, f, g, o = (a_x + a_h).chunk(4, dim=-1)  # 4 x (B, H)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        c_out = self.ln_c(c_new) if self.layer_norm else c_new
        h_new = torch.sigmoid(o) * torch.tanh(c_out)
        h, c = noise.zoneout_h(h, h_new), noise.zoneout_c(c, c_new)
        return h, (h, c)


class GRUCell(_Cell):
    """Gated recurrent unit (gate order r, z, n):

        r = sigmoid(a_x[r] + a_h[r]),  z = sigmoid(a_x[z] + a_h[z])
        n = tanh(a_x[n] + r * a_h[n]),  h' = (1 - z) * n + z * h

    where a_x = W_ih x + b_ih and a_h = W_hh h + b_hh (layer-normalised before the biases
    when `layer_norm=True`). Recurrent dropout and zoneout as in `RNNCell`; the dropout mask
    only enters W_hh h: the h in z * h is the true one.
    Call: `h, h = cell(x_t (B, I), h (B, H) or None, noise=None)`.
    """

    gates = 3
    kind = "gru"

    def forward(
        self, x: Tensor, state: Tensor | None = None, noise: Noise | None = None
    ) -> tuple[Tensor, Tensor]:
        h = self.initial_state(x.shape[0], x) if state is None else state
        noise = self._step_noise(x, noise)
        a_x, a_h = self.project(x, noise.dropped(h))
        xr, xz, xn = a_x.chunk(3, dim=-1)
        hr, hz, hn = a_h.chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        h = noise.zoneout_h(h, (1 - z) * n + z * h)
        return h, h


CELLS: dict[str, type[_Cell]] = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


def make_cell(
    kind: str,
    input_size: int,
    hidden_size: int,
    nonlinearity: str = "tanh",
    bias: bool = True,
    layer_norm: bool = False,
    recurrent_dropout: float = 0.0,
    zoneout: float | tuple[float, float] = 0.0,
) -> _Cell:
    """Build a cell by name ("rnn", "lstm", "gru")."""
    check_choice("cell", kind, CELLS)
    noise = (recurrent_dropout, zoneout)
    if kind == "rnn":
        return RNNCell(input_size, hidden_size, nonlinearity, bias, layer_norm, *noise)
    return CELLS[kind](input_size, hidden_size, bias, layer_norm, *noise)
