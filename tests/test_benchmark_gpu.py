"""benchmarks/gpu.py (speed.py --device cuda) refuses clearly where it cannot measure.

What it measures is checked on CPU tensors in tests/test_kernels_triton.py (the Triton
kernels interpreted); the timings themselves need a GPU."""

import importlib.util
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def _load(name):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_without_a_cuda_device_it_refuses_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    speed = _load("speed")
    assert speed.main(["--device", "cuda", "--quick", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "needs a CUDA device" in err and "torch.cuda.is_available() is False" in err
    assert list(tmp_path.iterdir()) == []


def test_without_triton_it_refuses_and_says_how_to_install(monkeypatch, capsys):
    gpu = _load("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(gpu.triton_path, "available", lambda: False)
    assert gpu.main(["--quick"]) == 2
    assert "pip install 'deeprnn[gpu]'" in capsys.readouterr().err


def test_sizes_and_targets_follow_the_issue():
    gpu = _load("gpu")
    assert gpu.SIZES["large"] == (100, 256, 512, 1024)
    assert set(gpu.speed.SIZES) < set(gpu.SIZES)
    assert gpu.target("lstm", "small") == 1.02
    assert gpu.target("ln_lstm", "medium") == gpu.target("zoneout", "large") == 1.5
    assert gpu.target("recurrent_dropout", "small") is None
