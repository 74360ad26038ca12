"""Fuzzed user inputs through the CLI: ``simulate --inputs`` npz files, ``train --set`` overrides and
``energy --target-file`` files. Each malformed input must end in one ``error: ...`` line and exit 2 before
any heavy work starts (Lava and training are replaced by guards that fail the test if they are reached).
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import nir
import numpy as np
import pytest
import tomli
from hypothesis import given
from hypothesis import strategies as st
from cases import STEPS, TEXT, assert_one_line_error, fuzz, run_cli, simulate_argv, small_graph, small_inputs

from hardware_targets.targets import HERE as TARGETS_DIR


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz_cli")
    nir.write(root / "valid.nir", small_graph())
    return root


# ---------------------------------------------------------------- simulate --inputs X.npz

def _npy_member(header_shape: tuple[int, ...], dtype: str) -> bytes:
    """A .npy whose header declares ``header_shape`` but which carries no data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": header_shape})
    return buf.getvalue()


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


@st.composite
def bad_npz(draw, path: Path) -> str:
    """Write one malformed --inputs file to ``path``; returns its category."""
    good = small_inputs(samples=draw(st.integers(1, 3)))
    kind = draw(st.sampled_from(["missing-key", "extra-key", "wrong-shape", "wrong-steps", "dtype", "nonfinite",
                                 "object", "bytes", "truncated", "huge-header", "empty"]))
    arrays = dict(good)
    name = draw(st.sampled_from(sorted(good)))
    if kind == "missing-key":
        arrays.pop(name)
    elif kind == "extra-key":
        arrays[draw(TEXT.filter(lambda s: s and s not in good and "/" not in s))] = good[name]
    elif kind == "wrong-shape":
        shape = list(good[name].shape)
        axis = draw(st.integers(2, len(shape) - 1))
        shape[axis] += draw(st.integers(1, 3))
        arrays[name] = np.zeros(shape)
    elif kind == "wrong-steps":
        arrays[name] = np.zeros((good[name].shape[0], STEPS + draw(st.integers(1, 5)), *good[name].shape[2:]))
    elif kind == "dtype":
        dtype = draw(st.sampled_from(["complex128", "U3", "S2", "datetime64[s]", "timedelta64[s]"]))
        arrays[name] = np.zeros(good[name].shape, dtype=dtype)
    elif kind == "nonfinite":
        flat = arrays[name].reshape(-1).copy()
        flat[draw(st.integers(0, flat.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        arrays[name] = flat.reshape(good[name].shape)
    elif kind == "object":
        arrays[name] = np.array([{"x": 1}, "y"], dtype=object)
    elif kind == "empty":
        arrays = {k: v[:0] for k, v in good.items()}
    if kind == "object":
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)  # pickled member: np.load(allow_pickle=False) must refuse it
    elif kind == "bytes":
        path.write_bytes(draw(st.binary(max_size=512)))
    elif kind == "truncated":
        _write_npz(path, arrays)
        blob = path.read_bytes()
        path.write_bytes(blob[: draw(st.integers(0, len(blob) - 1))])
    elif kind == "huge-header":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("audio.npy", _npy_member((2**20, 2**20, 6), "<f8"))
            zf.writestr("visual.npy", _npy_member((2**20, 2**20, 1, 4, 4), "<f8"))
    else:
        _write_npz(path, arrays)
    return kind


def test_simulate_refuses_malformed_inputs(workdir, guards):
    seen: dict[str, int] = {}
    out = workdir / "out.npz"

    @fuzz(250)
    @given(st.data())
    def check(data):
        path = workdir / "inputs.npz"
        kind = data.draw(bad_npz(path))
        assert_one_line_error(*run_cli(simulate_argv(workdir / "valid.nir", path, out)))
        assert not out.exists() and not list(workdir.glob(".out.npz.*"))
        seen[kind] = seen.get(kind, 0) + 1

    check()
    print(f"npz inputs: {sum(seen.values())} malformed files refused, by kind {seen}")
    assert sum(seen.values()) >= 200 and len(seen) == 11, seen


def test_inputs_larger_than_memory_are_refused_from_the_header(workdir, guards):
    """An npz whose header declares more data than the machine holds is refused before any data is read."""
    from pipeline.simulate import physical_memory

    path = workdir / "huge.npz"
    n = physical_memory() // (STEPS * 6 * 8) + 1
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("audio.npy", _npy_member((n, STEPS, 6), "<f8"))
    code, err = run_cli(simulate_argv(workdir / "valid.nir", path, workdir / "out.npz"))
    assert_one_line_error(code, err)
    assert "GiB of inputs, more than this machine's" in err, err
    assert path.stat().st_size < 1024


def test_simulate_good_inputs_reach_lava(workdir, guards):
    path = workdir / "good.npz"
    _write_npz(path, small_inputs())
    code, stderr = run_cli(simulate_argv(workdir / "valid.nir", path, workdir / "out.npz"))
    assert code == 1 and "Lava started" in stderr


# ---------------------------------------------------------------- train --set KEY=VALUE

TRAIN_KEYS = {  # key -> values that are wrong for it (type or range)
    "epochs": ["abc", "1.5", "0", "-3", "true", "null", "[1,2]"],
    "batch_size": ["abc", "0", "-1", "2.5", "false", "{}"],
    "eval_batch_size": ["x", "0", "0.5"],
    "lr": ["abc", "nan", "inf", "-1", "0", "[1]", "null"],
    "lr_final_ratio": ["0", "-0.5", "nan", "2", "x"],
    "weight_decay": ["-1", "nan", "x", "[]"],
    "label_smoothing": ["1", "-0.1", "nan", "x"],
    "iemf_gain": ["0", "-2", "nan", "x"],
    "iemf_start": ["-1", "x", "1.5"],
    "iemf_end": ["-1", "x"],
    "ogm_alpha": ["-1", "nan", "x"],
    "ogm_start": ["-1", "x"],
    "seed": ["-1", "x", "1.5", "null"],
    "max_batches": ["0", "-5", "x"],
    "synthetic_size": ["0", "abc"],
    "num_workers": ["-1", "x"],
    "deterministic": ["2", "x", "null"],
    "dataset": ["mnist", "1", "null"],
    "method": ["sgd", "2", "null"],
    "optimizer": ["rmsprop", "null"],
    "neuron_kernel": ["triton", "1", "null"],
    "corruption": ["5", "x", "[1]"],
    "model.time_steps": ["0", "-1", "abc", "2.5"],
    "model.fusion_dim": ["0", "abc"],
    "model.encoding": ["spikes", "1"],
    "model.neuron.beta": ["2", "nan", "-1", "x"],
    "model.neuron.threshold": ["0", "-1", "nan", "x"],
}


@st.composite
def bad_override(draw) -> tuple[str, str]:
    kind = draw(st.sampled_from(["unknown-key", "bad-value", "not-key-value"]))
    if kind == "unknown-key":
        key = draw(st.from_regex(r"\A(model\.)?[a-z_]{1,12}(\.[a-z_]{1,8})?\Z").filter(
            lambda k: k not in TRAIN_KEYS and not k.startswith(("model.audio", "model.visual", "model.neuron"))
            and k not in ("model.num_classes", "model.name", "model.fusion", "dataset", "data_root",
                          "channels_last", "bf16", "ogm_end")))
        return kind, f"{key}=1"
    if kind == "not-key-value":
        return kind, draw(st.sampled_from(["lr", "=3", "", "model.", "lr:3"]))
    key = draw(st.sampled_from(sorted(TRAIN_KEYS)))
    return kind, f"{key}={draw(st.sampled_from(TRAIN_KEYS[key]))}"


def test_train_refuses_bad_overrides(workdir, guards):
    seen: dict[str, int] = {}
    tried = set()

    @fuzz(200)
    @given(bad_override())
    def check(case):
        kind, item = case
        argv = ["train", "--out", str(workdir / "run"), "--quiet", "--set", item]
        assert_one_line_error(*run_cli(argv))
        assert not (workdir / "run").exists()
        seen[kind] = seen.get(kind, 0) + 1
        tried.add(item)

    check()
    print(f"train overrides: {len(tried)} distinct overrides refused, by kind {seen}")
    assert len(tried) >= 100, len(tried)


# ---------------------------------------------------------------- energy --target-file F.toml

def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value == math.inf else "-inf" if value == -math.inf
                                                else repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def to_toml(data: dict) -> str:
    """Top-level scalars, then ``[constants.NAME]`` tables (enough for target files)."""
    lines = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in data.items() if k != "constants"]
    constants = data.get("constants", {})
    if not isinstance(constants, dict):
        lines.append(f"constants = {_toml_value(constants)}")
        constants = {}
    for name, table in constants.items():
        if isinstance(table, dict):
            lines.append(f"[constants.{json.dumps(name)}]")
            lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in table.items()]
        else:
            lines.insert(0, f"constants.{json.dumps(name)} = {_toml_value(table)}")
    return "\n".join(lines) + "\n"


