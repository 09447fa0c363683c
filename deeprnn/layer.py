"""One recurrent layer: a cell (or two, when bidirectional) run over time.

The time loop is written once (`run_cell`); direction and lengths are handled by
re-indexing the input, so every cell gets the same loop. Three paths, the first that
applies runs (each fast path is a function that returns None when it does not apply):

    "native": torch's fused kernel (`_native_forward`): a tanh / relu RNN, LSTM or GRU
              without layer norm, recurrent dropout (training) or zoneout;
    "fused":  our fused recurrence (`_fused_forward`, `deeprnn.kernels`): everything else;
    "triton": the same on CUDA with triton installed: Triton kernels run its steps;
    "loop":   the generic cell loop (`run_cell`), the slow reference.

Recurrent-dropout and zoneout masks are drawn once per call, before the path is chosen, so
every path sees the same masks for the same seed.
"""

from __future__ import annotations

import torch
from torch import _VF, Tensor, nn

from deeprnn.cells import State, make_cell
from deeprnn.kernels import Noise, fused_direction
from deeprnn.kernels import triton as triton_path
from deeprnn.kernels.infer import run_kernel
from deeprnn.ragged import forward_ragged


def _where(mask: Tensor, new: State, old: State) -> State:
    """Pick `new` where mask (B, 1) is true, else `old`, for h or (h, c)."""
    if isinstance(new, tuple):
        return tuple(torch.where(mask, n, o) for n, o in zip(new, old))
    return torch.where(mask, new, old)


