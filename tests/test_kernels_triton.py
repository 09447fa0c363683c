"""The Triton step kernels (deeprnn.kernels.triton), run by Triton's interpreter on CPU tensors.

TRITON_INTERPRET=1 acts where a function is decorated by triton.jit: triton.language's own
(tl.sum ...) when triton is first imported, ours when their modules are. So this module sets
it before triton's first import in the process, and re-imports our kernel modules; where
triton was imported before (or on a machine with a GPU, whose other tests want compiled
Triton), the same tests run in a fresh process instead (`test_in_a_fresh_process`).
`force` sends CPU tensors to the Triton path. Every kernel (LSTM / GRU / RNN, forward and
BPTT, each flag: layer norm, LN_c, recurrent dropout, zoneout in training and eval, lengths,
initial states) is checked against the TorchScript loops and the cell loop (outputs and every
gradient, float64, 1e-10), against the NumPy reference, in float32, and by gradcheck.
"""

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

if "triton" not in sys.modules and not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # before triton's first import: see the module doc
pytest.importorskip("triton")  # the `gpu` extra; CI installs it (Makefile EXTRAS)

import triton.language as tl  # noqa: E402
from triton.runtime.interpreter import InterpretedFunction  # noqa: E402

from deeprnn import DeepRNN  # noqa: E402
from deeprnn.kernels import extension  # noqa: E402
from deeprnn.kernels import triton as triton_path  # noqa: E402

from .helpers import assert_matches_reference, assert_same_outputs_and_grads, random_batch  # noqa: E402
from .test_kernels import Seeded  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
IN_PROCESS = isinstance(tl.sum, InterpretedFunction)
in_process = pytest.mark.skipif(not IN_PROCESS, reason="run by test_in_a_fresh_process")


@pytest.mark.skipif(IN_PROCESS, reason="this process interprets Triton: the tests run here")
def test_in_a_fresh_process():
    env = {**os.environ, "TRITON_INTERPRET": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k",
           "not test_in_a_fresh_process"]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary, summary


def _reload_kernels():
    from deeprnn.kernels.triton import gru_steps, lstm_steps

    importlib.reload(lstm_steps)
    importlib.reload(gru_steps)  # after lstm_steps: it imports its helpers
    return lstm_steps, gru_steps


@pytest.fixture(scope="module", autouse=True)
def interpreter():
    """Our kernels as Triton's interpreter runs them, and the Triton path forced on."""
    if not IN_PROCESS:
        yield
        return
    lstm_steps, _ = _reload_kernels()  # imported before TRITON_INTERPRET was set, maybe
    assert lstm_steps.INTERPRETED
    triton_path.force = True
    yield
    triton_path.force = False


@pytest.fixture
def launches(monkeypatch):
    """Counts the launches of each step kernel, so a test can tell the kernels ran."""
    from deeprnn.kernels.triton import gru_steps, lstm_steps

    counts = {}
    for module in (lstm_steps, gru_steps):
        for name in dir(module):
            if name.endswith("_step"):
                kernel = getattr(module, name)
                monkeypatch.setattr(module, name, _Counted(kernel, name, counts))
    return counts


class _Counted:
    def __init__(self, kernel, name, counts):
        self.kernel, self.name, self.counts = kernel, name, counts

    def __getitem__(self, grid):
        self.counts[self.name] = self.counts.get(self.name, 0) + 1
        return self.kernel[grid]


def triton_and(other: str, dtype=torch.float64, **kw):
    """The same DeepRNN twice: on the Triton kernels, and on `other` ("torchscript": the
    fused recurrence's TorchScript loops; "loop": the generic cell loop)."""
    torch.manual_seed(0)
    net = DeepRNN(5, 4, num_layers=2, **kw).to(dtype)
    twin = DeepRNN(5, 4, num_layers=2, **kw).to(dtype)
    twin.load_state_dict(net.state_dict())
    for layer in net.layers:
        layer.torch_kernel = False
    if other == "loop":
        twin.use_native(False)
    else:
        for layer in twin.layers:
            layer.torch_kernel = False
    return net, twin


def _run_other(other, monkeypatch):
    """Make the twin run where it should: the TorchScript loops (no C++, no Triton)."""
    if other == "torchscript":
        monkeypatch.setattr(extension, "takes", lambda x: False)


class _Unforced:
    """Runs a module with the Triton path off (for the twin)."""

    def __init__(self, module):
        self.module = module

    def __call__(self, *args, **kw):
        triton_path.force = False
        try:
            return self.module(*args, **kw)
        finally:
            triton_path.force = True

    def named_parameters(self):
        return self.module.named_parameters()