BAD_VALUES = st.one_of(st.sampled_from([-1.0, -1e-12, math.nan, math.inf, -math.inf]), TEXT,
                       st.booleans(), st.lists(st.integers(), max_size=2), st.integers(max_value=-1))


@st.composite
def bad_target(draw) -> tuple[str, str]:
    """(category, file text) of a malformed target file, derived from the built-in loihi2 target."""
    base = tomli.loads((TARGETS_DIR / "loihi2.toml").read_text())
    data = json.loads(json.dumps(base))
    constants = data["constants"]
    name = draw(st.sampled_from(sorted(constants)))
    kind = draw(st.sampled_from(["syntax", "truncated", "unknown-key", "unknown-constant", "constant-not-table",
                                 "constant-fields", "value", "count", "kind", "citation", "model", "name", "base",
                                 "missing-constant"]))
    if kind == "syntax":
        return kind, draw(st.sampled_from(["name = ", "[constants", "= 3", "a = [1,", 'x = "unterminated',
                                           "[[", "a = 1\na = 2"])) + draw(TEXT)
    if kind == "truncated":
        text = to_toml(data)
        return kind, text[: draw(st.integers(1, len(text.rstrip()) - 2))]
    if kind == "unknown-key":
        data[draw(TEXT.filter(lambda k: k and k not in data and k != "base"))] = 1
    elif kind == "unknown-constant":
        constants[draw(st.from_regex(r"\A[a-z_]{1,16}\Z").filter(lambda k: k not in constants))] = \
            dict(constants[name])
    elif kind == "constant-not-table":
        constants[name] = draw(st.one_of(st.floats(allow_nan=False), TEXT))
    elif kind == "constant-fields":
        table = constants[name]
        if draw(st.booleans()):
            table.pop(draw(st.sampled_from(sorted(table))))
        else:
            table[draw(TEXT.filter(lambda k: k and k not in table))] = 1
    elif kind == "value":
        constants[name]["value"] = draw(BAD_VALUES)
    elif kind == "count":
        constants["cores_per_chip"]["value"] = draw(st.sampled_from([0, 0.5, 2.5, -4, 1e-3]))
    elif kind == "kind":
        constants[name]["kind"] = draw(st.one_of(TEXT.filter(lambda k: k not in ("measured", "borrowed", "spec")),
                                                 st.integers()))
    elif kind == "citation":
        constants[name]["citation"] = draw(st.sampled_from(["", "   ", 3, [], False]))
    elif kind == "model":
        data["model"] = draw(st.one_of(TEXT.filter(lambda k: k not in ("neuromorphic", "ann")), st.integers()))
    elif kind == "name":
        data["name"] = draw(st.sampled_from(["", 3, [], False]))
    elif kind == "base":
        data = {"base": draw(TEXT.filter(lambda k: k not in ("loihi1", "loihi2", "truenorth", "ann-gpu",
                                                             "ann_gpu"))), "name": "mine"}
    else:
        constants.pop(name)
    return kind, to_toml(data)