def reverse_index(lengths: Tensor, time: int) -> Tensor:
    """(B, T) index that reverses each row's first len_b steps and leaves padding in place."""
    t = torch.arange(time, device=lengths.device).unsqueeze(0)  # (1, T)
    n = lengths.unsqueeze(1)  # (B, 1)
    return torch.where(t < n, n - 1 - t, t)


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse the valid part of each row of x (B, T, F); its own inverse."""
    idx = reverse_index(lengths.to(x.device), x.shape[1])
    return x.gather(1, idx.unsqueeze(-1).expand_as(x))


def run_cell(
    cell: nn.Module, x: Tensor, state: State, lengths: Tensor | None, noise: Noise | None = None
) -> tuple[Tensor, State]:
    """The generic time loop: x (B, T, I) -> outputs (B, T, H), final state.

    Rows stop updating their state after their last real step; their outputs there are 0.
    `noise`: recurrent-dropout / zoneout masks for the T steps (None: none, or the cell's own).
    """
    mask = None
    if lengths is not None:
        steps = torch.arange(x.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
        mask = steps.to(x.device).unsqueeze(-1)  # (B, T, 1)
    outs = []
    for t in range(x.shape[1]):
        h, new = cell(x[:, t], state, None if noise is None else noise.at(t))
        if mask is None:
            state = new
        else:
            state = _where(mask[:, t], new, state)
            h = torch.where(mask[:, t], h, torch.zeros_like(h))
        outs.append(h)
    return torch.stack(outs, dim=1), state


_KERNELS = {"lstm": _VF.lstm, "gru": _VF.gru}
# One step of the same recurrence (what torch.nn.LSTMCell & co. call): far cheaper than the
# sequence kernel for T = 1, the streaming `step`.
_STEP_KERNELS = {
    _VF.lstm: _VF.lstm_cell, _VF.gru: _VF.gru_cell,
    _VF.rnn_tanh: _VF.rnn_tanh_cell, _VF.rnn_relu: _VF.rnn_relu_cell,
}  # fmt: skip


def _native_kernel(cell: nn.Module):
    """The fused torch kernel that computes this cell's recurrence, or None."""
    if cell.layer_norm or cell.noisy:
        return None
    if cell.kind == "rnn":
        return {"tanh": _VF.rnn_tanh, "relu": _VF.rnn_relu}.get(cell.nonlinearity)
    return _KERNELS[cell.kind]


class RecurrentLayer(nn.Module):
    """One layer: `cell` forward in time and, when bidirectional, `cell_reverse` backward.

    Call: `out, state = layer(x (B, T, I), state, lengths)`; out is (B, T, D*H) with the two
    directions concatenated (forward first). State: h or (h, c), each (B, H) or, when
    bidirectional, (2, B, H) (index 0 forward, 1 reverse), as in docs/semantics.md.
    `recurrent_dropout` and `zoneout` are the cells' (see `deeprnn.kernels.noise`).
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        nonlinearity: str = "tanh",
        bias: bool = True,
        layer_norm: bool = False,
        bidirectional: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
    ):
        super().__init__()
        self.bidirectional = bidirectional
        self.hidden_size = hidden_size
        self.native = True  # allow the fast paths (torch's kernel, ours); False: the loop
        self.torch_kernel = True  # allow torch's kernel; False: ours runs plain layers too
        options = (nonlinearity, bias, layer_norm, recurrent_dropout, zoneout)
        self.cell = make_cell(cell, input_size, hidden_size, *options)
        if bidirectional:
            self.cell_reverse = make_cell(cell, input_size, hidden_size, *options)

    @property
    def output_size(self) -> int:
        return self.hidden_size * (2 if self.bidirectional else 1)

    @property
    def cells(self) -> list[nn.Module]:
        return [self.cell, self.cell_reverse] if self.bidirectional else [self.cell]

    def explain(self) -> tuple[str, str]:
        """(path, reason): which implementation runs this layer ("native" | "fused" |
        "triton" | "loop"), and why. Depends on the mode (recurrent dropout only acts in
        training) and, for "triton", on the device and dtype of the layer's weights."""
        cell = self.cell
        if not self.native:
            return "loop", "fast paths disabled by use_native(False)"
        if _native_kernel(cell) is not None and self.torch_kernel:
            return "native", (f"torch fused {cell.kind} kernel computes this layer exactly "
                              "(its math on deeprnn's few-row loop for inference on a few CPU "
                              "float32 rows: deeprnn.kernels.infer)")  # fmt: skip
        if not self.torch_kernel and _native_kernel(cell) is not None:
            why = "torch's kernel disabled (torch_kernel=False)"
        elif cell.layer_norm:
            why = "layer norm inside the recurrence has no fused torch kernel"
        elif cell.zoneout[0] > 0.0 or (cell.kind == "lstm" and cell.zoneout[1] > 0.0):
            why = "zoneout has no fused torch kernel"
        elif cell.noisy:
            why = "recurrent dropout (training) has no fused torch kernel"
        else:
            why = f"{cell.nonlinearity} RNN has no fused torch kernel"
        weight = cell.weight_hh
        if triton_path.runs_on(weight.device, weight.dtype, cell.hidden_size):
            return "triton", (f"{why}; Triton kernels run it, one kernel and one matrix "
                              "product a step, explicit BPTT")  # fmt: skip
        loops = "in TorchScript"
        if cell.kind == "lstm":
            loops = "in C++ on CPU (TorchScript where that can't be built)"
        return "fused", f"{why}; our fused recurrence with explicit BPTT runs it, steps {loops}"

    def initial_state(self, batch: int, like: Tensor) -> State:
        if not self.bidirectional:
            return self.cell.initial_state(batch, like)
        zeros = like.new_zeros(2, batch, self.cell.hidden_size)  # the cells' zero state, x2
        return (zeros, zeros) if self.cell.kind == "lstm" else zeros

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """One time step of a unidirectional layer: x (B, I) -> (h (B, H), new state).

        torch's one-step kernel (what nn.LSTMCell calls) where it computes the cell, else
        the cell itself: either costs far less than setting a sequence kernel up for T = 1.
        """
        kernel = _native_kernel(self.cell) if self.native and self.torch_kernel else None
        if kernel is None:
            return self.cell(x, state)
        p = self.cell._parameters  # a dict: Module.__getattr__ costs ~1 us per weight
        new = _STEP_KERNELS[kernel](x, state, p["weight_ih"], p["weight_hh"], p.get("bias_ih"),
                                    p.get("bias_hh"))  # fmt: skip
        return (new[0] if isinstance(new, tuple) else new), new

    def forward(
        self, x: Tensor, state: State | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, State]:
        if state is None:
            state = self.initial_state(x.shape[0], x)
        noise = [cell.sample_noise(x.shape[0], x.shape[1], x) for cell in self.cells]
        result = _native_forward(self, x, state, lengths)
        if result is None:
            result = _fused_forward(self, x, state, lengths, noise)
        if result is not None:
            return result

        def loop(cell, x, state, noise):
            return run_cell(cell, x, state, lengths, noise)

        return _each_direction(self, loop, x, state, lengths, noise)


def _each_direction(layer, run, x, state, lengths, noise) -> tuple[Tensor, State]:
    """`run(cell, x, state, noise)` forward, and on the reversed valid steps for the reverse
    direction; outputs concatenated (forward first), states in the doc's format."""
    if not layer.bidirectional:
        return run(layer.cell, x, state, noise[0])
    fwd_state, bwd_state = _split_directions(state)
    out_f, fwd_state = run(layer.cell, x, fwd_state, noise[0])
    full = torch.full((x.shape[0],), x.shape[1], dtype=torch.long)
    n = full if lengths is None else lengths
    out_b, bwd_state = run(layer.cell_reverse, reverse_padded(x, n), bwd_state, noise[1])
    out = torch.cat([out_f, reverse_padded(out_b, n)], dim=-1)
    return out, _join_directions(fwd_state, bwd_state)


def _fused_forward(
    layer: RecurrentLayer,
    x: Tensor,
    state: State,
    lengths: Tensor | None,
    noise: list[Noise | None],
) -> tuple[Tensor, State] | None:
    """Run the layer on our fused recurrence (`deeprnn.kernels`), or return None if it can't.

    One step (T = 1, the streaming `step`) is left to the cell loop: a single cell call costs
    less than setting the fused recurrence up, and computes the same.
    """
    if not layer.native or x.shape[1] <= 1:
        return None
    valid = None
    if lengths is not None and not bool((lengths == x.shape[1]).all()):
        steps = torch.arange(x.shape[1]).unsqueeze(1) < lengths.unsqueeze(0)  # (T, B)
        valid = steps.to(x.device, x.dtype).unsqueeze(-1)  # (T, B, 1)

    def fused(cell, x, state, noise):
        return fused_direction(cell, x, state, valid, noise)

    return _each_direction(layer, fused, x, state, lengths, noise)


def _split_directions(state: State) -> tuple[State, State]:
    if isinstance(state, tuple):
        return tuple(s[0] for s in state), tuple(s[1] for s in state)
    return state[0], state[1]


def _join_directions(fwd: State, bwd: State) -> State:
    if isinstance(fwd, tuple):
        return tuple(torch.stack([f, b]) for f, b in zip(fwd, bwd))
    return torch.stack([fwd, bwd])


def _native_forward(
    layer: RecurrentLayer, x: Tensor, state: State, lengths: Tensor | None
) -> tuple[Tensor, State] | None:
    """Run the layer on torch's fused kernel (oneDNN / cuDNN), or return None if it can't."""
    kernel = _native_kernel(layer.cell)
    if kernel is None or not layer.native or not layer.torch_kernel:
        return None
    if x.shape[1] == 1 and not layer.bidirectional and (lengths is None or bool(lengths.all())):
        h, new = layer.step(x.select(1, 0), state)
        return h.unsqueeze(1), new
    if lengths is not None and not bool((lengths == x.shape[1]).all()):
        return _each_direction(layer, _ragged_direction(kernel, lengths), x, state, lengths,
                               [None, None])  # fmt: skip
    weights = _kernel_weights(layer)
    result = run_kernel(kernel, x, _kernel_state(layer, state), weights, layer.cell.bias, 1,
                        layer.bidirectional)  # fmt: skip
    out, new = result[0], (result[1], result[2]) if isinstance(state, tuple) else result[1]
    return out, _layer_state(layer, new)


def _ragged_direction(kernel, lengths: Tensor):
    """`run(cell, x, state, noise)` for `_each_direction`: one direction with `lengths` on
    torch's padded kernel (`deeprnn.ragged`), not on packed sequences."""

    def run(cell, x, state, noise):
        weights = [w for w in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
                   if w is not None]  # fmt: skip
        lstm = isinstance(state, tuple)
        hx = tuple(s.unsqueeze(0) for s in state) if lstm else state.unsqueeze(0)
        out, new = forward_ragged(kernel, cell.kind, x, hx, weights, cell.bias, lengths)
        return out, (tuple(s.squeeze(0) for s in new) if lstm else new.squeeze(0))

    return run


def _kernel_weights(layer: RecurrentLayer) -> list[Tensor]:
    """The layer's parameters in the order torch's kernels read them (as nn.LSTM's)."""
    weights = [p for c in layer.cells for p in (c.weight_ih, c.weight_hh, c.bias_ih, c.bias_hh)]
    return [w for w in weights if w is not None]


def _kernel_state(layer: RecurrentLayer, state: State) -> State:
    """A layer state as torch's kernels want it: (directions, B, H)."""
    if layer.bidirectional:
        return state
    return tuple(s.unsqueeze(0) for s in state) if isinstance(state, tuple) else state.unsqueeze(0)


def _layer_state(layer: RecurrentLayer, new: State) -> State:
    """The inverse of `_kernel_state`."""
    if layer.bidirectional:
        return new
    return tuple(s.squeeze(0) for s in new) if isinstance(new, tuple) else new.squeeze(0)


def native_stack_forward(
    layers: list[RecurrentLayer], x: Tensor, states: list[State]
) -> tuple[Tensor, list[State]] | None:
    """All `layers`, a plain stack, in ONE call of torch's multi-layer kernel, as
    nn.LSTM(num_layers=L) runs them: (top layer's output, each layer's final state); None
    unless every layer is on the native path with the same kernel, bias, width and directions.

    Layer-by-layer calls compute the same, but each call transposes its batch-first input
    and output once more (~1-2 % of a small train step, measured)."""
    first = layers[0]
    kernel = _native_kernel(first.cell)

    def joins(layer: RecurrentLayer) -> bool:
        cell = layer.cell
        return (
            layer.native and layer.torch_kernel and _native_kernel(cell) is kernel
            and (cell.bias, cell.hidden_size) == (first.cell.bias, first.cell.hidden_size)
            and layer.bidirectional == first.bidirectional
        )  # fmt: skip

    if kernel is None or not all(joins(layer) for layer in layers):
        return None
    lstm = isinstance(states[0], tuple)
    parts = [_kernel_state(layer, s) for layer, s in zip(layers, states)]
    hx = tuple(torch.cat(p) for p in zip(*parts)) if lstm else torch.cat(parts)
    weights = [w for layer in layers for w in _kernel_weights(layer)]
    bi = first.bidirectional
    result = run_kernel(kernel, x, hx, weights, first.cell.bias, len(layers), bi)
    new = (result[1], result[2]) if lstm else result[1]
    d = 2 if bi else 1
    finals = []
    for i, layer in enumerate(layers):
        part = tuple(n[i * d : i * d + d] for n in new) if lstm else new[i * d : i * d + d]
        finals.append(_layer_state(layer, part))
    return result[0], finals
