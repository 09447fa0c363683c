"""Export a trained DeepRNN or SequenceModel to ONNX or TorchScript, batch and time dynamic.

    export(model, "model.onnx", "onnx")         # onnxruntime, ONNX opset 17
    export(model, "model.pt", "torchscript")    # torch.jit.load, no deeprnn needed

A conv front end (`SequenceModel(..., frontend=ConvFrontend(...))`) is part of the graph, its
length arithmetic included. The exported graph is a scripted twin of the model
(`deeprnn.export.network`) built from its config and parameter tensors. Plain cells run on
torch's fused sequence ops (ONNX: LSTM / GRU / RNN nodes); layer-norm, zoneout and sigmoid
cells on a scripted time loop (ONNX: `Loop`). Either way any batch size and any number of
steps run. It computes the eval-mode forward: dropout and recurrent dropout vanish, zoneout
is its expectation.

Inputs: `x` (batch, time, features) floats, or (batch, time) int64 token ids for a model
with an embedding, and `lengths` (batch,) int64 (optional in TorchScript; in ONNX present
unless `lengths=False`). Output `output`: the DeepRNN's outputs (batch, time, width), or
the head's activated output (batch, K), or (batch, time, K) for per-step heads.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from deeprnn.errors import DeepRNNError, InputError, check_choice
from deeprnn.export.network import Average, Network, WithOptionalLengths, WithoutLengths
from deeprnn.export.steps import STEPS
from deeprnn.frontend import ConvFrontend
from deeprnn.heads import Head
from deeprnn.model import SequenceModel
from deeprnn.parallel import Parallel
from deeprnn.stack import DeepRNN

FORMATS = ("onnx", "torchscript")
OPSET = 17  # the first with LayerNormalization
TOLERANCE = 1e-4  # the twin must match the eager model on the example this closely
METADATA = "deeprnn.json"  # TorchScript extra file / ONNX metadata key describing the export

__all__ = ["FORMATS", "OPSET", "export", "export_ensemble", "signature", "twin"]


def _parts(model: nn.Module) -> tuple[DeepRNN, Head | None, nn.Embedding | None]:
    """(body, head, embedding) of an exportable model; InputError naming what is not."""
    if isinstance(model, Parallel) or isinstance(getattr(model, "body", None), Parallel):
        raise InputError(
            "Parallel cannot be exported: its branches may read different inputs with "
            "different lengths; export each branch (a DeepRNN) on its own"
        )
    if isinstance(model, DeepRNN):
        body, head, embedding = model, None, None
    elif isinstance(model, SequenceModel):
        body, head, embedding = model.body, model.head, model.embedding
    else:
        raise InputError(f"export needs a DeepRNN or a SequenceModel, got {type(model).__name__}")
    if type(body) is not DeepRNN:
        raise InputError(f"a {type(body).__name__} body cannot be exported; only a DeepRNN can")
    if head is not None and type(head) is not Head:
        raise InputError(f"a {type(head).__name__} head cannot be exported; only a Head can")
    if embedding is not None and embedding.max_norm is not None:
        raise InputError("an embedding with max_norm (renormalised in place) cannot be exported")
    for i, layer in enumerate(body.layers):
        for cell in layer.cells:
            if type(cell) not in STEPS:
                raise InputError(
                    f"layer {i} has a {type(cell).__name__} cell; only deeprnn's RNNCell, "
                    "LSTMCell and GRUCell can be exported"
                )
    return body, head, embedding


def _frontend(model: nn.Module) -> ConvFrontend | None:
    return model.frontend if isinstance(model, SequenceModel) else None


def twin(model: nn.Module, fused: bool = True) -> Network:
    """The scriptable twin of `model` (eval-mode forward), `y = twin(x, lengths)`; `fused`:
    plain cells on torch's fused sequence op, else every cell on the scripted loop."""
    body, head, embedding = _parts(model)
    weight = None if embedding is None else embedding.weight
    return Network(body, head, weight, fused, _frontend(model))


def _dtype(model: nn.Module) -> torch.dtype:
    return _parts(model)[0].layers[0].cell.weight_ih.dtype


