"""Export a trained Seq2Seq as two graphs, ONNX or TorchScript: the encoder and ONE decoder
step, so any runtime can run greedy or beam search with a loop of its own.

    encoder:       (x (B, S) int64 source ids, lengths (B,) int64)
                   -> keys (B, S, K), projected (B, S, P), state (B, D)
    decoder_step:  (tokens (B,) int64, state (B, D), feed (B, W), keys, projected, lengths)
                   -> logits (B, V), state (B, D), feed (B, W), weights (B, S)
state packs every decoder layer's h (and c, for LSTM layers) side by side, as the bridge
makes it; feed is the last attentional vector (zeros at the start; an ONNX graph of a model
without input feeding has no feed input). Start with tokens =
<s> (2); stop at </s> (3). Both graphs are checked against the eager model on an example
before they are written; batch and source length stay dynamic.
"""

# No `from __future__ import annotations`: TorchScript reads the class annotations.
import json
import warnings
from pathlib import Path
from typing import Final

import torch
from torch import Tensor, nn

from deeprnn.errors import DeepRNNError, InputError, check_choice
from deeprnn.export import FORMATS, METADATA, OPSET, TOLERANCE
from deeprnn.export.network import Network
from deeprnn.export.steps import STEPS, frozen
from deeprnn.seq2seq.model import BOS_ID, EOS_ID, Seq2Seq


def _linear(layer: nn.Linear | None) -> nn.Linear | None:
    """A frozen CPU copy of a Linear layer (None stays None)."""
    if layer is None:
        return None
    out = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    out.weight = frozen(layer.weight)
    if layer.bias is not None:
        out.bias = frozen(layer.bias)
    return out.to(layer.weight.dtype)


class EncoderGraph(nn.Module):
    """The source side: embeddings -> encoder twin -> attention keys and the decoder's start."""

    bidirectional: Final[bool]
    top: Final[int]  # units of the encoder's top layer (per direction)
    state_width: Final[int]
    project: Final[bool]
    bridged: Final[bool]

    def __init__(self, model: Seq2Seq):
        super().__init__()
        enc = model.encoder
        if enc.config.residual or enc.config.outputs != "top":
            raise InputError("the exported encoder reads the final state from its outputs: "
                             "residual encoders and outputs='all' cannot be exported")  # fmt: skip
        self.net = Network(enc, None, model.source_embedding.weight, fused=True)
        self.bidirectional = enc.config.bidirectional
        self.top = enc.layers[-1].hidden_size
        self.state_width = sum(p * h for p, h in zip(model._parts, model._sizes))
        self.project = model.attention.kind != "dot"
        self.key = _linear(model.attention.key) if self.project else nn.Identity()
        self.bridged = model.bridge is not None
        self.bridge = _linear(model.bridge) if self.bridged else nn.Identity()

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        keys = self.net(x, lengths)  # (B, S, K)
        projected = self.key(keys) if self.project else keys
        if not self.bridged:
            return keys, projected, keys.new_zeros([keys.size(0), self.state_width])
        rows = torch.arange(keys.size(0), device=keys.device)
        final = keys[rows, lengths - 1, : self.top]  # the forward direction ends at len - 1
        if self.bidirectional:  # ... the backward one at step 0
            final = torch.cat([final, keys[:, 0, self.top : 2 * self.top]], dim=-1)
        return keys, projected, torch.tanh(self.bridge(final))


class DecoderStepGraph(nn.Module):
    """One decoding step of `Seq2Seq.step` in eval mode, the state packed into one tensor."""

    feeding: Final[bool]
    additive: Final[bool]
    residual: Final[bool]
    lstm: list[bool]
    sizes: list[int]

    def __init__(self, model: Seq2Seq):
        super().__init__()
        dec = model.decoder
        if dec.config.wiring != "stack" or dec.config.between is not None:
            raise InputError("the exported decoder step runs stacked layers: wiring='skip' and "
                             "between= cannot be exported")  # fmt: skip
        self.embedding = nn.Embedding.from_pretrained(frozen(model.target_embedding.weight).data)
        self.steps = nn.ModuleList([STEPS[type(layer.cell)](layer.cell) for layer in dec.layers])
        self.lstm = [p == 2 for p in model._parts]
        self.sizes = list(model._sizes)
        self.residual = dec.config.residual
        self.feeding = model.input_feeding
        self.additive = model.attention.kind == "additive"
        att = model.attention
        self.query = _linear(att.query) if self.additive else nn.Identity()
        self.score = _linear(att.score) if self.additive else nn.Identity()
        self.combine, self.output = _linear(model.combine), _linear(model.output)

    def forward(self, tokens: Tensor, state: Tensor, feed: Tensor, keys: Tensor,
                projected: Tensor, lengths: Tensor
                ) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
        x = self.embedding(tokens)
        if self.feeding:
            x = torch.cat([x, feed], dim=-1)
        parts: list[Tensor] = []
        at = 0
        i = 0
        for step in self.steps:
            size = self.sizes[i]
            h = state[:, at : at + size]
            c = state[:, at + size : at + 2 * size] if self.lstm[i] else h
            h_new, c_new = step(step.project_input(x), h, c)
            parts.append(h_new)
            if self.lstm[i]:
                parts.append(c_new)
            at += 2 * size if self.lstm[i] else size
            x = h_new + x if self.residual and x.size(-1) == size else h_new
            i += 1
        mask = torch.arange(keys.size(1), device=keys.device)[None] < lengths[:, None]
        if self.additive:
            hidden = torch.tanh(self.query(x).unsqueeze(1) + projected)  # (B, S, A)
            scores = self.score(hidden).squeeze(-1)
        else:
            scores = torch.bmm(projected, x.unsqueeze(-1)).squeeze(-1)  # (B, S)
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        context = torch.bmm(weights.unsqueeze(1), keys).squeeze(1)
        a = torch.tanh(self.combine(torch.cat([context, x], dim=-1)))
        return self.output(a), torch.cat(parts, dim=-1), a, weights


