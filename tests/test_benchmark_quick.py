"""benchmarks/speed.py --quick runs end to end and writes its table (seconds, tiny sizes)."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_speed_benchmark_quick_mode_writes_markdown_and_json(tmp_path):
    spec = importlib.util.spec_from_file_location("speed", ROOT / "benchmarks" / "speed.py")
    speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed)
    # --threads 0 leaves torch's thread count alone for the rest of the test session
    assert speed.main(["--quick", "--threads", "0", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "speed_quick.json").read_text())
    assert {r["config"] for r in report["rows"]} == set(speed.CONFIGS)
    assert {r["mode"] for r in report["rows"]} == {"train", "inference"}
    for row in report["rows"]:
        assert row["deeprnn_ms"] > 0 and row["torch_ms"] > 0 and row["ratio_torch"] > 0
        assert row["path"] in ("native", "fused", "loop")
    assert report["machine"]["torch"] and report["machine"]["threads"] >= 1
    assert [r["config"] for r in report["step"]] == ["lstm", "ln_lstm", "zoneout"]
    text = (tmp_path / "speed_quick.md").read_text()
    assert "deeprnn/torch" in text and "zoneout" in text


def test_each_speed_config_is_timed_against_torchs_module_of_its_cell():
    """ln_gru against nn.GRU (not nn.LSTM), of the same sizes, as every config of its cell."""
    spec = importlib.util.spec_from_file_location("speed", ROOT / "benchmarks" / "speed.py")
    speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed)
    size = speed.QUICK_SIZE["tiny"]
    for config in ("ln_gru", "gru", "ln_lstm"):
        net, ref, _ = speed.build(config, size)
        assert type(ref) is speed.TORCH_MODULES[speed.CONFIGS[config]["cell"]]
        assert (ref.input_size, ref.hidden_size, ref.num_layers) == (size[2], size[3], 2)
        assert net.layers[0].cell.kind == speed.CONFIGS[config]["cell"]
    assert speed.TORCH_MODULES["gru"] is speed.nn.GRU and speed.CONFIGS["ln_gru"]["layer_norm"]


def test_lengths_benchmark_quick_mode_writes_markdown_and_json(tmp_path):
    spec = importlib.util.spec_from_file_location("lengths", ROOT / "benchmarks" / "lengths.py")
    lengths = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lengths)
    assert lengths.main(["--quick", "--threads", "0", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "lengths_quick.json").read_text())
    assert [r["config"] for r in report["rows"]] == list(lengths.CONFIGS)
    for row in report["rows"]:
        assert row["padded_ms"] > 0 and row["mid_ratio"] > 0 and row["short_ratio"] > 0
    packed = {r["config"] for r in report["rows"] if r["torch_packed_ratio"] is not None}
    assert packed == {"lstm", "gru", "rnn", "bidirectional"}
    assert "mid / padded" in (tmp_path / "lengths_quick.md").read_text()


def test_latency_benchmark_quick_mode_writes_markdown_and_json(tmp_path):
    spec = importlib.util.spec_from_file_location("latency", ROOT / "benchmarks" / "latency.py")
    latency = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(latency)
    assert latency.main(["--quick", "--threads", "0", "--rows", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "latency_quick.json").read_text())
    assert [r["estimator"] for r in report["rows"]] == list(latency.ESTIMATORS)
    for row in report["rows"]:  # onnxruntime is installed with the export extra
        assert row["deeprnn_ms"] > 0 and row["torch_ms"] > 0 and row["onnx_ms"] > 0
    assert "deeprnn / onnx" in (tmp_path / "latency_quick.md").read_text()
    sweep = report["rows_sweep"]
    cells = ("lstm", "gru", "rnn_tanh")
    assert {(r["cell"], r["threads"]) for r in sweep} == {(c, t) for c in cells for t in (1, 2)}
    assert all(r["torch_ms"] > 0 and r["loop_ms"] > 0 for r in sweep)
    assert "loop / torch" in (tmp_path / "latency_quick.md").read_text()