def signature(model: nn.Module, format: str = "onnx", lengths: bool = True) -> dict[str, Any]:
    """Names, shapes and dtypes of the export's inputs and output, and the model's config.

    TorchScript always takes an optional `lengths`; ONNX takes one when `lengths` is True."""
    body, head, embedding = _parts(model)
    frontend = _frontend(model)
    dtype = str(_dtype(model)).replace("torch.", "")
    if embedding is None:
        width = body.config.input_size if frontend is None else frontend.in_features
        x = {"name": "x", "shape": ["batch", "time", width], "dtype": dtype}
    else:
        x = {"name": "x", "shape": ["batch", "time"], "dtype": "int64",
             "vocabulary": embedding.num_embeddings}  # fmt: skip
    inputs = [x]
    if lengths or format == "torchscript":
        optional = format == "torchscript"
        inputs.append(
            {"name": "lengths", "shape": ["batch"], "dtype": "int64", "optional": optional}
        )
    if head is None:
        shape = ["batch", "time", body.output_size]
    elif head.pooling == "every":
        shape = ["batch", "time", head.linear.out_features]
    else:
        shape = ["batch", head.linear.out_features]
    config = {"body": asdict(body.config)}
    if frontend is not None:
        config["frontend"] = {"blocks": frontend.explain(), "length": frontend.length_rule(),
                              "min_length": frontend.min_length}  # fmt: skip
    if head is not None:
        config["head"] = {"pooling": head.pooling, "activation": head.activation,
                          "out_features": head.linear.out_features}  # fmt: skip
    return {
        "format": "deeprnn-export",
        "version": 1,
        "inputs": inputs,
        "outputs": [{"name": "output", "shape": shape, "dtype": dtype}],
        "config": config,
    }


def _example(model: nn.Module, example: Any) -> tuple[Tensor, Tensor]:
    """(x, lengths) on the CPU: the given example, or B = 2 rows of T = 5 steps (or as long
    as a front end needs)."""
    body, _, embedding = _parts(model)
    frontend = _frontend(model)
    lengths = None
    if isinstance(example, (tuple, list)):
        if len(example) != 2:
            raise InputError("example must be x or a pair (x, lengths)")
        example, lengths = example
    if example is None:
        gen = torch.Generator().manual_seed(0)
        short = 3 if frontend is None else max(3, frontend.min_length)
        time = short + 2
        if embedding is None:
            width = body.config.input_size if frontend is None else frontend.in_features
            example = torch.randn(2, time, width, generator=gen, dtype=_dtype(model))
        else:
            example = torch.randint(0, embedding.num_embeddings, (2, time), generator=gen)
        lengths = torch.tensor([time, short]) if lengths is None else lengths
    if not isinstance(example, Tensor) or example.dim() < 2:
        raise InputError(f"example must be a tensor (batch, time, ...), got {example!r:.60}")
    if lengths is None:
        lengths = torch.full((example.shape[0],), example.shape[1], dtype=torch.long)
    lengths = torch.as_tensor(lengths).to("cpu", torch.long)
    return example.detach().to("cpu"), lengths


@torch.no_grad()
def _check(model: nn.Module, net: Network, x: Tensor, lengths: Tensor) -> None:
    """Raise unless the twin reproduces the eager model (eval mode) on the example."""
    modes = {m: m.training for m in model.modules()}
    device = next(model.parameters()).device
    model.eval()
    try:
        out, _ = model(x.to(device), lengths=lengths)
        if isinstance(model, SequenceModel):
            out = model.activate(out)
    finally:
        for m, training in modes.items():
            m.training = training
    got = net(x, lengths)
    err = (got - out.cpu()).abs().max().item() if got.shape == out.shape else float("inf")
    if not err <= TOLERANCE * max(1.0, out.abs().max().item()):
        raise DeepRNNError(
            f"the exported graph differs from the model on the example (max error {err:.3g}); "
            "please report this with the model's config"
        )