def pack(state: list) -> Tensor:
    """A Seq2Seq decoder state (one h or (h, c) per layer) as the graphs' (B, D) tensor."""
    flat = [t for s in state for t in (s if isinstance(s, tuple) else (s,))]
    return torch.cat(flat, dim=-1)


@torch.no_grad()
def check(model: Seq2Seq, encoder: nn.Module, step: nn.Module, x: Tensor, lengths: Tensor,
          steps: int = 3) -> None:  # fmt: skip
    """Raise unless the graphs reproduce the eager model's encoding and first decoding steps."""
    was = model.training
    model.eval()
    try:
        ds = model.encode(x, lengths)
        keys, projected, state = encoder(x, lengths)
        errs = [(keys - ds.memory.keys).abs().max(), (state - pack(ds.state)).abs().max()]
        tokens = torch.full((x.shape[0],), BOS_ID, dtype=torch.int64)
        feed = torch.zeros_like(ds.feed)
        for _ in range(steps):
            logits, ds, w = model.step(tokens, ds)
            got, state, feed, weights = step(tokens, state, feed, keys, projected, lengths)
            errs += [(got - logits).abs().max(), (weights - w).abs().max()]
            tokens = logits.argmax(-1)
    finally:
        model.train(was)
    err = float(max(errs))
    if not err <= TOLERANCE * 10:
        raise DeepRNNError(f"the exported seq2seq graphs differ from the model (max error "
                           f"{err:.3g}); please report this with the model's config")  # fmt: skip


def export_seq2seq(model: Seq2Seq, folder: str | Path, format: str = "onnx",
                   meta: dict | None = None) -> Path:  # fmt: skip
    """Write `folder`/encoder.{onnx,pt} and decoder_step.{onnx,pt} (see the module
    docstring), checked against `model` first; `meta` (e.g. vocabularies) is stored in both
    files' metadata and in `folder`/seq2seq.json. Returns the folder."""
    check_choice("format", format, FORMATS)
    model = model.cpu()
    encoder, step = EncoderGraph(model).eval(), DecoderStepGraph(model).eval()
    vocab = model.source_embedding.num_embeddings
    x = torch.randint(4 if vocab > 4 else 1, vocab, (2, 5))
    lengths = torch.tensor([5, 3])
    check(model, encoder, step, x, lengths)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    info = {"format": "deeprnn-seq2seq", "bos_id": BOS_ID, "eos_id": EOS_ID, **(meta or {})}
    (folder / "seq2seq.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    keys, projected, state = encoder(x, lengths)
    tokens = torch.full((2,), BOS_ID, dtype=torch.int64)
    feed = torch.zeros(2, model.decoder.output_size, dtype=keys.dtype)
    graphs = {
        "encoder": (encoder, (x, lengths), ["x", "lengths"], ["keys", "projected", "state"]),
        "decoder_step": (step, (tokens, state, feed, keys, projected, lengths),
                         ["tokens", "state", "feed", "keys", "projected", "lengths"],
                         ["logits", "state_out", "feed_out", "weights"]),
    }  # fmt: skip
    for name, (module, args, inputs, outputs) in graphs.items():
        _write(module, folder / f"{name}.{'onnx' if format == 'onnx' else 'pt'}", format, args,
               inputs, outputs, info)  # fmt: skip
    return folder


def _write(module, path: Path, format: str, args, inputs, outputs, info: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript / legacy exporter deprecation notices
        scripted = torch.jit.script(module)
        if format == "torchscript":
            torch.jit.save(scripted, str(path), _extra_files={METADATA: json.dumps(info)})
            return
        try:
            import onnx
        except ImportError:
            raise DeepRNNError("ONNX export needs the onnx package: pip install onnx (in a "
                               "checkout: pip install -e '.[export]'), or format='torchscript'"
                               ) from None  # fmt: skip
        dynamic = {"x": {0: "batch", 1: "source"}, "lengths": {0: "batch"},
                   "keys": {0: "batch", 1: "source"}, "projected": {0: "batch", 1: "source"},
                   "weights": {0: "batch", 1: "source"}}  # fmt: skip
        axes = {n: dynamic.get(n, {0: "batch"}) for n in [*inputs, *outputs]}
        torch.onnx.export(scripted, args, str(path), dynamo=False, opset_version=OPSET,
                          input_names=inputs, output_names=outputs, dynamic_axes=axes)  # fmt: skip
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA, json.dumps(info)
    onnx.save(proto, str(path))
