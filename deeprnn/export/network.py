"""The scriptable twin of a DeepRNN / SequenceModel, built from the trained model.

It copies the model's parameter tensors and options and computes the eval-mode forward of
docs/semantics.md (dropout vanishes) with the time loops of `deeprnn.export.steps`.

    Layer      input wiring (between, skip), one or two directions, residual, masking
    Body       the stack of layers; outputs "top" or "all"
    PoolHead   pooling over valid steps, Linear, output activation
    Network    [embedding] -> [Frontend] -> Body -> [PoolHead]: `y = net(x, lengths)`
               (Frontend: the conv front end's twin, `deeprnn.export.frontend`)
    WithOptionalLengths / WithoutLengths: the entry points of the two formats
"""

from typing import Final

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deeprnn.export.frontend import Frontend
from deeprnn.export.steps import direction, frozen, reverse_padded, valid_steps
from deeprnn.frontend import ConvFrontend
from deeprnn.heads import Head
from deeprnn.layer import RecurrentLayer
from deeprnn.stack import DeepRNN


class Between(nn.Module):
    """The transform between layers: z = act(W o + b), act in {relu, tanh, sigmoid, linear}."""

    activation: Final[str]

    def __init__(self, linear: nn.Linear, activation: str):
        super().__init__()
        self.weight = frozen(linear.weight)
        self.bias = frozen(linear.bias)
        self.activation = activation

    def forward(self, o: Tensor) -> Tensor:
        z = F.linear(o, self.weight, self.bias)
        if self.activation == "relu":
            return torch.relu(z)
        if self.activation == "tanh":
            return torch.tanh(z)
        if self.activation == "sigmoid":
            return torch.sigmoid(z)
        return z


class Layer(nn.Module):
    """Layer l of the stack: u_l from x and o_(l-1), r_l from one or two directions,
    o_l = r_l [+ o_(l-1) or x] (residual), zero past each row's length."""

    first: Final[bool]
    skip: Final[bool]
    residual: Final[bool]

    def __init__(self, net: DeepRNN, index: int, fused: bool = True):
        super().__init__()
        c = net.config
        layer: RecurrentLayer = net.layers[index]
        self.first = index == 0
        self.skip = c.wiring == "skip" and index > 0
        width_in = c.input_size if index == 0 else net.layers[index - 1].output_size
        self.residual = c.residual and width_in == layer.output_size
        self.between = None
        if c.between is not None and index > 0:
            self.between = Between(net.between[index - 1], c.between)
        self.forward_direction = direction(layer.cell, fused)
        self.reverse_direction = None
        if layer.bidirectional:
            self.reverse_direction = direction(layer.cell_reverse, fused)

    def forward(self, x: Tensor, below: Tensor, mask: Tensor, lengths: Tensor) -> Tensor:
        u = x
        if not self.first:
            z = below
            if self.between is not None:
                z = self.between(z)
            u = torch.cat([x, z], dim=-1) if self.skip else z
        r = self.forward_direction(u, mask)
        if self.reverse_direction is not None:
            back = self.reverse_direction(reverse_padded(u, lengths), mask)
            r = torch.cat([r, reverse_padded(back, lengths)], dim=-1)
        if self.residual:
            r = r + (x if self.first else below)
        return r * mask.to(r.dtype)


class Body(nn.Module):
    """The DeepRNN stack: x (B, T, I), lengths (B,) -> outputs (B, T, W), zero past lengths."""

    all_outputs: Final[bool]

    def __init__(self, net: DeepRNN, fused: bool = True):
        super().__init__()
        self.layers = nn.ModuleList(Layer(net, i, fused) for i in range(len(net.layers)))
        self.all_outputs = net.config.outputs == "all"

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        mask = valid_steps(lengths, x.size(1)).unsqueeze(-1)  # (B, T, 1)
        below = x
        outs: list[Tensor] = []
        for layer in self.layers:
            below = layer(x, below, mask, lengths)
            outs.append(below)
        return torch.cat(outs, dim=-1) if self.all_outputs else below


