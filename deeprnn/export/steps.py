"""Scriptable cell steps and the time loop of the exported graph (`deeprnn.export`).

A step copies a trained cell's parameters and computes its eval-mode update as in
docs/semantics.md; training-only noise has no twin: recurrent dropout vanishes, zoneout
becomes its expectation h = lerp(h_prev, h_new, 1 - p). `Direction` is the time loop
`torch.jit.script` keeps as a loop, so the time axis stays dynamic (ONNX: a `Loop`).

    CellStep   parameters and projections; `project_input` computes [LN](W_ih x) + b_ih for
               all steps at once, a step adds the recurrent part (RNNStep, LSTMStep, GRUStep)
    Direction  one cell over time, masked by lengths, state kept past each row's end
"""

from typing import Final

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deeprnn.cells import GRUCell, LSTMCell, RNNCell


def frozen(t: Tensor) -> nn.Parameter:
    """A CPU copy of a trained tensor, as a parameter the exported graph stores."""
    return nn.Parameter(t.detach().to("cpu").clone(), requires_grad=False)


def _vector(t: Tensor | None, size: int, fill: float, like: Tensor) -> nn.Parameter:
    """`t` copied, or `fill` (size,) where the option is off (no bias: zero, no LN: unused)."""
    return frozen(t if t is not None else torch.full((size,), fill, dtype=like.dtype))


def _norm(ln: nn.LayerNorm | None, name: str, size: int, like: Tensor) -> nn.Parameter:
    """A LayerNorm's gain or shift; without layer norm an unused 1 / 0 keeps the types fixed."""
    return _vector(None if ln is None else getattr(ln, name), size, float(name == "weight"), like)


