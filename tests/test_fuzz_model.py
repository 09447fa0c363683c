"""Property-based tests of DeepRNN: random valid configurations and inputs run and give
finite outputs; random invalid ones raise deeprnn's own errors, never a torch error."""

from __future__ import annotations

import signal
from contextlib import contextmanager

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import HealthCheck, given, settings

from deeprnn import DeepRNN
from deeprnn.config import BETWEEN_ACTIVATIONS, CELL_KINDS, NONLINEARITY_NAMES
from deeprnn.errors import DeepRNNError

FUZZ = dict(deadline=None, derandomize=True, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip


@contextmanager
def time_limit(seconds: float):
    """Fail (instead of hanging) when the body runs longer than `seconds` (POSIX only)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def alarm(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def ours(err: BaseException) -> bool:
    """A deeprnn error that is also a ValueError or TypeError."""
    return isinstance(err, DeepRNNError) and isinstance(err, (ValueError, TypeError))


@st.composite
def configs(draw) -> dict:
    """Valid DeepRNN keyword arguments for a small network."""
    layers = draw(st.integers(1, 3))
    residual = draw(st.booleans())
    if residual:  # residual connections need equal widths
        hidden = [draw(st.integers(1, 5))] * layers
    else:
        hidden = draw(st.lists(st.integers(1, 5), min_size=layers, max_size=layers))
    per_layer = draw(st.booleans())
    cell = draw(st.lists(st.sampled_from(CELL_KINDS), min_size=layers, max_size=layers))
    return dict(
        input_size=draw(st.integers(1, 4)),
        hidden_size=hidden if layers > 1 or draw(st.booleans()) else hidden[0],
        num_layers=layers,
        cell=cell if per_layer else cell[0],
        nonlinearity=draw(st.sampled_from(NONLINEARITY_NAMES)),
        wiring=draw(st.sampled_from(["stack", "skip"])),
        residual=residual,
        layer_norm=draw(st.booleans()),
        dropout=draw(st.floats(0, 0.5)),
        bidirectional=draw(st.booleans()),
        between=draw(st.sampled_from([None, *BETWEEN_ACTIVATIONS])),
        outputs=draw(st.sampled_from(["top", "all"])),
    )


@st.composite
def cases(draw) -> tuple[dict, torch.Tensor, torch.Tensor | None, bool]:
    """(config, x (B, T, I), lengths or None, training mode)."""
    config = draw(configs())
    batch, time = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    values = st.floats(-10, 10, allow_nan=False, width=32)
    flat = draw(st.lists(values, min_size=batch * time * config["input_size"],
                         max_size=batch * time * config["input_size"]))  # fmt: skip
    x = torch.tensor(flat, dtype=torch.float32).reshape(batch, time, config["input_size"])
    lengths = None
    if draw(st.booleans()):
        lengths = torch.tensor(draw(st.lists(st.integers(0, time), min_size=batch,
                                             max_size=batch)))  # fmt: skip
    return config, x, lengths, draw(st.booleans())


@settings(max_examples=60, **FUZZ)
@given(case=cases())
def test_valid_networks_and_inputs_give_finite_outputs(case):
    config, x, lengths, training = case
    torch.manual_seed(0)
    with time_limit(20):
        net = DeepRNN(**config).train(training)
        out, state = net(x, lengths=lengths)
    assert out.shape == (*x.shape[:2], net.output_size)
    assert torch.isfinite(out).all()
    assert len(state) == config["num_layers"]
    if lengths is not None:
        past = torch.arange(x.shape[1]) >= lengths.unsqueeze(1)  # (B, T)
        assert (out[past] == 0).all()


# ---- invalid cases: one thing wrong with an otherwise valid case ------------------------------

junk = st.one_of(st.text(max_size=5), st.floats(allow_nan=True), st.integers(-5, 5), st.none(),
                 st.lists(st.integers(), max_size=2), st.booleans())  # fmt: skip


@st.composite
def bad_arguments(draw):
    """A config with one argument replaced by a wrong value."""
    config = draw(configs())
    wrong = {
        "input_size": st.one_of(st.integers(-3, 0), st.floats(0.5, 3), st.text(max_size=3)),
        "hidden_size": st.one_of(st.integers(-3, 0), st.just([]), st.text(min_size=1, max_size=3),
                                 st.lists(st.integers(-3, 0), min_size=1, max_size=3)),
        "num_layers": st.one_of(st.integers(-3, 0), st.floats(1, 3), st.text(max_size=3)),
        "cell": st.one_of(st.text(max_size=6).filter(lambda s: s not in CELL_KINDS),
                          st.lists(st.sampled_from(CELL_KINDS), min_size=4, max_size=5)),
        "nonlinearity": st.text(max_size=6).filter(lambda s: s not in NONLINEARITY_NAMES),
        "wiring": st.text(max_size=6).filter(lambda s: s not in ("stack", "skip")),
        "dropout": st.one_of(st.floats(1, 10), st.floats(-10, -0.01), st.just(float("nan"))),
        "recurrent_dropout": st.one_of(st.floats(1, 10), st.just(float("nan")), st.text()),
        "zoneout": st.one_of(st.floats(1.01, 5), st.lists(st.floats(0, 0.5), min_size=3)),
        "between": st.text(min_size=1, max_size=6).filter(lambda s: s not in BETWEEN_ACTIVATIONS),
        "outputs": st.text(max_size=6).filter(lambda s: s not in ("top", "all")),
        "residual": st.one_of(st.text(min_size=1, max_size=3), st.integers(0, 2)),
        "bidirectional": st.one_of(st.text(min_size=1, max_size=3), st.integers(0, 2)),
        "layer_norm": st.one_of(st.text(min_size=1, max_size=3), st.integers(0, 2)),
    }  # fmt: skip
    name = draw(st.sampled_from(sorted(wrong)))
    config[name] = draw(wrong[name])
    if name == "num_layers" and isinstance(config["hidden_size"], list):
        config["hidden_size"] = config["hidden_size"][0]  # let num_layers itself be the fault
    return lambda: DeepRNN(**config)


def nan_at(x: torch.Tensor, where: int, value: float) -> torch.Tensor:
    x = x.clone()
    x.view(-1)[where % x.numel()] = value
    return x


@st.composite
def bad_inputs(draw):
    """A valid network called with one wrong input."""
    config, x, lengths, _ = draw(cases())
    batch, time, features = x.shape
    wrong = draw(st.sampled_from([
        "rank", "features", "dtype", "nan", "empty-time", "lengths-range", "lengths-float",
        "lengths-count", "not-tensor", "state",
    ]))  # fmt: skip
    where = draw(st.integers(0, 10_000))
    if wrong == "rank":
        x = x.reshape(batch * time, features) if draw(st.booleans()) else x.unsqueeze(0)
    elif wrong == "features":
        x = torch.zeros(batch, time, features + draw(st.integers(1, 3)))
    elif wrong == "dtype":
        x = x.to(draw(st.sampled_from([torch.int64, torch.float64, torch.float16, torch.bool])))
    elif wrong == "nan":
        x = nan_at(x, where, draw(st.sampled_from([float("nan"), float("inf"), -float("inf")])))
    elif wrong == "empty-time":
        x = x[:, :0]
    elif wrong == "lengths-range":
        lengths = torch.randint(0, time + 1, (batch,))
        lengths[where % batch] = draw(st.one_of(st.integers(time + 1, time + 50),
                                                st.integers(-50, -1)))  # fmt: skip
    elif wrong == "lengths-float":
        lengths = torch.full((batch,), 1.0)
    elif wrong == "lengths-count":
        lengths = torch.ones(batch + draw(st.integers(1, 3)), dtype=torch.long)
    elif wrong == "not-tensor":
        x = draw(st.sampled_from([x.tolist(), x.numpy(), None, "x"]))
    state = None
    if wrong == "state":
        state = draw(st.sampled_from(["h", [], [torch.zeros(batch + 1, 99)] * 3]))
    torch.manual_seed(0)
    net = DeepRNN(**config)
    return lambda: net(x, state=state, lengths=lengths)


def check_raises_ours(call, success_allowed: bool = False) -> None:
    """`call()` raises one of our error types (or, when allowed, nothing), within 20 s."""
    with time_limit(20):
        try:
            call()
        except Exception as err:  # noqa: BLE001 - the point is to see what escapes
            assert ours(err), f"{type(err).__module__}.{type(err).__name__}: {err}"
        else:
            if not success_allowed:
                pytest.fail("no error was raised")


def test_invalid_networks_raise_our_errors():
    seen = []

    @settings(max_examples=100, **FUZZ)
    @given(call=bad_arguments())
    def check(call):
        seen.append(1)
        check_raises_ours(call)

    check()
    assert len(seen) >= 100


def test_invalid_inputs_raise_our_errors():
    seen = []

    @settings(max_examples=100, **FUZZ)
    @given(call=bad_inputs())
    def check(call):
        seen.append(1)
        check_raises_ours(call)

    check()
    assert len(seen) >= 100
