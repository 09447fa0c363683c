"""ConvFrontend: 1-D convolution blocks before the recurrent stack (a C-RNN), lengths carried.

Block i maps x (B, T, C_in) with per-row lengths n to (B, T', C_out) with lengths n':

    u = mask_n(x)                                      padded steps are zero
    a = conv1d(pad(u), W, b, stride s, dilation d)     zero padding, see below
    v = act(norm(a))                                   norm: batch (over valid steps) | layer
    y = mask_n'(maxpool(v, p))                         window p, stride p

Padding ("same" | "valid"), with span = d * (k - 1):
    "same":  span // 2 zeros on the left, the rest on the right;  conv length = ceil(n / s)
    "valid": no padding;  conv length = floor((n - span - 1) / s) + 1 (0 when n <= span)
    then n' = floor(conv length / p).
Every output step at t < n' reads only steps < n of its row (or zeros), so a row's result
does not depend on how much padding follows it. A row of length n >= 1 that would come out
with 0 steps is an InputError naming n and the shortest length that works; rows of length 0
stay 0. docs/semantics.md ("Convolutional front end") is the contract, shared with the NumPy
reference (`deeprnn.reference.frontend`).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deeprnn.config_io import ConfigError
from deeprnn.errors import InputError, check_choice, check_lengths, check_sequence_batch

NORMS = ("batch", "layer", None)
ACTIVATIONS = ("relu", "tanh", "gelu", "linear")
PADDINGS = ("same", "valid")
EPS = 1e-5  # of both norms, as torch's defaults
MOMENTUM = 0.1  # of batch norm's running statistics, as torch's default


def _clamp0(v):
    return v.clamp(min=0) if isinstance(v, Tensor) else max(v, 0)


def conv_length(n, kernel_size: int, stride: int, dilation: int, padding: str):
    """Steps out of one convolution for n steps in (an int or an int tensor of lengths)."""
    if padding == "same":
        return (n + stride - 1) // stride
    span = dilation * (kernel_size - 1)
    return _clamp0(n - span - 1 + stride) // stride


def valid_mask(lengths: Tensor, time: int, like: Tensor) -> Tensor:
    """(B, time, 1) in `like`'s dtype and device: 1 at each row's real steps, 0 after."""
    steps = torch.arange(time, device=like.device)
    return (steps < lengths.to(like.device)[:, None]).unsqueeze(-1).to(like.dtype)


class MaskedBatchNorm(nn.BatchNorm1d):
    """Batch norm over the channel axis of (B, T, C) whose statistics skip padded steps.

    Training: mean and (biased) variance over the valid (b, t) only; the running variance
    gets the unbiased estimate, momentum 0.1, as `nn.BatchNorm1d`. Eval: running statistics.
    """

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """x (B, T, C); mask (B, T, 1) of 0 / 1, or None: every step is real."""
        if self.training:
            if mask is None:
                mask = x.new_ones(x.shape[0], x.shape[1], 1)
            n = mask.sum()
            count = n.clamp(min=1)
            mean = (x * mask).sum((0, 1)) / count  # (C,)
            var = (((x - mean) * mask) ** 2).sum((0, 1)) / count
            if n > 1:
                with torch.no_grad():
                    self.running_mean.lerp_(mean, MOMENTUM)
                    self.running_var.lerp_(var * n / (n - 1), MOMENTUM)
                    self.num_batches_tracked += 1
            return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias
        # eval: torch's fused op on the running statistics (one op, not five: predict latency)
        out = F.batch_norm(x.transpose(1, 2), self.running_mean, self.running_var, self.weight,
                           self.bias, False, 0.0, self.eps)  # fmt: skip
        return out.transpose(1, 2)


class ConvBlock(nn.Module):
    """One block: conv1d -> [norm] -> activation -> [max pool] -> mask (-> dropout)."""

    def __init__(self, c_in, c_out, kernel_size, stride, pool, dilation, norm, activation,
                 dropout, padding):  # fmt: skip
        super().__init__()
        self.kernel_size, self.stride, self.pool = kernel_size, stride, pool
        self.dilation, self.activation, self.padding = dilation, activation, padding
        self.norm_kind = norm
        # A bias before batch norm is cancelled by its mean: leave it out.
        self.conv = nn.Conv1d(c_in, c_out, kernel_size, stride, dilation=dilation,
                              bias=norm != "batch")  # fmt: skip
        self.norm = None
        if norm == "batch":
            self.norm = MaskedBatchNorm(c_out, eps=EPS, momentum=MOMENTUM)
        elif norm == "layer":
            self.norm = nn.LayerNorm(c_out, eps=EPS)
        self.drop = nn.Dropout(dropout)

    def output_length(self, n):
        """Steps out for n steps in (int or int tensor)."""
        k, s, d = self.kernel_size, self.stride, self.dilation
        return conv_length(n, k, s, d, self.padding) // self.pool

    def forward(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """lengths None: every row is full length, and so stays (the output's own length
        is then the rule's for the input's), so no step needs masking."""
        if lengths is not None:
            x = x * valid_mask(lengths, x.shape[1], x)
        if self.padding == "same":
            span = self.dilation * (self.kernel_size - 1)
            x = F.pad(x, (0, 0, span // 2, span - span // 2))
        a = self.conv(x.transpose(1, 2)).transpose(1, 2)  # (B, T_conv, C_out)
        conv_lengths = None
        if lengths is not None:
            conv_lengths = conv_length(lengths, self.kernel_size, self.stride, self.dilation,
                                       self.padding)  # fmt: skip
        if isinstance(self.norm, MaskedBatchNorm):
            a = self.norm(a, None if lengths is None else valid_mask(conv_lengths, a.shape[1], a))
        elif self.norm is not None:
            a = self.norm(a)
        v = _activate(a, self.activation)
        if self.pool > 1:
            v = F.max_pool1d(v.transpose(1, 2), self.pool).transpose(1, 2)
        if lengths is None:
            return self.drop(v), None
        out_lengths = conv_lengths // self.pool
        return self.drop(v * valid_mask(out_lengths, v.shape[1], v)), out_lengths


def _length_rule(blocks) -> str:
    rule, atomic = "T", True  # atomic: needs no parentheses as a dividend
    for b in blocks:
        quotient = rule if atomic else f"({rule})"
        span = b.dilation * (b.kernel_size - 1)
        if b.padding == "same" and b.stride > 1:
            rule, atomic = f"ceil({quotient} / {b.stride})", True
        elif b.padding == "valid" and b.stride > 1:
            rule, atomic = f"floor(({rule} - {span + 1}) / {b.stride}) + 1", False
        elif b.padding == "valid" and span > 0:
            rule, atomic = f"{rule} - {span}", False
        if b.pool > 1:
            quotient = rule if atomic else f"({rule})"
            rule, atomic = f"floor({quotient} / {b.pool})", True
    return rule


def _activate(a: Tensor, kind: str) -> Tensor:
    if kind == "relu":
        return torch.relu(a)
    if kind == "tanh":
        return torch.tanh(a)
    if kind == "gelu":
        return F.gelu(a)  # the exact, erf-based GELU
    return a


def _per_block(name: str, value, n: int, minimum: int = 1) -> list[int]:
    """One int for every block, or a list with one per block; each an int >= minimum."""
    values = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(values) != n:
        raise InputError(
            f"{name} has {len(values)} entries but there are {n} blocks (one per entry of "
            "channels); give one int, or one per block"
        )
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
            raise InputError(f"{name} must hold ints >= {minimum}, got {v!r}")
    return values


class ConvFrontend(nn.Module):
    """A stack of 1-D conv blocks, one per entry of `channels`: `y, n' = fe(x, lengths)`.

    Args:
        in_features: features F of x (B, T, F).
        channels: output channels of each block, e.g. (32, 32).
        kernel_size, stride, pool, dilation: an int for every block or a list, one per block.
            `pool` is a max pool with window = stride = pool (1: none).
        norm: "batch" (statistics over valid steps only) | "layer" (per step) | None.
        activation: "relu" | "tanh" | "gelu" (exact) | "linear".
        dropout: after each block, training only.
        padding: "same" (the conv keeps ceil(T / stride) steps) | "valid" (no padding).
    Call: x (B, T, F) floats, lengths (B,) or None -> y (B, T', channels[-1]), zero past the
    new lengths, and the new lengths (None when lengths is None: every step is real).
    `output_length(n)` gives n' for an int or a tensor, `min_length` the shortest input that
    keeps a step, `length_rule()` the formula, `explain()` one row per block.
    """

    def __init__(
        self,
        in_features: int,
        channels: int | Sequence[int] = (32,),
        kernel_size: int | Sequence[int] = 5,
        stride: int | Sequence[int] = 1,
        pool: int | Sequence[int] = 1,
        dilation: int | Sequence[int] = 1,
        norm: str | None = "batch",
        activation: str = "relu",
        dropout: float = 0.0,
        padding: str = "same",
    ):
        super().__init__()
        if not isinstance(in_features, int) or isinstance(in_features, bool) or in_features < 1:
            raise InputError(f"in_features must be a positive int, got {in_features!r}")
        channels = list(channels) if isinstance(channels, (list, tuple)) else [channels]
        if not channels:
            raise InputError("channels must hold at least one int (one block per entry)")
        channels = _per_block("channels", channels, len(channels))
        n = len(channels)
        kernels = _per_block("kernel_size", kernel_size, n)
        strides = _per_block("stride", stride, n)
        pools = _per_block("pool", pool, n)
        dilations = _per_block("dilation", dilation, n)
        check_choice("norm", norm, NORMS)
        check_choice("activation", activation, ACTIVATIONS)
        check_choice("padding", padding, PADDINGS)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
            raise InputError(f"dropout must be a float in [0, 1), got {dropout!r}")
        if not 0.0 <= dropout < 1.0:
            raise InputError(f"dropout must be a float in [0, 1), got {dropout!r}")
        self.in_features = in_features
        self.out_features = channels[-1]
        widths = [in_features, *channels]
        self.blocks = nn.ModuleList(
            ConvBlock(widths[i], widths[i + 1], kernels[i], strides[i], pools[i], dilations[i],
                      norm, activation, float(dropout), padding)
            for i in range(n)
        )  # fmt: skip

    def output_length(self, n):
        """Steps out for n steps in: an int, or an int tensor of lengths."""
        for block in self.blocks:
            n = block.output_length(n)
        return n

    @property
    def min_length(self) -> int:
        """The shortest input that leaves at least one step."""
        n = 1  # steps wanted out of the block below; the rule inverted block by block:
        for b in reversed(self.blocks):  # conv length >= n p  <=>  n_in >= (n p - 1) s + 1 [+ span]
            span = b.dilation * (b.kernel_size - 1) if b.padding == "valid" else 0
            n = (n * b.pool - 1) * b.stride + 1 + span
        return n

    @property
    def keeps_length(self) -> bool:
        """Whether every length comes out unchanged (stride 1, pool 1, "same" padding)."""
        return all(b.stride == 1 and b.pool == 1 and b.padding == "same" for b in self.blocks)

    def length_rule(self) -> str:
        """The output length rule as a formula in T, e.g. "floor(ceil(T / 2) / 2)"."""
        return _length_rule(self.blocks)

    def explain(self) -> list[dict]:
        """For each block: its convolution, norm, activation, pool and output length rule."""
        rows = []
        for i, b in enumerate(self.blocks):
            conv = b.conv
            rows.append({
                "block": i,
                "conv": f"{conv.in_channels}->{conv.out_channels}, kernel {b.kernel_size}, "
                        f"stride {b.stride}, dilation {b.dilation}, padding {b.padding}",
                "norm": b.norm_kind, "activation": b.activation, "pool": b.pool,
                "length": _length_rule([b]),
            })  # fmt: skip
        return rows

    def check_long_enough(self, time: int, lengths: Tensor | None) -> None:
        """InputError when a sequence of >= 1 steps would come out with 0 steps."""
        positive = None if lengths is None else lengths[lengths > 0]
        # The output length grows with the input's, so the shortest real row decides.
        n = time if positive is None or not len(positive) else int(positive.min())
        if self.output_length(n) < 1:
            raise InputError(
                f"the convolutional front end shortens a sequence of {n} steps to 0 steps; it "
                f"needs sequences of at least {self.min_length} steps (output length "
                f"{self.length_rule()} >= 1); pad the sequences, or use a smaller stride / pool "
                "/ kernel_size / dilation, or padding='same'"
            )

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        x = check_sequence_batch(x, "x", self.in_features, self.blocks[0].conv.weight.dtype)
        given = check_lengths(lengths, x.shape[0], x.shape[1])
        self.check_long_enough(x.shape[1], given)
        if given is not None and bool((given == x.shape[1]).all()):
            given = None  # all rows full: the same outputs without masks (~0.1 ms a call)
        n = given
        for block in self.blocks:
            x, n = block(x, n)
        return x, n


def frontend_kwargs(spec: dict | None, where: str = "frontend") -> dict | None:
    """Check a dict of ConvFrontend arguments (without in_features): unknown keys and bad
    values raise ConfigError naming `where.key`. Returns a plain copy (lists for tuples)."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping of ConvFrontend arguments or None, got "
                          f"{type(spec).__name__} {spec!r}")  # fmt: skip
    allowed = [p for p in inspect.signature(ConvFrontend).parameters if p != "in_features"]
    for key in spec:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}.{key}: unknown key; expected one of {allowed}{hint}")
    out = {k: list(v) if isinstance(v, tuple) else v for k, v in spec.items()}
    try:
        ConvFrontend(1, **out)
    except (InputError, TypeError) as err:
        key = next((k for k in out if str(err).startswith(k)), None)
        raise ConfigError(f"{where}.{key}: {err}" if key else f"{where}: {err}") from err
    return out
