"""Gradient norms through time and hidden-state statistics of a DeepRNN.

`gradient_flow(model, x)` runs the model once and measures, for every layer l, direction
and step t, the norm of the TOTAL derivative dL/dh_t, where h_t is the hidden state the
direction's cell emits at step t: the recurrent layer's own output r_{l,t} (its half of it
when bidirectional), before any residual addition. "Total" means every path from h_t to L
counts: into the layer's output at t (and on through the layers above and the head), and
into h_{t+1}, h_{t+2}, ... through the recurrence. For an LSTM h_t is the h of (h, c).

How: the model runs on its generic per-step loop (fused kernels switched off for the call,
dropout off), and hooks on the cells keep each step's h_t; `torch.autograd.grad(L, h_t)`
is then the total derivative, because h_t is the tensor the layer's output at t AND the
next step's state are computed from. The model's own forward does the wiring, so the
measurement cannot drift from it; the model and its settings are restored afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from deeprnn.errors import DeepRNNError, InputTypeError, check_lengths
from deeprnn.heads import last_step
from deeprnn.layer import reverse_padded
from deeprnn.model import SequenceModel
from deeprnn.stack import DeepRNN

SATURATION = 0.97  # tanh unit saturated: |v| > 0.97; sigmoid gate: v < 0.03 or v > 0.97
VANISHING = 1e-3  # verdict "vanishing" when ||dL/dh|| first / last step is below this
EXPLODING = 1e3  # ... and "exploding" above this

# Which gates of a cell are sigmoids and which are tanh units (PyTorch's gate order).
_GATES = {"lstm": (("i", "sigmoid"), ("f", "sigmoid"), ("g", "tanh"), ("o", "sigmoid")),
          "gru": (("r", "sigmoid"), ("z", "sigmoid"), ("n", "tanh"))}  # fmt: skip


@dataclass
class GradientFlow:
    """What `gradient_flow` measured. One row per (layer, direction), in `row_labels` order.

    norms: (rows, T) ||dL/dh_t|| over the whole batch (the 2-norm of the (B, H) gradient);
        zero at steps no row reaches (t >= len_b for every row).
    sample_norms: (B, rows, T) the same per row of the batch.
    row_labels: "layer 0 fwd", "layer 0 rev", ...; `layers`, `directions` the same parsed.
    stats: per row, statistics of h over the real steps (t < len_b) of every batch row:
        "mean", "std" (population), "saturated" (fraction of h in its nonlinearity's
        saturated range: |h| > s for tanh RNN / LSTM / GRU, h < 1 - s or h > s for sigmoid
        RNN, None for relu) and "gates" ({name: saturated fraction} of LSTM i, f, g, o /
        GRU r, z, n; sigmoid gates by the sigmoid rule, g and n by the tanh rule).
    loss: the value of L. lengths: the lengths used (None: all T). threshold: s.
    outputs: the model's output in this run (DeepRNN outputs or SequenceModel logits).
    """

    norms: np.ndarray
    sample_norms: np.ndarray
    row_labels: list[str]
    layers: list[int]
    directions: list[str]
    stats: list[dict]
    loss: float
    lengths: np.ndarray | None
    threshold: float
    outputs: Tensor = field(repr=False)

    def span(self) -> tuple[int, int]:
        """(first, last) time index any row reaches: (0, max(lengths) - 1)."""
        time = self.norms.shape[1]
        last = time - 1 if self.lengths is None else int(self.lengths.max(initial=0)) - 1
        return 0, last

    def ratios(self) -> np.ndarray:
        """Per row: ||dL/dh_t|| at t = 0 / at t = T - 1 (T - 1: the last step any row reaches).

        Time order for every row, reverse rows included: the ratio says how much of the
        gradient at the end reaches the start through that row (with the default loss: how
        far back the last step's loss reaches). The top layer's reverse half under the
        default loss gets 0: its h_{T-1} has seen x_{T-1} only, no earlier step reaches L
        through it. NaN where t = T - 1 gets no gradient.
        """
        first, last = self.span()
        out = np.full(len(self.row_labels), np.nan)
        if last >= 0:
            end = self.norms[:, last]
            np.divide(self.norms[:, first], end, out=out, where=end > 0)
        return out

    def verdict(
        self, vanishing: float = VANISHING, exploding: float = EXPLODING
    ) -> dict[str, tuple[str, float]]:
        """{row label: (verdict, ratio)} with `ratios()`: "vanishing" (ratio < `vanishing`),
        "exploding" (ratio > `exploding`), "healthy", or "no gradient" (ratio NaN)."""
        out = {}
        for label, r in zip(self.row_labels, self.ratios()):
            word = "no gradient" if np.isnan(r) else "healthy"
            word = "vanishing" if r < vanishing else "exploding" if r > exploding else word
            out[label] = (word, float(r))
        return out

    def summary(self) -> dict:
        """A plain dict (JSON-friendly): loss, span, and per row verdict, ratio, norms, stats."""
        first, last = self.span()
        verdicts = self.verdict()
        rows = []
        for k, label in enumerate(self.row_labels):
            word, ratio = verdicts[label]
            rows.append({
                "row": label, "verdict": word, "ratio": ratio,
                "norm_first": float(self.norms[k, first]), "norm_last": float(self.norms[k, last]),
                **self.stats[k],
            })  # fmt: skip
        return {"loss": self.loss, "steps": last + 1, "threshold": self.threshold, "rows": rows}

    def __str__(self) -> str:
        lines = [f"gradient flow over {self.span()[1] + 1} steps, L = {self.loss:.6g}",
                 f"{'row':<14}{'verdict':<13}{'ratio':>10}{'saturated':>11}{'mean':>9}{'std':>8}"
                 "  gates"]  # fmt: skip
        for row in self.summary()["rows"]:
            sat = "-" if row["saturated"] is None else f"{row['saturated']:.3f}"
            gates = " ".join(f"{k}={v:.2f}" for k, v in row["gates"].items())
            lines.append(
                f"{row['row']:<14}{row['verdict']:<13}{row['ratio']:>10.3g}{sat:>11}"
                f"{row['mean']:>9.3f}{row['std']:>8.3f}  {gates}"
            )
        return "\n".join(lines)


def gradient_flow(
    model: nn.Module,
    x: Tensor,
    loss: Callable[[Tensor], Tensor] | None = None,
    lengths: Tensor | None = None,
    threshold: float = SATURATION,
) -> GradientFlow:
    """Measure ||dL/dh_t|| for every layer, direction and step, and hidden-state statistics.

    Args:
        model: a `DeepRNN`, or a `SequenceModel` whose body is a DeepRNN.
        x: the model's input, (B, T, I) floats (or (B, T) token ids for an embedding).
        loss: `loss(outputs) -> scalar tensor`, outputs the model's output (DeepRNN outputs
            (B, T, W), or SequenceModel logits). None: L = sum over the batch and features of
            the top layer's output o_{L-1} at each row's last real step (after residual), so
            the norms show how far back in time the gradient from the end reaches.
        lengths: (B,) true lengths of right-padded rows, or None.
        threshold: s of the saturation statistics (see `GradientFlow`).
    Returns a `GradientFlow`. Dropout is off (eval mode) during the measurement; the
    model's training flags and fused-kernel switches are restored afterwards.
    """
    net = model.body if isinstance(model, SequenceModel) else model
    if not isinstance(net, DeepRNN):
        raise InputTypeError(
            "gradient_flow needs a DeepRNN or a SequenceModel whose body is a DeepRNN, got "
            f"{type(net).__name__}"
        )
    if loss is not None and not callable(loss):
        raise InputTypeError(f"loss must be a callable loss(outputs) -> scalar, got {loss!r}")
    if isinstance(x, Tensor) and x.is_floating_point():
        x = x.detach().requires_grad_(True)  # a graph to differentiate even with frozen weights
    time = x.shape[1] if isinstance(x, Tensor) and x.dim() >= 2 else 0
    lengths = check_lengths(lengths, x.shape[0], time) if isinstance(x, Tensor) else lengths
    body_lengths = lengths  # the body runs on the front end's steps, if there is one
    frontend = getattr(model, "frontend", None)
    if frontend is not None and time:
        time = frontend.output_length(time)
        body_lengths = None if lengths is None else frontend.output_length(lengths)
    rows = [  # (layer index, direction, cell)
        (i, d, c) for i, layer in enumerate(net.layers) for d, c in zip(("fwd", "rev"), layer.cells)
    ]
    taken = {id(c): ([], []) for _, _, c in rows}  # cell -> (inputs per step, h per step)
    body_out = []

    def before(cell, args):
        taken[id(cell)][0].append(args)

    def after(cell, args, out):
        taken[id(cell)][1].append(out[0])

    hooks = [net.register_forward_hook(lambda m, a, out: body_out.append(out[0]))]
    for _, _, c in rows:
        hooks += [c.register_forward_pre_hook(before), c.register_forward_hook(after)]
    training = {m: m.training for m in model.modules()}
    native = [layer.native for layer in net.layers]
    try:
        model.eval()
        net.use_native(False)
        with torch.enable_grad():
            outputs, _ = model(x, lengths=lengths)
            top = body_out[-1][..., -net.layers[-1].output_size :]
            value = last_step(top, body_lengths).sum() if loss is None else loss(outputs)
            value = _check_scalar(value)
            hs = [h for _, _, c in rows for h in taken[id(c)][1]]
            if len(hs) != len(rows) * time:
                seen = [len(taken[id(c)][1]) for *_, c in rows]
                raise DeepRNNError(f"expected {time} steps per cell, saw {seen}")
            if not value.requires_grad:
                raise DeepRNNError("L does not depend on the hidden states: nothing to measure")
            grads = torch.autograd.grad(value, hs, allow_unused=True)
    finally:
        for h in hooks:
            h.remove()
        for m, flag in training.items():
            m.train(flag)
        for layer, flag in zip(net.layers, native):
            layer.native = flag
    return _collect(rows, taken, grads, hs, body_lengths, time, value, outputs, threshold)


def _check_scalar(value) -> Tensor:
    if not isinstance(value, Tensor) or value.numel() != 1:
        raise InputTypeError(
            f"loss(outputs) must return a scalar tensor, got {getattr(value, 'shape', value)!r}"
        )
    return value.reshape(())


def _collect(rows, taken, grads, hs, lengths, time, value, outputs, threshold) -> GradientFlow:
    """Arrange the per-step gradients on the time axis and compute the statistics."""
    batch = hs[0].shape[0]
    n = torch.full((batch,), time, dtype=torch.long) if lengths is None else lengths
    valid = (torch.arange(time).unsqueeze(0) < n.unsqueeze(1)).to(hs[0].device)  # (B, T)
    sample_norms, stats = [], []
    for k, (_, direction, cell) in enumerate(rows):
        part = slice(k * time, (k + 1) * time)
        g = [torch.zeros_like(h) if d is None else d for h, d in zip(hs[part], grads[part])]
        g = torch.stack(g, dim=1).detach()  # (B, T, H) in the order the cell ran
        if direction == "rev":
            g = reverse_padded(g, n)  # the reverse cell's step t' is time len_b - 1 - t'
        sample_norms.append(g.norm(dim=-1))
        stats.append(_stats(cell, taken[id(cell)], valid, threshold))
    sample = torch.stack(sample_norms, dim=1).double().cpu().numpy()  # (B, rows, T)
    return GradientFlow(
        norms=np.sqrt((sample**2).sum(axis=0)),
        sample_norms=sample,
        row_labels=[f"layer {i} {d}" for i, d, _ in rows],
        layers=[i for i, _, _ in rows],
        directions=[d for _, d, _ in rows],
        stats=stats,
        loss=float(value.detach()),
        lengths=None if lengths is None else lengths.numpy().copy(),
        threshold=threshold,
        outputs=outputs.detach(),
    )


def _saturated(v: Tensor, kind: str, s: float) -> float:
    hit = (v.abs() > s) if kind == "tanh" else (v < 1 - s) | (v > s)
    return float(hit.double().mean()) if v.numel() else float("nan")


@torch.no_grad()
def _stats(cell: nn.Module, steps: tuple[list, list], valid: Tensor, s: float) -> dict:
    """Mean, std and saturation of h, and saturation of the gates, over real steps."""
    inputs, hs = steps
    h = torch.stack(hs, dim=1)[valid].double()  # (N, H), N real (row, step) pairs
    kind = cell.nonlinearity if cell.kind == "rnn" else "tanh"
    gates = {}
    if cell.kind in _GATES:
        u = torch.stack([a[0] for a in inputs], dim=1)  # (B, T, in)
        prev = torch.stack([a[1][0] if isinstance(a[1], tuple) else a[1] for a in inputs], 1)
        a_x, a_h = cell.project(u, prev)  # (B, T, G*H), the cell's own projections
        parts = list(zip(a_x.chunk(cell.gates, dim=-1), a_h.chunk(cell.gates, dim=-1)))
        for k, (name, act) in enumerate(_GATES[cell.kind]):
            ax, ah = parts[k]
            if name == "n":  # GRU: n = tanh(a_x[n] + r * a_h[n])
                pre = ax + torch.sigmoid(parts[0][0] + parts[0][1]) * ah
            else:
                pre = ax + ah
            v = torch.tanh(pre) if act == "tanh" else torch.sigmoid(pre)
            gates[name] = _saturated(v[valid], act, s)
    return {
        "mean": float(h.mean()) if h.numel() else float("nan"),
        "std": float(h.std(unbiased=False)) if h.numel() else float("nan"),
        "saturated": None if kind == "relu" else _saturated(h, kind, s),
        "gates": gates,
    }


class GradientFlowRecorder:
    """A `fit` callback: every `every` epochs, the gradient flow on that epoch's last
    training batch, drawn to `out_dir/gradient_flow_epochNNN.png`; `records` keeps
    (epoch, verdict, path). Models that are not a DeepRNN / SequenceModel are passed over."""

    def __init__(self, every: int, out_dir) -> None:
        from pathlib import Path

        if not isinstance(every, int) or every < 1:
            raise InputTypeError(f"every must be a positive int, got {every!r}")
        self.every, self.out_dir = every, Path(out_dir)
        self.records: list[tuple[int, dict, object]] = []
        self._batch = None

    def __call__(self, event: str, state: dict) -> None:
        from deeprnn import distributed, plots

        if event == "batch_end":
            self._batch = (state["x"].detach(), state["lengths"])
        if event != "epoch_end" or state["epoch"] % self.every or self._batch is None:
            return
        model = getattr(state["model"], "module", state["model"])  # unwrap DDP
        body = model.body if isinstance(model, SequenceModel) else model
        if not isinstance(body, DeepRNN) or not distributed.is_main():
            return
        x, lengths = self._batch
        flow = gradient_flow(model, x, lengths=lengths)
        epoch = state["epoch"]
        path = plots.gradient_flow(flow, self.out_dir / f"gradient_flow_epoch{epoch:03d}.png",
                                   title=f"Gradient flow after epoch {epoch}")  # fmt: skip
        self.records.append((epoch, flow.verdict(), path))
