"""The scriptable twin of a ConvFrontend (eval mode): conv blocks with lengths carried.

Batch norm is its eval-mode affine map with the running statistics folded in,
a * gamma / sqrt(running_var + eps) + (beta - running_mean * gamma / sqrt(running_var + eps));
dropout vanishes. The length arithmetic is that of `deeprnn.frontend` (docs/semantics.md),
on int64 tensors so that ONNX keeps it dynamic.
"""

from typing import Final

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deeprnn.export.steps import frozen, valid_steps
from deeprnn.frontend import ConvBlock, ConvFrontend, MaskedBatchNorm


class Block(nn.Module):
    """One block: mask, pad, conv1d, [norm], activation, [max pool], mask; new lengths."""

    stride: Final[int]
    dilation: Final[int]
    pool: Final[int]
    left: Final[int]
    right: Final[int]
    span: Final[int]
    same: Final[bool]
    norm: Final[str]  # "batch" | "layer" | ""
    activation: Final[str]
    eps: Final[float]
    channels: Final[int]

    def __init__(self, block: ConvBlock):
        super().__init__()
        conv = block.conv
        self.stride, self.dilation, self.pool = block.stride, block.dilation, block.pool
        self.span = block.dilation * (block.kernel_size - 1)
        self.same = block.padding == "same"
        self.left = self.span // 2 if self.same else 0
        self.right = self.span - self.span // 2 if self.same else 0
        self.activation = block.activation
        self.channels = conv.out_channels
        self.weight = frozen(conv.weight)
        bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
        self.bias = frozen(bias.to(conv.weight.dtype))
        self.norm, self.eps = block.norm_kind or "", 1e-5
        ones = torch.ones(conv.out_channels, dtype=conv.weight.dtype)
        scale, shift = ones, torch.zeros_like(ones)
        norm = block.norm
        if isinstance(norm, MaskedBatchNorm):
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            shift = norm.bias - norm.running_mean * scale
        elif norm is not None:
            scale, shift, self.eps = norm.weight, norm.bias, float(norm.eps)
        self.scale, self.shift = frozen(scale), frozen(shift)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x = x * valid_steps(lengths, x.size(1)).unsqueeze(-1).to(x.dtype)
        if self.same and self.span > 0:
            x = F.pad(x, [0, 0, self.left, self.right])
        a = F.conv1d(x.transpose(1, 2), self.weight, self.bias, self.stride, 0, self.dilation)
        a = a.transpose(1, 2)  # (B, T_conv, C)
        if self.norm == "batch":
            a = a * self.scale + self.shift
        elif self.norm == "layer":
            a = F.layer_norm(a, [self.channels], self.scale, self.shift, self.eps)
        if self.activation == "relu":
            a = torch.relu(a)
        elif self.activation == "tanh":
            a = torch.tanh(a)
        elif self.activation == "gelu":
            a = F.gelu(a)
        if self.pool > 1:
            a = torch.max_pool1d(a.transpose(1, 2), [self.pool], [self.pool]).transpose(1, 2)
        if self.same:
            n = torch.div(lengths + (self.stride - 1), self.stride, rounding_mode="floor")
        else:
            n = (lengths - self.span - 1 + self.stride).clamp(min=0)
            n = torch.div(n, self.stride, rounding_mode="floor")
        n = torch.div(n, self.pool, rounding_mode="floor")
        return a * valid_steps(n, a.size(1)).unsqueeze(-1).to(a.dtype), n


class Frontend(nn.Module):
    """`y, lengths' = frontend(x (B, T, F), lengths (B,))`, zero past the new lengths."""

    def __init__(self, frontend: ConvFrontend):
        super().__init__()
        self.blocks = nn.ModuleList(Block(b) for b in frontend.blocks)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        for block in self.blocks:
            x, lengths = block(x, lengths)
        return x, lengths