def _script(module: nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        # TorchScript is deprecated, but it is what keeps a time loop a loop in both formats.
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(module)


def export(
    model: nn.Module,
    path: str | os.PathLike,
    format: str = "onnx",
    example: Tensor | tuple[Tensor, Tensor] | None = None,
    lengths: bool = True,
) -> Path:
    """Write `model` (a DeepRNN or a SequenceModel) to `path` as ONNX or TorchScript.

    Args:
        model: the trained model; exported as in eval mode (it is left as it was).
        path: the file to write (parent folders are created).
        format: "onnx" (opset 17, for onnxruntime) or "torchscript" (`torch.jit.load`).
        example: x or (x, lengths) to check the export on (default: 2 random rows of 5
            steps); batch and time stay dynamic whatever its shape.
        lengths: ONNX only: give the graph a `lengths` input (B,) int64. TorchScript always
            takes `module(x, lengths=None)`.
    Returns the path written. Raises InputError naming a part that cannot be exported.
    """
    check_choice("format", format, FORMATS)
    x, lens = _example(model, example)
    # onnxruntime's LSTM / GRU / RNN kernels are float32 only: other dtypes run the loop.
    net = twin(model, fused=format == "torchscript" or _dtype(model) == torch.float32)
    _check(model, net, x, lens)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(net, path, format, x, lens, signature(model, format, lengths), lengths)
    return path


def export_ensemble(
    models: list[nn.Module], path: str | os.PathLike, format: str = "onnx", lengths: bool = True
) -> Path:
    """Write ONE graph that runs every model of `models` (SequenceModels taking the same
    inputs) and averages their outputs: `y = mean_m model_m(x, lengths)`. Inputs and output
    as in `export`; the metadata's config describes the first member and counts them."""
    check_choice("format", format, FORMATS)
    if not models:
        raise InputError("export_ensemble needs at least one model")
    metas = [signature(m, format, lengths) for m in models]
    for i, meta in enumerate(metas[1:], 1):
        if (meta["inputs"], meta["outputs"]) != (metas[0]["inputs"], metas[0]["outputs"]):
            raise InputError(
                f"model {i} takes or gives other shapes than model 0 ({meta['inputs']} -> "
                f"{meta['outputs']}); an ensemble's members must match"
            )
    # The example must be long enough for the member whose front end needs the most steps.
    x, lens = _example(max(models, key=_min_time), None)
    nets = []
    for model in models:
        net = twin(model, fused=format == "torchscript" or _dtype(model) == torch.float32)
        _check(model, net, x, lens)
        nets.append(net)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {**metas[0], "config": {**metas[0]["config"], "ensemble_members": len(models)}}
    _write(Average(nets), path, format, x, lens, meta, lengths)
    return path


def _min_time(model: nn.Module) -> int:
    frontend = _frontend(model)
    return 1 if frontend is None else frontend.min_length


def _write(net, path: Path, format: str, x: Tensor, lens: Tensor, meta: dict, lengths: bool):
    path.parent.mkdir(parents=True, exist_ok=True)
    if format == "torchscript":
        scripted = _script(WithOptionalLengths(net))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(scripted, str(path), _extra_files={METADATA: json.dumps(meta)})
        return
    _onnx(net, path, x, lens, meta, lengths)


def _onnx(net: nn.Module, path: Path, x: Tensor, lens: Tensor, meta: dict, lengths: bool) -> None:
    try:
        import onnx
    except ImportError:
        raise DeepRNNError(
            "ONNX export needs the onnx package, which is not installed: pip install onnx "
            "(in a deeprnn checkout: pip install -e '.[export]', which adds onnxruntime to run "
            "the file), or export with format='torchscript'"
        ) from None
    names = [i["name"] for i in meta["inputs"]]
    axes = {"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"}}
    out_shape = meta["outputs"][0]["shape"]
    axes["output"] = {i: n for i, n in enumerate(out_shape) if isinstance(n, str)}
    module = _script(net if lengths else WithoutLengths(net))
    args = (x, lens) if lengths else (x,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notices
        torch.onnx.export(
            module, args, str(path), dynamo=False, opset_version=OPSET, input_names=names,
            output_names=["output"], dynamic_axes={n: axes[n] for n in [*names, "output"]},
        )  # fmt: skip
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA, json.dumps(meta)
    onnx.save(proto, str(path))