CASES = [
    dict(cell="lstm"),
    dict(cell="lstm", layer_norm=True),
    dict(cell="lstm", layer_norm=True, bias=False),
    dict(cell="lstm", recurrent_dropout=0.3),
    dict(cell="lstm", zoneout=(0.2, 0.4), bidirectional=True),
    dict(cell="lstm", layer_norm=True, recurrent_dropout=0.2, zoneout=0.3, bidirectional=True),
    dict(cell="gru"),
    dict(cell="gru", layer_norm=True, bias=False),
    dict(cell="gru", recurrent_dropout=0.3, zoneout=0.2),
    dict(cell="gru", layer_norm=True, recurrent_dropout=0.2, zoneout=0.3, bidirectional=True),
    dict(cell="rnn", nonlinearity="sigmoid"),
    dict(cell="rnn", nonlinearity="relu", zoneout=0.3),
    dict(cell="rnn", layer_norm=True, recurrent_dropout=0.3, bidirectional=True),
    dict(cell="rnn", layer_norm=True, recurrent_dropout=0.2, zoneout=0.3),
]


def _ids(kw):
    return "-".join(f"{k}={v}" for k, v in kw.items())


@in_process
@pytest.mark.parametrize("kw", CASES, ids=_ids)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("other", ["torchscript", "loop"])
def test_triton_equals_the_other_paths(kw, training, other, monkeypatch, launches):
    net, twin = triton_and(other, **kw)
    net.train(training)
    twin.train(training)
    assert {r["path"] for r in net.explain()} == {"triton"}
    _run_other(other, monkeypatch)
    x, lengths = random_batch(4, 5, 5, with_lengths=True)  # a full row and a zero-length row
    assert_same_outputs_and_grads(
        Seeded(net, with_state=True), _Unforced(Seeded(twin, with_state=True)), x, lengths,
        rtol=1e-10,
    )  # fmt: skip
    kind = kw["cell"]
    directions = 2 * (2 if kw.get("bidirectional") else 1)  # 2 layers
    assert launches[f"{kind}_forward_step"] == directions * 5
    assert launches[f"{kind}_backward_step"] == directions * 5


@in_process
@pytest.mark.parametrize(
    "kw",
    [dict(cell="lstm", layer_norm=True, zoneout=(0.2, 0.3)),
     dict(cell="gru", layer_norm=True, zoneout=0.25, bidirectional=True),
     dict(cell="rnn", nonlinearity="sigmoid", layer_norm=True, zoneout=0.2)],
    ids=_ids,
)  # fmt: skip
def test_triton_matches_the_numpy_reference(kw):
    torch.manual_seed(3)
    net = DeepRNN(5, 4, num_layers=2, **kw).double().eval()
    assert {r["path"] for r in net.explain()} == {"triton"}
    x, lengths = random_batch(3, 5, 5, with_lengths=True)
    state = []
    for layer in net.layers:
        s = layer.initial_state(3, x)
        state.append(tuple(t.normal_() for t in s) if kw["cell"] == "lstm" else s.normal_())
    assert_matches_reference(net, x, lengths, state=state, rtol=1e-9, atol=1e-11, fd=False)


@in_process
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_triton_in_float32(cell):
    """float32 against the float64 reference run: layer norm over 4 units amplifies rounding
    (gradients reach 10-30 here), so the tolerances are those of the fused path's test."""
    net, twin = triton_and("loop", torch.float32, cell=cell, layer_norm=True, zoneout=0.1)
    x, lengths = random_batch(4, 6, 5, with_lengths=True)
    assert_same_outputs_and_grads(
        Seeded(net), _Unforced(Seeded(twin)), x.float(), lengths, rtol=1e-4, atol=1e-3
    )


def _tiny(*shape):
    return torch.randn(*shape, dtype=torch.float64, requires_grad=True)


@in_process
def test_gradcheck_of_the_functions():
    from deeprnn.kernels.triton.recurrence import TritonGRU, TritonLSTM, TritonRNN

    torch.manual_seed(4)
    T, B, H = 3, 2, 3
    u = torch.rand(T, B, H, dtype=torch.float64).round()  # 0 / 1 zoneout and lengths weights
    drop = torch.rand(B, H, dtype=torch.float64).round() * 2

    def lstm(a, h0, c0, w, g, gc, bc):
        return TritonLSTM.apply(a, h0, c0, w, g, gc, bc, drop, u, 1 - u, 1e-5, 1e-5)

    def gru(a, h0, w, b, g):
        return TritonGRU.apply(a, h0, w, b, g, drop, u, 1e-5)

    def rnn(a, h0, w, g):
        return TritonRNN.apply(a, h0, w, g, drop, 0.7 * u + 0.1, "tanh", 1e-5)

    lstm_in = (_tiny(T, B, 4 * H), _tiny(B, H), _tiny(B, H), _tiny(4 * H, H), _tiny(4 * H),
               _tiny(H), _tiny(H))  # fmt: skip
    assert torch.autograd.gradcheck(lstm, lstm_in, fast_mode=True)  # full: ~30 s interpreted
    gru_in = (_tiny(T, B, 3 * H), _tiny(B, H), _tiny(3 * H, H), _tiny(3 * H), _tiny(3 * H))
    assert torch.autograd.gradcheck(gru, gru_in, fast_mode=True)
    rnn_in = (_tiny(T, B, H), _tiny(B, H), _tiny(H, H), _tiny(H))
    assert torch.autograd.gradcheck(rnn, rnn_in, fast_mode=True)


