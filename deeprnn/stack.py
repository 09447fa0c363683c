"""DeepRNN: one stack class for every classic deep-RNN wiring.

Layer l (0-based) reads u_l = x (l = 0), or z = [between](o_(l-1)) ("stack") or
(x, z) concatenated ("skip", Graves 2013); its recurrence gives r_l; with residual
connections o_l = r_l + o_(l-1). See docs/semantics.md for the exact contract, which the
NumPy reference in `deeprnn.reference` implements independently.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from deeprnn.cells import State
from deeprnn.config import (
    BETWEEN_ACTIVATIONS,
    CELL_KINDS,
    NONLINEARITY_NAMES,
    OUTPUT_MODES,
    WIRINGS,
    RNNConfig,
)
from deeprnn.errors import (
    InputError,
    InputTypeError,
    all_finite,
    check_choice,
    check_lengths,
    check_sequence_batch,
)
from deeprnn.explanation import Explanation
from deeprnn.kernels.noise import dropout_rate, zoneout_pair
from deeprnn.layer import RecurrentLayer, native_stack_forward

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "linear": nn.Identity}


def _per_layer(name: str, value, num_layers: int | None) -> list:
    """Broadcast one value to every layer, or check a per-layer list."""
    if isinstance(value, (list, tuple)):
        if len(value) == 0:
            raise InputError(f"{name} must not be an empty list")
        if num_layers is not None and len(value) != num_layers:
            raise InputError(
                f"{name} has {len(value)} entries but num_layers is {num_layers}; "
                "give one value, or one per layer"
            )
        return list(value)
    return [value] * (num_layers or 1)


def build_config(
    input_size: int,
    hidden_size: int | Sequence[int],
    num_layers: int | None = None,
    cell: str | Sequence[str] = "lstm",
    **options,
) -> RNNConfig:
    """Validate DeepRNN's arguments and normalise them into an `RNNConfig`."""
    if num_layers is not None and (
        not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 1
    ):
        raise InputError(f"num_layers must be a positive int or None, got {num_layers!r}")
    lists = [v for v in (hidden_size, cell) if isinstance(v, (list, tuple))]
    if num_layers is None and lists:
        num_layers = len(lists[0])
    sizes = _per_layer("hidden_size", hidden_size, num_layers)
    cells = _per_layer("cell", cell, num_layers)
    if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size < 1:
        raise InputError(f"input_size must be a positive int, got {input_size!r}")
    for s in sizes:
        if not isinstance(s, int) or isinstance(s, bool) or s < 1:
            raise InputError(f"hidden_size must hold positive ints, got {s!r}")
    for c in cells:
        check_choice("cell", c, CELL_KINDS)
    check_choice("nonlinearity", options.get("nonlinearity", "tanh"), NONLINEARITY_NAMES)
    check_choice("wiring", options.get("wiring", "stack"), WIRINGS)
    check_choice("outputs", options.get("outputs", "top"), OUTPUT_MODES)
    if options.get("between") is not None:
        check_choice("between", options["between"], BETWEEN_ACTIVATIONS)
    for flag in ("residual", "layer_norm", "bidirectional", "bias"):
        if not isinstance(options.get(flag, False), bool):
            raise InputTypeError(f"{flag} must be True or False, got {options[flag]!r}")
    dropout = options.get("dropout", 0.0)
    if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise InputError(f"dropout must be a float in [0, 1), got {dropout!r}")
    options["recurrent_dropout"] = dropout_rate(options.get("recurrent_dropout", 0.0))
    zoneout = options.get("zoneout", 0.0)
    pair = zoneout_pair(zoneout)  # (p_h, p_c), raises on a bad value
    options["zoneout"] = pair if isinstance(zoneout, (list, tuple)) else pair[0]
    config = RNNConfig(input_size, tuple(sizes), tuple(cells), **options)
    _check_residual_widths(config)
    return config


def _check_residual_widths(config: RNNConfig) -> None:
    if not config.residual:
        return
    d = 2 if config.bidirectional else 1
    widths = [d * h for h in config.hidden_size]
    for layer in range(1, len(widths)):
        if widths[layer] != widths[layer - 1]:
            raise InputError(
                f"residual=True adds layer {layer - 1}'s output to layer {layer}'s, but their "
                f"widths differ ({widths[layer - 1]} vs {widths[layer]}); use one hidden_size "
                "for the layers or residual=False"
            )


class StepState(list):
    """The state `DeepRNN.step` returns: the usual list, one entry per layer, marked with
    the network, batch size and dtype it belongs to, so that the next step can trust it."""

    __slots__ = ("key",)


