"""YAML and overrides are validated against the dataclasses; errors name the key path."""

from dataclasses import dataclass, field

import pytest

from deeprnn.config_io import (
    ConfigError,
    apply_overrides,
    from_dict,
    read_yaml,
    to_dict,
    write_yaml,
)


@dataclass(frozen=True)
class Inner:
    lr: float = 0.01
    sizes: tuple[int, ...] = (8,)
    name: str | None = None


@dataclass(frozen=True)
class Outer:
    task: str
    inner: Inner = field(default_factory=Inner)
    flag: bool = False


def test_round_trip(tmp_path):
    cfg = from_dict(Outer, {"task": "x", "inner": {"lr": 1, "sizes": [4, 5]}, "flag": True})
    assert cfg == Outer("x", Inner(1.0, (4, 5)), True)
    assert isinstance(cfg.inner.lr, float)
    path = write_yaml(cfg, tmp_path / "c.yaml")
    assert from_dict(Outer, read_yaml(path)) == cfg
    assert to_dict(cfg)["inner"]["sizes"] == [4, 5]


@pytest.mark.parametrize(
    "data, match",
    [
        ({"task": "x", "inner": {"lrr": 0.1}}, r"inner.lrr: unknown key; .* did you mean 'lr'\?"),
        ({"task": "x", "inner": {"lr": "fast"}}, r"inner.lr: expected float, got str 'fast'"),
        ({"task": "x", "inner": {"sizes": [4, "a"]}}, r"inner.sizes\[1\]: expected int"),
        ({"task": "x", "inner": {"name": 3}}, r"inner.name: expected str or None, got int 3"),
        ({"task": "x", "flag": "yes please"}, r"flag: expected true or false"),
        ({"task": "x", "inner": [1]}, r"inner: expected a mapping"),
        ({}, r"config: missing required key\(s\) \['task'\]"),
    ],
)
def test_errors_name_the_key_path(data, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(Outer, data)


def test_yaml_syntax_error_has_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("task: x\ninner:\n  lr: [1, 2\n")
    with pytest.raises(ConfigError, match=r"YAML syntax error at line \d+, column \d+"):
        read_yaml(path)
    with pytest.raises(ConfigError, match="does not exist"):
        read_yaml(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        read_yaml(tmp_path / "list.yaml")


def test_overrides():
    data = apply_overrides({"task": "x"}, ["inner.lr=0.5", "inner.sizes=[2, 3]", "flag=true"])
    assert from_dict(Outer, data) == Outer("x", Inner(0.5, (2, 3)), True)
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides({}, ["inner.lr"])
    with pytest.raises(ConfigError, match="task is not a section"):
        apply_overrides({"task": "x"}, ["task.sub=1"])