@in_process
def test_inference_keeps_one_step_and_equals_training_outputs():
    torch.manual_seed(5)
    net = DeepRNN(5, 6, num_layers=2, cell="lstm", layer_norm=True, zoneout=0.2).double().eval()
    x, lengths = random_batch(3, 7, 5, with_lengths=True)
    with torch.no_grad():
        fast, fast_state = net(x, lengths=lengths)
    slow, slow_state = net(x, lengths=lengths)
    torch.testing.assert_close(fast, slow.detach(), rtol=0, atol=0)
    torch.testing.assert_close(fast_state[0][1], slow_state[0][1].detach(), rtol=0, atol=0)


@in_process
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_rows_split_over_several_programs(cell, monkeypatch):
    """Two rows a program, as on a GPU: a batch of 5 leaves the last program half masked;
    a width of 7 leaves a masked unit in every gate's block."""
    from deeprnn.kernels.triton import recurrence

    real = recurrence.launch
    assert real(5, 7, 4)["BLOCK"] == 8

    def two_rows(batch, hidden, gates):
        return {**real(batch, hidden, gates), "grid": ((batch + 1) // 2,), "ROWS": 2}

    monkeypatch.setattr(recurrence, "launch", two_rows)
    torch.manual_seed(0)
    kw = dict(cell=cell, layer_norm=True, zoneout=0.2, recurrent_dropout=0.2)
    net = DeepRNN(5, 7, **kw).double()
    twin = DeepRNN(5, 7, **kw).double().use_native(False)
    twin.load_state_dict(net.state_dict())
    x, lengths = random_batch(5, 4, 5, with_lengths=True, seed=2)
    assert_same_outputs_and_grads(
        Seeded(net, with_state=True, batch=5), _Unforced(Seeded(twin, with_state=True, batch=5)),
        x, lengths, rtol=1e-10,
    )  # fmt: skip


@in_process
def test_cpu_tensors_stay_off_triton_unless_forced():
    net = DeepRNN(3, 4, layer_norm=True)
    triton_path.force = False
    try:
        assert net.explain()[0]["path"] == "fused"
        assert not triton_path.takes(torch.zeros(1, 1, 3), 4)
    finally:
        triton_path.force = True
    assert net.explain()[0]["path"] == "triton"
    assert not triton_path.takes(torch.zeros(1, 1, 3, dtype=torch.float16), 4)
    assert not triton_path.runs_on(torch.device("cpu"), torch.float32, triton_path.MAX_HIDDEN + 1)
    plain = DeepRNN(3, 4)  # torch's kernel computes it: it stays native everywhere
    assert plain.explain()[0]["path"] == "native"


@in_process
def test_the_gpu_benchmark_measures_every_column(tmp_path):
    """benchmarks/gpu.py's measurement on CPU tensors (the kernels interpreted), tiny size:
    what a GPU run computes, short of CUDA's clock and memory statistics."""
    spec = importlib.util.spec_from_file_location("gpu", ROOT / "benchmarks" / "gpu.py")
    gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu)
    rows = gpu.bench_config("ln_lstm", "tiny", (3, 2, 4, 4), 1, torch.device("cpu"))
    rows += gpu.bench_config("gru", "tiny", (3, 2, 4, 4), 1, torch.device("cpu"))
    assert [(r["config"], r["mode"]) for r in rows] == [
        ("ln_lstm", "train"), ("ln_lstm", "inference"), ("gru", "train"), ("gru", "inference")
    ]  # fmt: skip
    assert rows[0]["paths"] == {"deeprnn": "triton", "triton": "triton", "torchscript": "fused"}
    assert rows[2]["paths"] == {"deeprnn": "native", "triton": "triton", "torchscript": "fused"}
    assert rows[0]["target"] is None and rows[2]["target"] == 1.02
    for r in rows:
        assert all(r[f"{name}_ms"] > 0 and r[f"{name}_ratio"] > 0 for name in gpu.IMPLS)
    assert triton_path.enabled  # the torchscript column switched it off only for itself
    machine = {"gpu": "none", "gpu_memory_gb": 0, "cuda": None, "cudnn": None, "torch": "",
               "triton": "", "python": ""}  # fmt: skip
    memory = [{"size": "tiny", "config": "gru", **{f"{n}_mb": 1.0 for n in gpu.IMPLS}}]
    text = gpu.markdown({"machine": machine, "repeats": 1, "rows": rows, "memory": memory,
                         "wall_s": 1.0})  # fmt: skip
    assert "| tiny | ln_lstm | train | triton |" in text and "triton/cuDNN" in text
    assert "| tiny | gru | 1 | 1 | 1 | 1 | 1.00 | 1.00 |" in text
