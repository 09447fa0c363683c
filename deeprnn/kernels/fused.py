"""One direction of one layer on our fused recurrence: what torch's kernels cannot compute.

    1. the input projection of ALL steps as one matrix product (with LN_ih and every bias
       that only adds: b_ih, and for the LSTM / RNN also b_hh and LN_hh's bias);
    2. the recurrence as one autograd Function (lstm.py, gru.py, rnn.py) with explicit BPTT;
    3. lengths as an update weight: a row past its length keeps its state (u = 0), the same
       mechanism as zoneout, and its outputs are zeroed.

Inside, time is the leading axis, so that each step's slices are contiguous blocks.
Same results as the generic cell loop (tests compare them in float64 to 1e-10).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from deeprnn.kernels import extension
from deeprnn.kernels import triton as triton_path
from deeprnn.kernels.gemm import linear
from deeprnn.kernels.gru import GRURecurrence
from deeprnn.kernels.lstm import LayerNormLSTMRecurrence, LSTMRecurrence
from deeprnn.kernels.noise import Noise, Update
from deeprnn.kernels.rnn import RNNRecurrence

State = Tensor | tuple[Tensor, Tensor]


def _update(update: Update, valid: Tensor | None, like: Tensor) -> Tensor | None:
    """The step weights u (T, B, H or 1) of zoneout times the length mask; None for all 1."""
    if update is None:
        return valid
    if isinstance(update, float):
        full = like.new_full((1, 1, 1), update).expand(like.shape[0], like.shape[1], 1)
        return full if valid is None else valid * update
    return update if valid is None else update * valid


def _input_part(cell: nn.Module, x: Tensor, scale: Tensor | None) -> Tensor:
    """a_x (T, B, G*H) for all steps at once: [LN_ih](W_ih x) plus the additive biases,
    times `scale` (G*H,) per row when given (exact: powers of two)."""
    if not cell.layer_norm:
        weight, bias = cell.weight_ih, _additive_bias(cell)
        if scale is not None:
            weight = weight * scale.unsqueeze(1)
            bias = None if bias is None else bias * scale
        return linear(x, weight, bias)
    gamma, beta = _ln_input(cell, scale)
    return F.layer_norm(linear(x, cell.weight_ih), beta.shape, gamma, beta, cell.ln_ih.eps)


def _folds_hh(cell: nn.Module) -> bool:
    """Whether b_hh (and LN_hh's bias) only add, so fold into the input part: not for the
    GRU, whose r multiplies a_h[n]."""
    return cell.kind != "gru"


def _additive_bias(cell: nn.Module) -> Tensor | None:
    """b_ih, plus b_hh where it folds (`_folds_hh`); None without biases."""
    if cell.bias and _folds_hh(cell):
        return cell.bias_ih + cell.bias_hh
    return cell.bias_ih


def _ln_input(cell: nn.Module, scale: Tensor | None) -> tuple[Tensor, Tensor]:
    """LN_ih's (gamma, beta), with the additive biases folded into beta, times `scale`."""
    gamma, beta = cell.ln_ih.weight, cell.ln_ih.bias
    if _folds_hh(cell):
        beta = beta + cell.ln_hh.bias
    bias = _additive_bias(cell)
    if bias is not None:
        beta = beta + bias
    if scale is not None:
        gamma, beta = gamma * scale, beta * scale
    return gamma, beta


def _lstm_scale(cell: nn.Module, like: Tensor) -> Tensor:
    """(4H,) 1 on the i, f, o rows, 2 on the g rows: `LSTMRecurrence` takes g doubled."""
    scale = like.new_ones(4, cell.hidden_size)
    scale[2] = 2.0
    return scale.flatten()


def fused_direction(
    cell: nn.Module, x: Tensor, state: State, valid: Tensor | None, noise: Noise | None
) -> tuple[Tensor, State]:
    """Run `cell` forward over x (B, T, I) from `state`: (outputs (B, T, H), final state).

    valid: (T, B, 1) 1.0 on real steps, 0.0 past each row's length; None when all are real.
    noise: this direction's recurrent-dropout / zoneout masks (`Noise`), or None.
    The outputs are a (B, T, H) view of a time-major tensor. On CUDA, with triton
    installed, the Triton kernels run it (`deeprnn.kernels.triton`).
    """
    if triton_path.takes(x, cell.hidden_size):
        return triton_path.direction(cell, x, state, valid, noise)
    x = x.transpose(0, 1)  # (T, B, I)
    noise = noise or Noise()
    u_h = _update(noise.update_h, valid, x)
    run = {"lstm": _lstm, "gru": _gru, "rnn": _rnn}[cell.kind]
    h, final = run(cell, x, state, noise, u_h, _update(noise.update_c, valid, x))
    return (h if valid is None else h * valid).transpose(0, 1), final


def _lstm(cell, x, state, noise, u_h, u_c):
    scale = _lstm_scale(cell, x)
    h0, c0 = state
    if cell.layer_norm and extension.takes(x):  # input LN inside the C++ loops
        gamma_ih, beta = _ln_input(cell, scale)
        h, h_last, c_last = LayerNormLSTMRecurrence.apply(
            linear(x, cell.weight_ih), h0, c0, cell.weight_hh, gamma_ih, beta,
            cell.ln_hh.weight * scale, cell.ln_c.weight, cell.ln_c.bias, noise.drop, u_h, u_c,
            cell.ln_ih.eps, cell.ln_hh.eps,
        )  # fmt: skip
        return h, (h_last, c_last)
    a_x = _input_part(cell, x, scale)
    if cell.layer_norm:
        weight_hh, gamma_hh, eps = cell.weight_hh, cell.ln_hh.weight * scale, cell.ln_hh.eps
        gamma_c, beta_c = cell.ln_c.weight, cell.ln_c.bias
    else:
        weight_hh, gamma_hh, eps = cell.weight_hh * scale.unsqueeze(1), None, 0.0
        gamma_c = beta_c = None
    h, h_last, c_last = LSTMRecurrence.apply(
        a_x, h0, c0, weight_hh, gamma_hh, gamma_c, beta_c, noise.drop, u_h, u_c, eps
    )
    return h, (h_last, c_last)


def _gru(cell, x, state, noise, u_h, _):
    beta, gamma_hh, eps = cell.bias_hh, None, 0.0
    if cell.layer_norm:
        beta = cell.ln_hh.bias if beta is None else cell.ln_hh.bias + beta
        gamma_hh, eps = cell.ln_hh.weight, cell.ln_hh.eps
    a_x = _input_part(cell, x, None)
    return GRURecurrence.apply(a_x, state, cell.weight_hh, beta, gamma_hh, noise.drop, u_h, eps)


def _rnn(cell, x, state, noise, u_h, _):
    gamma_hh, eps = (cell.ln_hh.weight, cell.ln_hh.eps) if cell.layer_norm else (None, 0.0)
    a_x = _input_part(cell, x, None)
    return RNNRecurrence.apply(
        a_x, state, cell.weight_hh, gamma_hh, noise.drop, u_h, cell.nonlinearity, eps
    )