class DeepRNN(nn.Module):
    """A deep recurrent network: `outputs, state = net(x, state=None, lengths=None)`.

    Args:
        input_size: features I of x.
        hidden_size: units per layer, one int or one per layer.
        num_layers: depth; inferred from list arguments when None (1 otherwise).
        cell: "rnn" | "lstm" | "gru", one or one per layer.
        nonlinearity: of RNN cells, "tanh" | "relu" | "sigmoid".
        wiring: "stack" (layer l reads h^(l-1)) or "skip" (reads x and h^(l-1)).
        residual: add each layer's input-side output o_(l-1) to its own.
        layer_norm: layer-normalised cells (run on our fused recurrence, deeprnn.kernels).
        dropout: dropout on the input of every layer above the first (training only).
        recurrent_dropout: dropout on h_(t-1) inside the recurrence, one mask per sequence
            (Gal & Ghahramani 2016; training only).
        zoneout: probability of keeping each unit's previous h (LSTM: and c), one float or
            a pair (h, c) (Krueger et al. 2017); eval uses the expectation.
        bidirectional: each layer runs both ways; output widths double.
        between: Linear + activation ("relu" | "tanh" | "sigmoid" | "linear") between layers.
        outputs: "top" (last layer) or "all" (every layer concatenated on features).
        bias: use bias_ih / bias_hh.
    Shapes: x (B, T, I) batch-first; lengths (B,) true lengths of right-padded rows;
    outputs (B, T, output_size), zero past each row's length; state: list, one entry per
    layer, h or (h, c), each (B, H) or (2, B, H) when bidirectional.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int | Sequence[int],
        num_layers: int | None = None,
        cell: str | Sequence[str] = "lstm",
        nonlinearity: str = "tanh",
        wiring: str = "stack",
        residual: bool = False,
        layer_norm: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        between: str | None = None,
        outputs: str = "top",
        bias: bool = True,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
    ):
        super().__init__()
        self.config = build_config(
            input_size, hidden_size, num_layers, cell, nonlinearity=nonlinearity,
            wiring=wiring, residual=residual, layer_norm=layer_norm, dropout=float(dropout),
            bidirectional=bidirectional, between=between, outputs=outputs, bias=bias,
            recurrent_dropout=recurrent_dropout, zoneout=zoneout,
        )  # fmt: skip
        c = self.config
        d = 2 if c.bidirectional else 1
        self.layers = nn.ModuleList()
        width = c.input_size
        for kind, size in zip(c.cell, c.hidden_size):
            reads = width + (c.input_size if c.wiring == "skip" and self.layers else 0)
            self.layers.append(
                RecurrentLayer(
                    kind, reads, size, c.nonlinearity, c.bias, c.layer_norm, c.bidirectional,
                    c.recurrent_dropout, c.zoneout,
                )
            )  # fmt: skip
            width = d * size
        if c.between is not None:
            self.between = nn.ModuleList(
                nn.Linear(layer.output_size, layer.output_size) for layer in self.layers[:-1]
            )
            self.between_activation = ACTIVATIONS[c.between]()
        self.drop = nn.Dropout(c.dropout)

    @property
    def output_size(self) -> int:
        """Features of the outputs: top layer's width, or the sum over layers ("all")."""
        widths = [layer.output_size for layer in self.layers]
        return sum(widths) if self.config.outputs == "all" else widths[-1]

    def explain(self) -> Explanation:
        """For each layer: its cell, which path runs it ("native" | "fused" | "triton" |
        "loop"), and why (a list of dicts that prints as a table)."""
        rows = Explanation()
        for i, layer in enumerate(self.layers):
            path, why = layer.explain()
            rows.append({"layer": i, "cell": layer.cell.kind, "path": path, "reason": why})
        return rows

    def use_native(self, enabled: bool = True) -> DeepRNN:
        """Allow (default) or forbid the fast paths (torch's kernels, ours); forbidding forces
        the loop."""
        for layer in self.layers:
            layer.native = bool(enabled)
        return self

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(
        self, x: Tensor, state: list[State] | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, list[State]]:
        c = self.config
        x = check_sequence_batch(x, "x", c.input_size, next(self.parameters()).dtype)
        lengths = check_lengths(lengths, x.shape[0], x.shape[1])
        state = self._check_state(state, x)
        if self._one_kernel_call(lengths, x.shape[1]):
            result = native_stack_forward(list(self.layers), x, state)
            if result is not None:
                return result
        mask = None
        if lengths is not None:
            steps = torch.arange(x.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
            mask = steps.to(x.device).unsqueeze(-1)  # (B, T, 1)
        below, outs, final = None, [], []
        for i, layer in enumerate(self.layers):
            r, s = layer(self._layer_input(i, x, below), state[i], lengths)
            r = self._residual(r, x, below)
            if mask is not None:
                r = r * mask
            below = r
            outs.append(r)
            final.append(s)
        out = torch.cat(outs, dim=-1) if c.outputs == "all" else outs[-1]
        return out, final

    def _one_kernel_call(self, lengths: Tensor | None, time: int) -> bool:
        """Whether the wiring lets torch run the whole stack in one call (then it does, if
        every layer is on the native path: `native_stack_forward`): a plain stack with
        nothing between its layers, the top layer's outputs, every row full length."""
        c = self.config
        plain = c.wiring == "stack" and not c.residual and c.between is None
        no_dropout = c.dropout == 0.0 or not self.training
        full = lengths is None or bool((lengths == time).all())
        return len(self.layers) > 1 and plain and no_dropout and c.outputs == "top" and full

    def _layer_input(self, i: int, x: Tensor, below: Tensor | None) -> Tensor:
        """What layer i reads: x, or [between](o_(i-1)) after dropout, with x ("skip")."""
        if below is None:
            return x
        c = self.config
        z = below
        if c.between is not None:
            z = self.between_activation(self.between[i - 1](z))
        if self.training and c.dropout > 0.0:  # skip the module call: step() runs per sample
            z = self.drop(z)
        return torch.cat([x, z], dim=-1) if c.wiring == "skip" else z

    def _residual(self, r: Tensor, x: Tensor, below: Tensor | None) -> Tensor:
        """r + o_(i-1) (x for the first layer) when residual and the widths agree."""
        if not self.config.residual:
            return r
        skip = x if below is None else below
        return r + skip if skip.shape[-1] == r.shape[-1] else r

    def step(self, x_t: Tensor, state: list[State] | None = None) -> tuple[Tensor, list[State]]:
        """One time step for streaming inference: x_t (B, I) -> (output (B, W), state).

        Equals calling the network on x_t as a sequence of one step, at the cost of torch's
        one-step kernels: x_t is checked on every call; a state that the previous `step` of
        this network returned (a `StepState`) is not re-checked, any other state is.
        Runs without autograd (as under torch.no_grad).
        """
        # A per-sample call: the grad-mode switch and the checks are written for speed
        # (torch.no_grad() as a decorator costs ~4 us a call, the general check ~9 us).
        grad = torch.is_grad_enabled()
        torch._C._set_grad_enabled(False)
        try:
            return self._step(x_t, state)
        finally:
            torch._C._set_grad_enabled(grad)

    def _step(self, x_t: Tensor, state: list[State] | None) -> tuple[Tensor, list[State]]:
        c = self.config
        if c.bidirectional:
            raise InputError(
                "step() needs a unidirectional network: the reverse direction "
                "must see the whole sequence; call the network on it instead"
            )
        if not isinstance(x_t, Tensor) or x_t.dim() != 2:
            raise InputError(
                f"x_t must be a tensor (batch, features), got {getattr(x_t, 'shape', x_t)!r}"
            )
        layers = self.layers._modules.values()  # plain dict access, not Module.__getattr__
        dtype = next(iter(layers)).cell._parameters["weight_ih"].dtype
        fine = x_t.dtype == dtype and x_t.shape[1] == c.input_size and all_finite(x_t)
        if not fine:  # let the general check name what is wrong
            check_sequence_batch(x_t.unsqueeze(1), "x_t", c.input_size, dtype)
        key = (self, x_t.shape[0], dtype)
        if not (isinstance(state, StepState) and state.key == key):
            state = self._check_state(state, x_t)
        below, outs = None, []
        final = StepState()
        final.key = key
        for i, layer in enumerate(layers):
            r, s = layer.step(self._layer_input(i, x_t, below), state[i])
            below = self._residual(r, x_t, below)
            outs.append(below)
            final.append(s)
        out = torch.cat(outs, dim=-1) if self.config.outputs == "all" else outs[-1]
        return out, final

    def _check_state(self, state, x: Tensor) -> list[State]:
        if state is None:
            return [layer.initial_state(x.shape[0], x) for layer in self.layers]
        if not isinstance(state, (list, tuple)) or len(state) != len(self.layers):
            raise InputTypeError(
                f"state must be a list with one entry per layer ({len(self.layers)}), "
                f"got {type(state).__name__}"
            )
        for i, (layer, s) in enumerate(zip(self.layers, state)):
            expected = layer.initial_state(x.shape[0], x)
            got = s if isinstance(s, tuple) else (s,)
            want = expected if isinstance(expected, tuple) else (expected,)
            if len(got) != len(want) or any(
                not isinstance(g, Tensor) or g.shape != w.shape or g.dtype != w.dtype
                for g, w in zip(got, want)
            ):
                shapes = [tuple(w.shape) for w in want]
                seen = [(tuple(g.shape), g.dtype) if isinstance(g, Tensor) else type(g).__name__
                        for g in got]  # fmt: skip
                raise InputError(
                    f"state[{i}] must be {'(h, c)' if len(want) == 2 else 'h'} with shape(s) "
                    f"{shapes} and dtype {want[0].dtype} for layer {i} ({layer.cell.kind}), got "
                    f"{seen}"
                )
            if not all(all_finite(g) for g in got):
                raise InputError(f"state[{i}] contains NaN or inf")
        return list(state)