class AttentionPool(nn.Module):
    """s = sum_t alpha_t o_t, alpha = softmax over valid steps of score(tanh(attention(o_t)))."""

    fill: Final[float]  # score of padded steps: the dtype's most negative value, as eager

    def __init__(self, head: Head):
        super().__init__()
        self.weight = frozen(head.attention.weight)
        self.bias = frozen(head.attention.bias)
        self.score = frozen(head.score.weight)
        self.fill = float(torch.finfo(head.linear.weight.dtype).min)

    def forward(self, o: Tensor, mask: Tensor) -> Tensor:
        e = F.linear(torch.tanh(F.linear(o, self.weight, self.bias)), self.score).squeeze(-1)
        e = e.masked_fill(~mask, self.fill)  # (B, T)
        alpha = torch.softmax(e, dim=1) * mask.to(o.dtype)
        return (alpha.unsqueeze(-1) * o).sum(1)


class PoolHead(nn.Module):
    """`deeprnn.Head`: pool o (B, T, F) over valid steps, Linear, output activation."""

    pooling: Final[str]
    activation: Final[str]  # "" for none

    def __init__(self, head: Head):
        super().__init__()
        self.pooling = head.pooling
        self.activation = head.activation or ""
        self.weight = frozen(head.linear.weight)
        self.bias = frozen(head.linear.bias)
        self.attention = AttentionPool(head) if head.pooling == "attention" else None

    def pool(self, o: Tensor, lengths: Tensor) -> Tensor:
        mask = valid_steps(lengths, o.size(1))  # (B, T)
        if self.attention is not None:
            return self.attention(o, mask)
        maskf = mask.to(o.dtype).unsqueeze(-1)  # (B, T, 1)
        if self.pooling == "every":
            return o * maskf
        if self.pooling == "last":
            idx = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, o.size(-1))
            return o.gather(1, idx).squeeze(1) * (lengths > 0).to(o.dtype).unsqueeze(-1)
        return (o * maskf).sum(1) / maskf.sum(1).clamp(min=1.0)  # "mean"

    def forward(self, o: Tensor, lengths: Tensor) -> Tensor:
        y = F.linear(self.pool(o, lengths), self.weight, self.bias)
        if self.activation == "softmax":
            return torch.softmax(y, dim=-1)
        if self.activation == "sigmoid":
            return torch.sigmoid(y)
        return y


class Network(nn.Module):
    """[Embedding] -> [Frontend] -> Body -> [PoolHead]: `y = net(x, lengths)`.

    x: (B, T, I) floats, or (B, T) int64 token ids with an embedding; lengths (B,) int64.
    y: the DeepRNN outputs (B, T, W) without a head, else the activated head output (B, K)
    or (B, T, K). `fused`: plain cells run on torch's fused sequence op (ONNX: LSTM / GRU /
    RNN nodes, ~2-3x faster than a loop); False: the scripted loop for every cell.
    """

    def __init__(
        self,
        body: DeepRNN,
        head: Head | None = None,
        embedding: Tensor | None = None,
        fused: bool = True,
        frontend: ConvFrontend | None = None,
    ):
        super().__init__()
        self.frontend = None if frontend is None else Frontend(frontend)
        self.embedding = None
        if embedding is not None:
            self.embedding = nn.Embedding.from_pretrained(frozen(embedding).data, freeze=True)
        self.body = Body(body, fused)
        self.head = None if head is None else PoolHead(head)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        if self.embedding is not None:
            x = self.embedding(x)
        if self.frontend is not None:
            x, lengths = self.frontend(x, lengths)
        out = self.body(x, lengths)
        if self.head is not None:
            out = self.head(out, lengths)
        return out


class Average(nn.Module):
    """`y = mean_m net_m(x, lengths)`: an ensemble's members as one graph (each a `Network`)."""

    def __init__(self, nets: list[Network]):
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        total = torch.zeros(0)
        first = True
        for net in self.nets:
            y = net(x, lengths)
            if first:
                total, first = y, False
            else:
                total = total + y
        return total / float(len(self.nets))


class WithOptionalLengths(nn.Module):
    """TorchScript entry point: `y = module(x, lengths=None)`; no lengths: every step is real."""

    def __init__(self, net: Network):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if lengths is None:
            lengths = torch.full([x.size(0)], x.size(1), dtype=torch.long, device=x.device)
        return self.net(x, lengths.to(torch.long))


class WithoutLengths(nn.Module):
    """ONNX entry point without a lengths input: `y = module(x)`, every step real."""

    def __init__(self, net: Network):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        lengths = torch.full([x.size(0)], x.size(1), dtype=torch.long, device=x.device)
        return self.net(x, lengths)
