"""ONNX and TorchScript exports against the eager model, on shapes other than the export's.

Every option is exported in both formats from a B = 2, T = 5 example, loaded back
(onnxruntime, torch.jit.load) and compared with the eager model in eval mode on B = 3,
T = 9 with lengths (a full, a zero and a short row) and on B = 1, T = 2 without lengths.
"""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from deeprnn import DeepRNN, Head, InputError, Parallel, SequenceModel
from deeprnn.cli import main
from deeprnn.export import METADATA, export, twin
from deeprnn.runs import load_run

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
ATOL = 1e-5
FEATURES = 3  # input features of the test models


def body(**options) -> DeepRNN:
    options.setdefault("hidden_size", 4)
    options.setdefault("num_layers", 2)
    return DeepRNN(FEATURES, **options)


def with_head(pooling: str, activation: str | None, net: DeepRNN | None = None, **embedding):
    net = net or body(cell="gru")
    emb = torch.nn.Embedding(embedding["vocab"], FEATURES) if embedding else None
    return SequenceModel(net, Head(net.output_size, 2, pooling, activation), emb)


# Each case: a model factory; names say which option it covers.
CASES = {
    "lstm": lambda: body(cell="lstm"),
    "gru": lambda: body(cell="gru"),
    "rnn_relu": lambda: body(cell="rnn", nonlinearity="relu"),
    "rnn_sigmoid": lambda: body(cell="rnn", nonlinearity="sigmoid"),
    "mixed_cells_no_bias": lambda: body(cell=["rnn", "gru", "lstm"], num_layers=3, bias=False),
    "skip": lambda: body(cell="lstm", wiring="skip"),
    "residual": lambda: body(cell="gru", hidden_size=FEATURES, residual=True),
    "between": lambda: body(cell="lstm", between="tanh", hidden_size=[4, 5]),
    "outputs_all": lambda: body(cell="gru", outputs="all", hidden_size=[4, 2]),
    "bidirectional": lambda: body(cell="lstm", bidirectional=True, wiring="skip"),
    "layer_norm_lstm": lambda: body(cell="lstm", layer_norm=True),
    "layer_norm_gru_bidirectional": lambda: body(cell="gru", layer_norm=True, bidirectional=True),
    "layer_norm_rnn": lambda: body(cell="rnn", layer_norm=True, between="relu"),
    "zoneout_dropout": lambda: body(
        cell="lstm", zoneout=(0.3, 0.1), recurrent_dropout=0.2, dropout=0.5
    ),
    "head_last_softmax": lambda: with_head("last", "softmax"),
    "head_mean_sigmoid": lambda: with_head("mean", "sigmoid"),
    "head_attention_linear": lambda: with_head("attention", None, body(bidirectional=True)),
    "head_every_softmax_tokens": lambda: with_head("every", "softmax", vocab=7),
}