def test_energy_refuses_bad_target_files(workdir, guards):
    seen: dict[str, int] = {}
    tried = set()
    run_dir = workdir / "energy_run"
    run_dir.mkdir()

    @fuzz(250)
    @given(bad_target())
    def check(case):
        kind, text = case
        path = workdir / "target.toml"
        path.write_text(text)
        code, stderr = run_cli(["energy", str(run_dir), "--target-file", str(path)])
        assert_one_line_error(code, stderr)
        # refused for the target file, not for a later step (a bad base names the unknown built-in target)
        assert str(path) in stderr or (kind == "base" and "unknown target" in stderr), stderr
        assert not any(run_dir.iterdir())
        seen[kind] = seen.get(kind, 0) + 1
        tried.add(text)

    check()
    print(f"target files: {len(tried)} distinct files refused, by kind {seen}")
    assert len(tried) >= 200 and len(seen) == 14, seen


def test_energy_good_target_file_gets_past_the_target(workdir, guards):
    run_dir = workdir / "energy_ok"
    run_dir.mkdir()
    path = workdir / "good.toml"
    path.write_text(to_toml(tomli.loads((TARGETS_DIR / "loihi2.toml").read_text())))
    code, stderr = run_cli(["energy", str(run_dir), "--target-file", str(path)])
    assert code == 2 and "model.nir" in stderr and str(path) not in stderr

