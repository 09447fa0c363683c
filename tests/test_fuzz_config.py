"""Property-based tests of the config loader: valid RunConfig / DataConfig mappings load and
round-trip; any invalid key, type or value raises ConfigError naming the key path; random
YAML text and `--set` overrides never escape as anything but ConfigError."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from deeprnn import runs
from deeprnn.config import RUN_TASKS, DataConfig, RunConfig
from deeprnn.config_io import ConfigError, apply_overrides, from_dict, read_yaml, to_dict
from tests.test_fuzz_model import FUZZ, ours, time_limit

names = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=12)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.floats(), names)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(names, inner, max_size=3), max_leaves=6)  # fmt: skip
ENCODINGS = ["utf-8", "latin-1", "cp1252", "utf-16", "ascii"]


@st.composite
def data_sections(draw) -> dict:
    section = {"dataset" if draw(st.booleans()) else "path": draw(names)}
    optional = {
        "column": st.one_of(st.none(), names),
        "target": st.one_of(st.none(), names),
        "encoding": st.sampled_from(ENCODINGS),
        "test_size": st.one_of(st.floats(1e-3, 0.99), st.integers(1, 1000)),
        "season": st.integers(1, 400),
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), unique=True)):
        section[key] = draw(optional[key])
    return section


@st.composite
def run_configs(draw) -> dict:
    reserved = set(runs.RESERVED_MODEL_KEYS)
    model = draw(st.dictionaries(names.filter(lambda k: k not in reserved), values, max_size=4))
    config = {"task": draw(st.sampled_from(RUN_TASKS)), "data": draw(data_sections())}
    if draw(st.booleans()):
        config["model"] = model
    if draw(st.booleans()):
        config["run_dir"] = draw(st.one_of(st.none(), names))
    if draw(st.booleans()):
        config["samples"] = draw(st.integers(0, 20))
    return config


@settings(max_examples=60, **FUZZ)
@given(raw=run_configs())
def test_valid_configs_load_and_round_trip(raw):
    cfg = runs.load_config(None, data=copy.deepcopy(raw))
    assert isinstance(cfg, RunConfig) and isinstance(cfg.data, DataConfig)
    assert from_dict(RunConfig, to_dict(cfg)) == cfg
    assert cfg.task == raw["task"] and cfg.model == raw.get("model", {})


# ---- invalid configs -----------------------------------------------------------------------

FIELD_TYPES = {  # a value of the wrong type for each field
    ("task",): st.one_of(st.integers(), st.lists(names, max_size=2), st.none(), st.booleans()),
    ("samples",): st.one_of(names, st.floats(), st.booleans(), st.lists(st.integers())),
    ("run_dir",): st.one_of(st.integers(), st.floats(), st.lists(names, min_size=1)),
    ("model",): st.one_of(names, st.integers(), st.lists(st.integers())),
    ("data",): st.one_of(names, st.integers(), st.none(), st.lists(names)),
    ("data", "test_size"): st.one_of(names, st.booleans(), st.lists(st.floats())),
    ("data", "season"): st.one_of(names, st.floats(), st.booleans()),
    ("data", "encoding"): st.one_of(st.integers(), st.none(), st.lists(names)),
    ("data", "column"): st.one_of(st.integers(), st.floats(), st.lists(names, min_size=1)),
}
OUT_OF_RANGE = {
    ("task",): names.filter(lambda t: t not in RUN_TASKS),
    ("samples",): st.integers(-100, -1),
    ("data", "test_size"): st.one_of(st.floats(-1e9, 0), st.sampled_from([float("inf"),
                                                                          float("nan")])),
    ("data", "season"): st.integers(-100, 0),
    ("data", "encoding"): names.filter(lambda e: e.lower() not in ("utf-8", "utf8", "latin-1")),
}  # fmt: skip


def put(config: dict, path: tuple[str, ...], value) -> None:
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


@st.composite
def bad_configs(draw):
    config = draw(run_configs())
    wrong = draw(st.sampled_from(["type", "range", "unknown", "missing", "data-source",
                                  "reserved", "top-level"]))  # fmt: skip
    if wrong == "type":
        path = draw(st.sampled_from(sorted(FIELD_TYPES)))
        put(config, path, draw(FIELD_TYPES[path]))
    elif wrong == "range":
        path = draw(st.sampled_from(sorted(OUT_OF_RANGE)))
        value = draw(OUT_OF_RANGE[path])
        if path == ("data", "encoding"):
            try:
                import codecs

                codecs.lookup(value)
                value = value + "-no-such-codec"
            except LookupError:
                pass
        put(config, path, value)
    elif wrong == "unknown":
        where = config if draw(st.booleans()) else config["data"]
        known = {f for f in (RunConfig.__dataclass_fields__ if where is config
                             else DataConfig.__dataclass_fields__)}  # fmt: skip
        where[draw(names.filter(lambda k: k not in known))] = draw(values)
    elif wrong == "missing":
        del config[draw(st.sampled_from(["task", "data"]))]
    elif wrong == "data-source":
        if draw(st.booleans()):
            config["data"]["dataset"] = config["data"]["path"] = "x"
        else:
            config["data"].pop("dataset", None)
            config["data"].pop("path", None)
    elif wrong == "reserved":
        config.setdefault("model", {})[draw(st.sampled_from(sorted(runs.RESERVED_MODEL_KEYS)))] = 1
    else:
        config = draw(st.one_of(st.lists(scalars, max_size=3), scalars))
    return config


def run_corpus(strategy, examples: int, check) -> None:
    seen = []

    @settings(max_examples=examples, **FUZZ)
    @given(case=strategy)
    def check_case(case):
        seen.append(1)
        with time_limit(10):
            check(case)

    check_case()
    assert len(seen) >= examples


def test_invalid_configs_raise_config_errors_with_the_key_path():
    def check(raw):
        with pytest.raises(ConfigError) as info:
            runs.load_config(None, data=raw)
        assert str(info.value).split(":")[0]  # starts with the key path (or "config")

    run_corpus(bad_configs(), 120, check)


@st.composite
def random_mappings(draw):
    cls = draw(st.sampled_from([RunConfig, DataConfig]))
    fields = sorted(cls.__dataclass_fields__)
    keys = st.one_of(st.sampled_from(fields), names)
    return cls, draw(st.dictionaries(keys, values, max_size=5))


def test_random_mappings_either_load_or_raise_config_errors():
    def check(case):
        cls, raw = case
        try:
            obj = from_dict(cls, raw)
        except Exception as err:  # noqa: BLE001 - the point is to see what escapes
            assert isinstance(err, ConfigError), f"{type(err).__name__}: {err}"
        else:
            assert isinstance(obj, cls)

    run_corpus(random_mappings(), 60, check)


def test_random_yaml_text_and_overrides_raise_only_config_errors():
    texts = st.one_of(st.text(max_size=80),
                      st.lists(st.sampled_from(["task:", " forecast", "\n", "data:", "  ", "- ",
                                                "[", "{", "}", "]", ":", "&a", "*a", "!!python/",
                                                "'", '"', "model:", "?", "%YAML", "\t"]),
                               max_size=20).map("".join))  # fmt: skip
    overrides = st.lists(st.text(max_size=20), max_size=3)

    def check(case):
        text, sets = case
        path = Path(tempfile.mkdtemp()) / "c.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            raw = read_yaml(path)
            runs.load_config(None, sets, data=raw)
        except Exception as err:  # noqa: BLE001
            assert ours(err), f"{type(err).__module__}.{type(err).__name__}: {err}"
        finally:
            path.unlink()
            path.parent.rmdir()
        try:
            apply_overrides({}, sets)
        except Exception as err:  # noqa: BLE001
            assert isinstance(err, ConfigError), f"{type(err).__name__}: {err}"

    run_corpus(st.tuples(texts, overrides), 60, check)
