"""Eval-mode zoneout against the NumPy reference: outputs, final states and every gradient.

In eval mode zoneout is deterministic (u = 1 - p_h, v = 1 - p_c), so the fused recurrence
and the cell loop are both checked against the reference, which `assert_matches_reference`
also checks by finite differences. It runs the module in eval mode (`module.eval()`).
"""

from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from deeprnn import DeepRNN, reference
from deeprnn.reference.cells import cell_forward

from .helpers import assert_matches_reference, random_batch

# input size 4; hidden 4 (2 when bidirectional) keeps width 4, so residual from x applies
CASES = [
    dict(cell="lstm", zoneout=0.3),
    dict(cell="lstm", zoneout=(0.2, 0.5), bidirectional=True, wiring="skip"),
    dict(cell="lstm", zoneout=(0.0, 0.4), layer_norm=True, residual=True),
    dict(cell="lstm", zoneout=(0.45, 0.0), bidirectional=True, residual=True),
    dict(cell="gru", zoneout=0.25, bidirectional=True, wiring="skip"),
    dict(cell="gru", zoneout=(0.3, 0.6), layer_norm=True, residual=True),
    dict(cell="rnn", zoneout=0.2, bidirectional=True, residual=True),
    dict(cell="rnn", nonlinearity="sigmoid", zoneout=(0.35, 0.1), layer_norm=True, wiring="skip"),
    dict(cell=["lstm", "gru", "rnn"], zoneout=(0.3, 0.2), between="tanh", outputs="all"),
]


def _ids(kw: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in kw.items())


def _net(seed: int = 0, **kwargs) -> DeepRNN:
    torch.manual_seed(seed)
    hidden = 2 if kwargs.get("bidirectional") else 4
    layers = len(kwargs["cell"]) if isinstance(kwargs["cell"], list) else 2
    kwargs.setdefault("num_layers", layers)
    return DeepRNN(4, hidden, **kwargs).double().eval()


@pytest.mark.parametrize("kwargs", CASES, ids=_ids)
@pytest.mark.parametrize("native", [True, False], ids=["fused", "loop"])
def test_eval_zoneout_matches_reference(kwargs, native):
    net = _net(**kwargs).use_native(native)
    assert {row["path"] for row in net.explain()} == {"fused" if native else "loop"}
    x, lengths = random_batch(3, 5, 4, with_lengths=True, seed=3)  # lengths (5, k, 0)
    assert lengths[-1] == 0
    assert_matches_reference(net, x, lengths, fd=not native)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("native", [True, False], ids=["fused", "loop"])
def test_eval_zoneout_initial_state_gradients_match_reference(cell, native):
    net = _net(1, cell=cell, zoneout=(0.3, 0.5), bidirectional=True).use_native(native)
    x, lengths = random_batch(3, 4, 4, with_lengths=True, seed=5)
    g = torch.Generator().manual_seed(2)
    shape = (2, 3, 2)
    state = [
        tuple(torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(2))
        if cell == "lstm"
        else torch.randn(shape, generator=g, dtype=torch.float64)
        for _ in range(2)
    ]
    assert_matches_reference(net, x, lengths, state=state, fd=not native)


def _reference_run(net: DeepRNN, x, lengths, **config):
    params = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    cfg = asdict(net.config) | config
    out, final, _ = reference.forward(params, cfg, x.numpy(), lengths.numpy())
    return out, final


def test_zero_zoneout_is_exactly_the_plain_reference():
    net = _net(2, cell="lstm", bidirectional=True, layer_norm=True)
    x, lengths = random_batch(3, 5, 4, with_lengths=True, seed=4)
    plain_out, plain_final = _reference_run(net, x, lengths)
    cfg = {k: v for k, v in asdict(net.config).items() if k != "zoneout"}  # key absent: off
    params = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    out, final, _ = reference.forward(params, cfg, x.numpy(), lengths.numpy())
    for zoneout in (0.0, (0.0, 0.0)):
        zero_out, zero_final = _reference_run(net, x, lengths, zoneout=zoneout)
        np.testing.assert_array_equal(zero_out, plain_out)
        np.testing.assert_array_equal(out, plain_out)
        for a, b, c in zip(zero_final, plain_final, final):
            np.testing.assert_array_equal(np.stack(a), np.stack(b))
            np.testing.assert_array_equal(np.stack(c), np.stack(b))


def test_reference_zoneout_step_is_the_blend_of_the_cell_step():
    """One step by hand: h_1 = h_0 + u (h~ - h_0), c_1 = c_0 + v (c~ - c_0), c~ un-zoned."""
    net = _net(3, cell="lstm", num_layers=1, zoneout=(0.3, 0.6))
    x = torch.randn(2, 1, 4, dtype=torch.float64)
    h0, c0 = torch.randn(2, 2, 4, dtype=torch.float64)
    params = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    p = {k.removeprefix("layers.0.cell."): v for k, v in params.items()}
    (h_new, c_new), _ = cell_forward("lstm", p, x[:, 0].numpy(), (h0.numpy(), c0.numpy()))
    out, final, _ = reference.forward(
        params, asdict(net.config), x.numpy(), state=[(h0.numpy(), c0.numpy())]
    )
    h1, c1 = final[0]
    np.testing.assert_allclose(h1, h0.numpy() + 0.7 * (h_new - h0.numpy()), rtol=1e-14)
    np.testing.assert_allclose(c1, c0.numpy() + 0.4 * (c_new - c0.numpy()), rtol=1e-14)
    np.testing.assert_array_equal(out[:, 0], h1)


def test_oracle_detects_a_module_without_the_zoneout_of_its_config():
    net = _net(4, cell="gru")
    net.config = replace(net.config, zoneout=0.3)  # the cells still compute no zoneout
    x, _ = random_batch(2, 3, 4, with_lengths=False)
    with pytest.raises(AssertionError):
        assert_matches_reference(net, x, fd=False)