def valid_steps(lengths: Tensor, time: int) -> Tensor:
    """(B, T) bool: True at each row's real steps t < len_b."""
    return torch.arange(time, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse the first len_b steps of each row of x (B, T, F); padding stays; self-inverse."""
    t = torch.arange(x.size(1), device=x.device).unsqueeze(0)  # (1, T)
    n = lengths.unsqueeze(1)  # (B, 1)
    idx = torch.where(t < n, n - 1 - t, t)  # (B, T)
    return x.gather(1, idx.unsqueeze(-1).expand_as(x))


class CellStep(nn.Module):
    """Parameters and projections shared by the three steps (names as in `deeprnn.cells`).

    a_x = [LN_ih](W_ih x) + b_ih for every step at once (`project_input`), a_h =
    [LN_hh](W_hh h) + b_hh at each step (`project_hidden`); zoneout as its expectation.
    """

    layer_norm: Final[bool]
    eps: Final[float]
    width: Final[int]  # G*H, the normalised shape (a constant for ONNX)
    hidden: Final[int]
    zoneout_h: Final[float]  # p_h: h = lerp(h_prev, h_new, 1 - p_h); 0: off
    zoneout_c: Final[float]  # p_c, LSTM only: c = lerp(c_prev, c_new, 1 - p_c)

    def __init__(self, cell: RNNCell | LSTMCell | GRUCell):
        super().__init__()
        g = cell.weight_ih.shape[0]
        like = cell.weight_ih
        self.layer_norm = cell.layer_norm
        self.width, self.hidden = g, cell.hidden_size
        self.eps = float(cell.ln_ih.eps) if cell.layer_norm else 1e-5
        self.zoneout_h, self.zoneout_c = cell.zoneout
        self.weight_ih = frozen(cell.weight_ih)
        self.weight_hh = frozen(cell.weight_hh)
        self.bias_ih = _vector(cell.bias_ih, g, 0.0, like)
        self.bias_hh = _vector(cell.bias_hh, g, 0.0, like)
        for name in ("ln_ih", "ln_hh"):
            ln = getattr(cell, name) if cell.layer_norm else None
            self.register_parameter(f"{name}_weight", _norm(ln, "weight", g, like))
            self.register_parameter(f"{name}_bias", _norm(ln, "bias", g, like))

    def project_input(self, x: Tensor) -> Tensor:
        """(B, T, I) -> (B, T, G*H)."""
        a = torch.matmul(x, self.weight_ih.t())
        if self.layer_norm:
            a = F.layer_norm(a, [self.width], self.ln_ih_weight, self.ln_ih_bias, self.eps)
        return a + self.bias_ih

    def project_hidden(self, h: Tensor) -> Tensor:
        """(B, H) -> (B, G*H)."""
        a = torch.matmul(h, self.weight_hh.t())
        if self.layer_norm:
            a = F.layer_norm(a, [self.width], self.ln_hh_weight, self.ln_hh_bias, self.eps)
        return a + self.bias_hh

    def zone_h(self, old: Tensor, new: Tensor) -> Tensor:
        if self.zoneout_h > 0.0:
            return torch.lerp(old, new, 1.0 - self.zoneout_h)
        return new


class RNNStep(CellStep):
    """h' = f(a_x + a_h), f in {tanh, relu, sigmoid}; `c` is carried unchanged."""

    nonlinearity: Final[str]

    def __init__(self, cell: RNNCell):
        super().__init__(cell)
        self.nonlinearity = cell.nonlinearity

    def forward(self, a_x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        a = a_x + self.project_hidden(h)
        if self.nonlinearity == "relu":
            new = torch.relu(a)
        elif self.nonlinearity == "sigmoid":
            new = torch.sigmoid(a)
        else:
            new = torch.tanh(a)
        return self.zone_h(h, new), c


class LSTMStep(CellStep):
    """c' = sigmoid(f) c + sigmoid(i) tanh(g); h' = sigmoid(o) tanh([LN_c](c'))."""

    def __init__(self, cell: LSTMCell):
        super().__init__(cell)
        h = cell.hidden_size
        ln = cell.ln_c if cell.layer_norm else None
        self.ln_c_weight = _norm(ln, "weight", h, cell.weight_ih)
        self.ln_c_bias = _norm(ln, "bias", h, cell.weight_ih)

    def forward(self, a_x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        gates = (a_x + self.project_hidden(h)).chunk(4, dim=-1)  # i, f, g, o: 4 x (B, H)
        c_new = torch.sigmoid(gates[1]) * c + torch.sigmoid(gates[0]) * torch.tanh(gates[2])
        c_out = c_new
        if self.layer_norm:
            c_out = F.layer_norm(c_new, [self.hidden], self.ln_c_weight, self.ln_c_bias, self.eps)
        h_new = torch.sigmoid(gates[3]) * torch.tanh(c_out)
        if self.zoneout_c > 0.0:
            c_new = torch.lerp(c, c_new, 1.0 - self.zoneout_c)
        return self.zone_h(h, h_new), c_new


class GRUStep(CellStep):
    """r, z = sigmoid(a_x + a_h); n = tanh(a_x[n] + r a_h[n]); h' = (1 - z) n + z h."""

    def forward(self, a_x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        xs = a_x.chunk(3, dim=-1)
        hs = self.project_hidden(h).chunk(3, dim=-1)
        r = torch.sigmoid(xs[0] + hs[0])
        z = torch.sigmoid(xs[1] + hs[1])
        n = torch.tanh(xs[2] + r * hs[2])
        return self.zone_h(h, (1.0 - z) * n + z * h), c


STEPS = {RNNCell: RNNStep, LSTMCell: LSTMStep, GRUCell: GRUStep}


class Direction(nn.Module):
    """One cell over time from a zero state: x (B, T, I), mask (B, T, 1) -> out (B, T, H).

    Rows keep their state past their last real step; their outputs there are zero.
    """

    hidden: Final[int]
    lstm: Final[bool]  # whether the state has a c to carry

    def __init__(self, cell: RNNCell | LSTMCell | GRUCell):
        super().__init__()
        self.step = STEPS[type(cell)](cell)
        self.hidden = cell.hidden_size
        self.lstm = cell.kind == "lstm"

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        a_x = self.step.project_input(x)  # (B, T, G*H)
        h = x.new_zeros((x.size(0), self.hidden))
        c = h
        outs: list[Tensor] = []
        for t in range(x.size(1)):
            h_new, c_new = self.step(a_x[:, t], h, c)
            m = mask[:, t]  # (B, 1)
            h = torch.where(m, h_new, h)
            if self.lstm:
                c = torch.where(m, c_new, c)
            outs.append(h_new)
        out = torch.stack(outs, dim=1)  # (B, T, H)
        return out * mask.to(out.dtype)


class FusedDirection(nn.Module):
    """The same as `Direction` on torch's fused sequence op (ONNX: an LSTM / GRU / RNN node),
    for cells it computes exactly: plain tanh / relu RNN, LSTM, GRU without zoneout.

    Only outputs are exported, and an output at t < len_b depends on steps <= t alone, so
    the padded rows run whole and their padding is zeroed afterwards.
    """

    kind: Final[str]  # "lstm" | "gru" | "rnn_tanh" | "rnn_relu"
    hidden: Final[int]

    def __init__(self, cell: RNNCell | LSTMCell | GRUCell):
        super().__init__()
        self.kind = f"rnn_{cell.nonlinearity}" if cell.kind == "rnn" else cell.kind
        self.hidden = cell.hidden_size
        g, like = cell.weight_ih.shape[0], cell.weight_ih
        self.weight_ih = frozen(cell.weight_ih)
        self.weight_hh = frozen(cell.weight_hh)
        self.bias_ih = _vector(cell.bias_ih, g, 0.0, like)  # zero biases: bias=False exactly
        self.bias_hh = _vector(cell.bias_hh, g, 0.0, like)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = x.new_zeros((1, x.size(0), self.hidden))  # (layers * directions, B, H)
        w = [self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh]
        # Arguments after the weights: biases, 1 layer, no dropout, eval, one direction,
        # batch-first.
        if self.kind == "lstm":
            out = torch.lstm(x, [h, h], w, True, 1, 0.0, False, False, True)[0]
        elif self.kind == "gru":
            out = torch.gru(x, h, w, True, 1, 0.0, False, False, True)[0]
        elif self.kind == "rnn_relu":
            out = torch.rnn_relu(x, h, w, True, 1, 0.0, False, False, True)[0]
        else:
            out = torch.rnn_tanh(x, h, w, True, 1, 0.0, False, False, True)[0]
        return out * mask.to(out.dtype)


def fusable(cell: RNNCell | LSTMCell | GRUCell) -> bool:
    """Whether `FusedDirection` computes this cell's eval-mode recurrence exactly."""
    p_h, p_c = cell.zoneout
    zoned = p_h > 0.0 or (cell.kind == "lstm" and p_c > 0.0)
    return not (cell.layer_norm or zoned or getattr(cell, "nonlinearity", "") == "sigmoid")


def direction(cell: RNNCell | LSTMCell | GRUCell, fused: bool = True) -> nn.Module:
    """The exported time loop of `cell`: the fused op when it applies (and `fused`), else ours."""
    return FusedDirection(cell) if fused and fusable(cell) else Direction(cell)
