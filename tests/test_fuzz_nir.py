"""Fuzzed NIR files: every malformed file ends in one UserError line, never another exception or a hang.

Each test runs a fixed, derandomized number of hypothesis examples (the figures in docs/reliability.md)
and asserts at the end how many distinct malformed files it fed in.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest
from cases import STEPS, TEXT, assert_one_line_error, fuzz, neuron, run_cli, simulate_argv, small_graph, small_inputs
from hypothesis import given
from hypothesis import strategies as st

from converters.nir_io import MAX_ELEMENTS_ENV, read_graph, validate_graph
from iemf_neuro.errors import UserError

@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz_nir")
    nir.write(root / "valid.nir", small_graph())
    np.savez(root / "inputs.npz", **small_inputs())
    return root


def _float_datasets(path: Path) -> list[str]:
    names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) and o.dtype.kind == "f" else None)
    return sorted(names)


def _node_datasets(path: Path) -> list[str]:
    """Every parameter dataset of every node (not its type string or in/out type declarations)."""
    names = []

    def visit(name, obj):
        key = name.rsplit("/", 1)[-1]
        if isinstance(obj, h5py.Dataset) and name.startswith("node/nodes/") and name.count("/") == 3 \
                and key not in ("type", "padding"):
            names.append(name)

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return sorted(names)


def _replace(f: h5py.File, name: str, **kwargs) -> None:
    del f[name]
    f.create_dataset(name, **kwargs)


def _edges(f: h5py.File) -> list[tuple[str, str]]:
    return [(a.decode(), b.decode()) for a, b in f["node/edges"][()]]


def _set_edges(f: h5py.File, edges: list[tuple[str, str]]) -> None:
    _replace(f, "node/edges", data=np.array(edges, dtype=object), dtype=h5py.string_dtype())


# Each mutation: (path of a valid file copy, hypothesis data) -> None; edits the file in place.

def mutate_nonfinite(path: Path, data) -> None:
    name = data.draw(st.sampled_from(_float_datasets(path)).filter(lambda n: n.startswith("node/nodes/")))
    value = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    with h5py.File(path, "r+") as f:
        arr = np.array(f[name][()], dtype=np.float64)
        flat = arr.reshape(-1)
        if flat.size:
            flat[data.draw(st.integers(0, flat.size - 1))] = value
        else:
            arr = np.array(value)
        _replace(f, name, data=arr)


def mutate_dtype(path: Path, data) -> None:
    name = data.draw(st.sampled_from(_node_datasets(path)))
    kind = data.draw(st.sampled_from(["text", "complex", "bytes-array"]))
    with h5py.File(path, "r+") as f:
        arr = np.asarray(f[name][()])
        if kind == "complex":
            _replace(f, name, data=arr.astype(np.complex128) + 1j)
        elif kind == "text":
            _replace(f, name, data=data.draw(TEXT.filter(bool)), dtype=h5py.string_dtype())
        else:
            _replace(f, name, data=np.full(max(arr.size, 1), b"x", dtype="S1"))


def mutate_shape(path: Path, data) -> None:
    """A neuron field, weight or bias gets one more (or one fewer) entry along a random axis."""
    candidates = [n for n in _float_datasets(path) if n.startswith("node/nodes/") and
                  n.rsplit("/", 1)[-1] in ("tau", "tau_mem", "tau_syn", "r", "v_threshold", "v_leak", "v_reset",
                                             "w_in", "weight", "bias")]
    name = data.draw(st.sampled_from(candidates))
    with h5py.File(path, "r+") as f:
        arr = np.asarray(f[name][()])
        axis = data.draw(st.integers(0, max(arr.ndim - 1, 0)))
        grow = data.draw(st.booleans()) or arr.shape[axis] == 1
        arr = np.concatenate([arr, np.take(arr, [0], axis=axis)], axis=axis) if grow else np.delete(arr, 0, axis)
        _replace(f, name, data=arr)


def mutate_type(path: Path, data) -> None:
    node = data.draw(st.sampled_from(sorted(small_graph().nodes)))
    text = data.draw(TEXT.filter(
        lambda s: s not in ("Input", "Output", "Affine", "Linear", "Conv2d", "Flatten", "LIF", "CubaLIF")))
    with h5py.File(path, "r+") as f:
        _replace(f, f"node/nodes/{node}/type", data=text, dtype=h5py.string_dtype())


def mutate_edges(path: Path, data) -> None:
    """Dangling (a node that does not exist), duplicated, or a cycle that passes through no neuron."""
    kind = data.draw(st.sampled_from(["dangling", "duplicate", "self-loop", "synaptic-cycle"]))
    with h5py.File(path, "r+") as f:
        edges = _edges(f)
        names = sorted({n for e in edges for n in e})
        if kind == "dangling":
            ghost = data.draw(TEXT.filter(lambda s: s and "/" not in s and s not in names))
            end = data.draw(st.sampled_from(names))
            edges.insert(data.draw(st.integers(0, len(edges))), (end, ghost) if data.draw(st.booleans())
                         else (ghost, end))
        elif kind == "duplicate":
            edges.append(data.draw(st.sampled_from(edges)))
        elif kind == "self-loop":  # size-preserving synaptic node feeding itself
            edges.append(("fusion.rec", "fusion.rec"))
        else:  # fusion.rec -> fusion.rec through a second 5x5 Linear, no neuron on the loop
            loop = f.create_group("node/nodes/loop")
            loop.create_dataset("type", data="Linear", dtype=h5py.string_dtype())
            loop.create_dataset("weight", data=np.eye(5))
            edges += [("fusion.rec", "loop"), ("loop", "fusion.rec")]
        _set_edges(f, edges)


def mutate_huge(path: Path, data) -> None:
    """A weight declared enormous but stored as nothing (chunked, never written: a few bytes on disk)."""
    name = data.draw(st.sampled_from([n for n in _float_datasets(path) if n.endswith("/weight")]))
    rows = data.draw(st.integers(2**15, 2**24))
    cols = data.draw(st.integers(2**14, 2**20))
    with h5py.File(path, "r+") as f:
        del f[name]
        f.create_dataset(name, shape=(rows, cols), dtype="f8", chunks=(64, 64), compression="gzip")


def mutate_structure(path: Path, data) -> None:
    """Valid HDF5, wrong layout: version missing, numeric or foreign; node group gone; required fields gone."""
    kind = data.draw(st.sampled_from(["no-version", "numeric-version", "foreign-version", "no-node",
                                      "node-dataset", "drop-field", "no-inputs", "no-outputs", "link",
                                      "hard-link-cycle"]))
    with h5py.File(path, "r+") as f:
        if kind == "no-version":
            del f["version"]
        elif kind == "numeric-version":
            _replace(f, "version", data=data.draw(st.floats(allow_nan=True)))
        elif kind == "foreign-version":
            text = data.draw(st.from_regex(r"\A([2-9]|1[0-9])\.[0-9]{1,2}(\.[0-9])?\Z"))  # 0.x and 1.x are read
            _replace(f, "version", data=text, dtype=h5py.string_dtype())
        elif kind == "no-node":
            del f["node"]
        elif kind == "node-dataset":
            del f["node"]
            f.create_dataset("node", data=np.arange(3))
        elif kind == "drop-field":
            name = data.draw(st.sampled_from([n for n in _node_datasets(path) if n.rsplit("/", 1)[-1] in
                                              ("weight", "tau", "tau_mem", "tau_syn", "r", "v_threshold")]))
            del f[name]
        elif kind == "link":
            f["node/nodes/fusion/extra"] = h5py.SoftLink("/version")
        elif kind == "hard-link-cycle":
            f["node/nodes/fusion/loop"] = f["node"]
        else:
            drop = "Input" if kind == "no-inputs" else "Output"
            gone = [k for k in f["node/nodes"] if f[f"node/nodes/{k}/type"][()].decode() == drop]
            for k in gone:
                del f[f"node/nodes/{k}"]
            _set_edges(f, [e for e in _edges(f) if not set(e) & set(gone)])


MUTATIONS = {"nonfinite": mutate_nonfinite, "dtype": mutate_dtype, "shape": mutate_shape, "type": mutate_type,
             "edges": mutate_edges, "huge": mutate_huge, "structure": mutate_structure}


def _fresh(workdir: Path, name: str = "case.nir") -> Path:
    path = workdir / name
    shutil.copyfile(workdir / "valid.nir", path)
    return path


def _expect_user_error(path: Path) -> str:
    with pytest.raises(UserError) as info:
        read_graph(path)
    message = str(info.value)
    assert "\n" not in message and message.strip()
    return message


def test_the_valid_graph_passes(workdir):
    graph = read_graph(workdir / "valid.nir")
    assert set(graph.nodes) == set(small_graph().nodes)
    assert graph.edges == small_graph().edges


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_mutated_graphs_are_refused(workdir, mutation):
    seen = set()

    @fuzz(60)
    @given(st.data())
    def check(data):
        path = _fresh(workdir)
        MUTATIONS[mutation](path, data)
        _expect_user_error(path)
        seen.add(path.read_bytes())

    check()
    print(f"nir {mutation}: {len(seen)} distinct malformed files refused")
    assert len(seen) >= 10, f"only {len(seen)} distinct {mutation} files tried"


def test_truncated_files_are_refused(workdir):
    valid = (workdir / "valid.nir").read_bytes()
    seen = set()

    @fuzz(150)
    @given(st.integers(0, len(valid) - 1))
    def check(cut):
        path = workdir / "cut.nir"
        path.write_bytes(valid[:cut])
        _expect_user_error(path)
        seen.add(cut)

    check()
    print(f"nir truncated: {len(seen)} distinct cut points refused")
    assert len(seen) >= 100


def test_random_bytes_are_refused(workdir):
    signature = b"\x89HDF\r\n\x1a\n"
    seen = set()

    @fuzz(120)
    @given(st.booleans(), st.binary(max_size=2048))
    def check(hdf5_prefix, payload):
        blob = (signature + payload) if hdf5_prefix else payload
        path = workdir / "random.nir"
        path.write_bytes(blob)
        _expect_user_error(path)
        seen.add(blob)

    check()
    print(f"nir random bytes: {len(seen)} distinct blobs refused")
    assert len(seen) >= 100


def test_missing_file_and_directory(workdir):
    assert "does not exist" in _expect_user_error(workdir / "nope.nir")
    assert "not a file" in _expect_user_error(workdir)


def test_element_cap_is_configurable(workdir, monkeypatch):
    monkeypatch.setenv(MAX_ELEMENTS_ENV, "100")
    assert "IEMF_NEURO_MAX_NIR_ELEMENTS" in _expect_user_error(workdir / "valid.nir")
    monkeypatch.setenv(MAX_ELEMENTS_ENV, "lots")
    assert "whole number" in _expect_user_error(workdir / "valid.nir")
    monkeypatch.delenv(MAX_ELEMENTS_ENV)
    assert read_graph(workdir / "valid.nir", limit=10**6).nodes


@pytest.mark.parametrize("case", ["mismatch-affine", "mismatch-neuron", "mismatch-conv", "no-input",
                                  "conv-kernel-too-big", "cycle-two-synapses", "tau-zero", "nested"])
def test_validate_graph_on_graphs_built_in_memory(case):
    graph = small_graph()
    nodes, edges = dict(graph.nodes), list(graph.edges)
    if case == "mismatch-affine":
        nodes["fusion.audio"] = nir.Affine(weight=np.ones((5, 7)), bias=np.zeros(5))
    elif case == "mismatch-neuron":
        nodes["output"] = neuron("lif", (4,))
    elif case == "mismatch-conv":
        nodes["visual.0.syn0"] = nir.Conv2d(input_shape=(4, 4), weight=np.ones((2, 3, 3, 3)), stride=1, padding=1,
                                            dilation=1, groups=1, bias=np.zeros(2))
    elif case == "conv-kernel-too-big":
        nodes["visual.0.syn0"] = nir.Conv2d(input_shape=(4, 4), weight=np.ones((2, 1, 7, 7)), stride=1, padding=0,
                                            dilation=1, groups=1, bias=np.zeros(2))
    elif case == "no-input":
        nodes.pop("audio")
        nodes.pop("visual")
        edges = [e for e in edges if e[0] not in ("audio", "visual")]
    elif case == "cycle-two-synapses":
        nodes["a"], nodes["b"] = nir.Linear(weight=np.eye(5)), nir.Scale(scale=np.ones(5))
        edges += [("fusion", "a"), ("a", "b"), ("b", "a")]
    elif case == "tau-zero":
        nodes["fusion"] = neuron("cuba", (5,), tau=0.0)
    else:
        nodes["inner"] = nir.NIRGraph(nodes={"i": nir.Input(input_type={"input": np.array([5])})}, edges=[],
                                      type_check=False)
        edges.append(("fusion", "inner"))
    with pytest.raises(UserError) as info:
        validate_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    assert "\n" not in str(info.value)


def test_cli_valid_graph_reaches_lava(workdir, guards):
    """The control: with good inputs the CLI gets as far as starting Lava (which the guard stops)."""
    code, stderr = run_cli(simulate_argv(workdir / "valid.nir", workdir / "inputs.npz", workdir / "out.npz"))
    assert code == 1 and "Lava started" in stderr
    assert not (workdir / "out.npz").exists()


def test_cli_refuses_malformed_graphs_in_one_line(workdir, guards):
    seen = set()
    out = workdir / "cli_out.npz"

    @fuzz(140)
    @given(st.sampled_from(sorted(MUTATIONS)), st.data())
    def check(mutation, data):
        path = _fresh(workdir, "cli.nir")
        MUTATIONS[mutation](path, data)
        assert_one_line_error(*run_cli(simulate_argv(path, workdir / "inputs.npz", out)))
        assert not out.exists()
        seen.add(path.read_bytes())

    check()
    print(f"nir via `simulate`: {len(seen)} distinct malformed files refused")
    assert len(seen) >= 100
    code, stderr = run_cli(["--debug"] + simulate_argv(_truncated(workdir), workdir / "inputs.npz", out))
    assert code == 2 and "Traceback" in stderr


def _truncated(workdir: Path) -> Path:
    path = workdir / "half.nir"
    valid = (workdir / "valid.nir").read_bytes()
    path.write_bytes(valid[: len(valid) // 2])
    return path


def test_energy_cli_refuses_malformed_model_nir(workdir):
    """`iemf-neuro energy RUN_DIR` reads RUN_DIR/model.nir: malformed graphs are refused, nothing is written."""
    run = workdir / "energy_run"
    run.mkdir()
    rng = np.random.default_rng(0)
    spikes = {k: (rng.random((2, STEPS, *shape)) < 0.3).astype(np.uint8)
              for k, shape in (("visual.0", (2, 4, 4)), ("fusion", (5,)), ("output", (3,)))}
    np.savez(run / "sim_float.npz", **small_inputs(), **spikes)
    seen = set()

    @fuzz(60)
    @given(st.sampled_from(sorted(MUTATIONS)), st.data())
    def check(mutation, data):
        path = _fresh(workdir, "energy.nir")
        MUTATIONS[mutation](path, data)
        shutil.copyfile(path, run / "model.nir")
        assert_one_line_error(*run_cli(["energy", str(run), "--target", "loihi2"]))
        assert sorted(p.name for p in run.iterdir()) == ["model.nir", "sim_float.npz"]
        seen.add(path.read_bytes())

    check()
    print(f"nir via `energy`: {len(seen)} distinct malformed files refused")
    assert len(seen) >= 40