def make(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = CASES[name]()
    with torch.no_grad():  # layer-norm gains and shifts start at 1 / 0: make them matter
        for n, p in model.named_parameters():
            if "ln_" in n:
                p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def inputs(model, batch: int, time: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if getattr(model, "embedding", None) is not None:
        return torch.randint(0, model.embedding.num_embeddings, (batch, time), generator=g)
    return torch.randn(batch, time, FEATURES, generator=g)


@torch.no_grad()
def eager(model, x, lengths=None) -> np.ndarray:
    out, _ = model(x, lengths=lengths)
    return (model.activate(out) if isinstance(model, SequenceModel) else out).numpy()


LENGTHS = torch.tensor([9, 0, 4])  # a full row, an empty row, a short row


@pytest.mark.parametrize("name", list(CASES))
def test_both_formats_match_the_eager_model_on_new_shapes(name, tmp_path):
    model = make(name)
    ts = torch.jit.load(str(export(model, tmp_path / "m.pt", "torchscript")))
    session = ort.InferenceSession(str(export(model, tmp_path / "m.onnx", "onnx")))
    x = inputs(model, 3, 9)
    want = eager(model, x, LENGTHS)
    got = session.run(None, {"x": x.numpy(), "lengths": LENGTHS.numpy()})[0]
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
    np.testing.assert_allclose(ts(x, LENGTHS).numpy(), want, atol=ATOL, rtol=0)
    x = inputs(model, 1, 2)
    want = eager(model, x)
    np.testing.assert_allclose(ts(x).numpy(), want, atol=ATOL, rtol=0)
    full = np.array([2], dtype=np.int64)
    got = session.run(None, {"x": x.numpy(), "lengths": full})[0]
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    "name", ["lstm", "gru", "rnn_relu", "mixed_cells_no_bias", "bidirectional"]
)
def test_the_scripted_loop_also_computes_plain_cells(name):
    """Plain cells export on torch's fused sequence op; the loop they would otherwise run
    on must agree too (it runs the layer-norm, zoneout and sigmoid cells)."""
    model = make(name)
    net = torch.jit.script(twin(model, fused=False))
    assert "prim::Loop" in str(net.inlined_graph)
    x = inputs(model, 3, 9)
    np.testing.assert_allclose(net(x, LENGTHS).numpy(), eager(model, x, LENGTHS), atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", ["bidirectional", "head_every_softmax_tokens"])
def test_onnx_without_a_lengths_input(name, tmp_path):
    model = make(name)
    path = export(model, tmp_path / "m.onnx", lengths=False, example=inputs(model, 4, 3))
    session = ort.InferenceSession(str(path))
    assert [i.name for i in session.get_inputs()] == ["x"]
    for batch, time in ((3, 9), (1, 2)):
        x = inputs(model, batch, time)
        got = session.run(None, {"x": x.numpy()})[0]
        np.testing.assert_allclose(got, eager(model, x), atol=ATOL, rtol=0)


def test_dynamic_axes_and_metadata(tmp_path):
    model = make("head_last_softmax")
    path = export(model, tmp_path / "m.onnx")
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "GRU" in ops and "Loop" not in ops  # plain cells run on ONNX's own GRU
    session = ort.InferenceSession(str(path))
    (x, lengths), (out,) = session.get_inputs(), session.get_outputs()
    assert (x.name, x.shape, x.type) == ("x", ["batch", "time", FEATURES], "tensor(float)")
    assert (lengths.name, lengths.shape, lengths.type) == ("lengths", ["batch"], "tensor(int64)")
    assert (out.name, out.shape) == ("output", ["batch", 2])
    meta = json.loads(session.get_modelmeta().custom_metadata_map[METADATA])
    assert meta["config"]["head"] == {"pooling": "last", "activation": "softmax", "out_features": 2}
    files = {METADATA: ""}
    torch.jit.load(str(export(model, tmp_path / "m.pt", "torchscript")), _extra_files=files)
    assert json.loads(files[METADATA])["inputs"][1]["name"] == "lengths"


def test_training_mode_models_export_their_eval_forward_and_stay_in_training(tmp_path):
    model = make("zoneout_dropout").train()
    ts = torch.jit.load(str(export(model, tmp_path / "m.pt", "torchscript")))
    assert model.training
    x = inputs(model, 2, 6)
    np.testing.assert_allclose(ts(x).numpy(), eager(model.eval(), x), atol=ATOL, rtol=0)


def test_what_cannot_be_exported_is_named(tmp_path):
    par = Parallel(body(), body())
    with pytest.raises(InputError, match="Parallel"):
        export(par, tmp_path / "p.onnx")
    with pytest.raises(InputError, match="Parallel"):
        export(SequenceModel(par, Head(par.output_size, 2)), tmp_path / "p.onnx")
    with pytest.raises(InputError, match="DeepRNN or a SequenceModel.*Linear"):
        export(torch.nn.Linear(2, 2), tmp_path / "l.onnx")
    with pytest.raises(InputError, match="format"):
        export(body(), tmp_path / "m.bin", "tflite")
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    cfg = tmp / "wave.yaml"
    cfg.write_text("task: sequence_classification\ndata:\n  dataset: waveforms\nmodel:\n"
                   "  cell: lstm\n  pooling: attention\n", encoding="utf-8")  # fmt: skip
    tiny = ["model.epochs=1", "model.hidden_size=8", "model.num_layers=2", "model.patience=null"]
    sets = [arg for s in tiny for arg in ("--set", s)]
    assert main(["train", str(cfg), "--run-dir", str(tmp / "run"), "--quiet", *sets]) == 0
    return tmp / "run"


def test_cli_export_writes_both_formats(run_dir, tmp_path, capsys):
    _, est = load_run(run_dir)
    x = torch.randn(3, 11, est.n_features_in_)
    # a data-aware fit on 600 sequences keeps its split's model too: the export averages both
    assert len(est._members()) == 2
    want = np.mean([eager(m, x, LENGTHS + 2) for m in est._members()], axis=0)
    assert main(["export", str(run_dir)]) == 0
    printed = capsys.readouterr().out
    assert "input lengths: (batch) int64" in printed and "one graph of 2 networks" in printed
    session = ort.InferenceSession(str(run_dir / "export" / "model.onnx"))
    got = session.run(None, {"x": x.numpy(), "lengths": (LENGTHS + 2).numpy()})[0]
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
    out = tmp_path / "deep" / "wave.pt"
    assert main(["export", str(run_dir), "--format", "torchscript", "--output", str(out)]) == 0
    np.testing.assert_allclose(torch.jit.load(str(out))(x, LENGTHS + 2), want, atol=ATOL, rtol=0)
    assert main(["export", str(tmp_path), "--format", "onnx"]) == 2


def test_estimator_export_matches_predict_proba(run_dir, tmp_path):
    _, est = load_run(run_dir)
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(n, est.n_features_in_)).astype(np.float32) for n in (7, 12)]
    path = est.export(tmp_path / "m.onnx", lengths=False)
    session = ort.InferenceSession(str(path))
    for seq, proba in zip(seqs, est.predict_proba(seqs)):
        x = est.input_scaler_.transform(seq).astype(np.float32)[None]
        np.testing.assert_allclose(session.run(None, {"x": x})[0][0], proba, atol=ATOL)


def test_float64_models_export_in_float64(tmp_path):
    """onnxruntime's LSTM kernel is float32 only, so a float64 ONNX export runs the loop."""
    model = make("lstm").double()
    session = ort.InferenceSession(str(export(model, tmp_path / "m.onnx")))
    x = inputs(model, 3, 9).double()
    got = session.run(None, {"x": x.numpy(), "lengths": LENGTHS.numpy()})[0]
    np.testing.assert_allclose(got, eager(model, x, LENGTHS), atol=1e-12, rtol=0)
