"""Graphs written by other tools and nir versions: what nir 1.0.8 reads (nir 0.x files included) is simulated
exactly, populations with per-neuron (heterogeneous) parameters included, in float and in fixed point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest
import torch

from converters.nir_executor import run_graph
from converters.nir_io import read_graph
from converters.nir_to_lava import ConvChain, plan_graph
from converters.quantize import quantize_plan, simulate_fixed
from hardware_targets.lava_sim import simulate_graph
from pipeline.cli import main
from iemf_neuro.errors import UserError

DT = 1e-3


def write_nir0(path, version: str, rng: np.random.Generator) -> None:
    """A file laid out as nir 0.1/0.2 wrote them (Input/Output carry ``shape``, no ``input_type``), like the
    NIR paper's LIF, Braille-RNN and CNN graphs: Input(3) -> Linear -> LIF(4) -> Affine -> LIF(2) -> Output."""
    nodes = {
        "in": {"type": "Input", "shape": np.array([3])},
        "lin": {"type": "Linear", "weight": rng.uniform(0, 1, (4, 3))},
        "lif1": {"type": "LIF", "tau": np.full(4, 0.01), "r": np.full(4, 10.0), "v_leak": np.zeros(4),
                 "v_threshold": np.ones(4)},
        "fc": {"type": "Affine", "weight": rng.uniform(0, 1.5, (2, 4)), "bias": np.full(2, 0.05)},
        "lif2": {"type": "LIF", "tau": np.full(2, 0.02), "r": np.full(2, 10.0), "v_leak": np.zeros(2),
                 "v_threshold": np.ones(2)},
        "out": {"type": "Output", "shape": np.array([2])},
    }
    edges = [("in", "lin"), ("lin", "lif1"), ("lif1", "fc"), ("fc", "lif2"), ("lif2", "out")]
    text = h5py.string_dtype()
    with h5py.File(path, "w") as f:
        f.create_dataset("version", data=version, dtype=text)
        graph = f.create_group("node")
        graph.create_dataset("type", data="NIRGraph", dtype=text)
        graph.create_dataset("edges", data=np.array(edges, dtype=object), dtype=text)
        for name, fields in nodes.items():
            group = graph.create_group(f"nodes/{name}")
            for key, value in fields.items():
                group.create_dataset(key, data=value, dtype=text if key == "type" else None)


@pytest.mark.parametrize("version", ["0.1.1", "0.2.0"])
def test_nir0_files_are_read_and_simulated_spike_for_spike(tmp_path, version):
    path = tmp_path / "old.nir"
    write_nir0(path, version, np.random.default_rng(0))
    graph = read_graph(path)
    inputs = {"in": (np.random.default_rng(1).random((3, 30, 3)) < 0.5).astype(np.float64)}
    lava = simulate_graph(graph, inputs, dt=DT, progress=False)
    ref = run_graph(graph, {"in": torch.from_numpy(inputs["in"])}, dt=DT)
    for layer in ("lif1", "lif2"):
        assert lava.spikes[layer].sum() > 0, f"{layer} never spikes: the comparison would be vacuous"
        np.testing.assert_array_equal(lava.spikes[layer], ref.spikes[layer].numpy().astype(np.uint8), err_msg=layer)


def test_simulate_cli_takes_a_nir0_file(tmp_path, capsys):
    write_nir0(tmp_path / "old.nir", "0.2.0", np.random.default_rng(2))
    np.savez(tmp_path / "x.npz", **{"in": (np.random.default_rng(3).random((2, 20, 3)) < 0.5).astype(np.float32)})
    code = main(["simulate", str(tmp_path / "old.nir"), "--inputs", str(tmp_path / "x.npz"), "--steps", "20",
                 "--dt", str(DT), "--out", str(tmp_path / "y.npz"), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    with np.load(tmp_path / "y.npz") as out:
        assert out["out"].shape == (2, 20, 2)


@pytest.mark.parametrize("version", ["2.0.0", "x.1"])
def test_other_nir_versions_are_refused_in_one_line(tmp_path, version):
    write_nir0(tmp_path / "new.nir", version, np.random.default_rng(0))
    with pytest.raises(UserError, match=r"reads files of nir 0\.x and 1\.x") as info:
        read_graph(tmp_path / "new.nir")
    assert "\n" not in str(info.value)


def test_scalar_neuron_parameters_broadcast_over_the_incoming_edge(tmp_path):
    """Sinabs and Norse write one value per parameter, meant for every neuron the edge feeds."""
    rng = np.random.default_rng(4)
    nodes = {"in": nir.Input(input_type=np.array([3])),
             "fc": nir.Affine(weight=rng.uniform(0, 1, (5, 3)), bias=np.zeros(5)),
             "lif": nir.LIF(tau=np.array([0.01]), r=np.array([10.0]), v_leak=np.array([0.0]), v_threshold=np.array([1.0])),
             "out": nir.Output(output_type=np.array([5]))}
    nir.write(tmp_path / "scalar.nir", nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")],
                                                     type_check=False))
    graph = read_graph(tmp_path / "scalar.nir")
    assert all(np.asarray(getattr(graph.nodes["lif"], k)).shape == (5,) for k in ("tau", "r", "v_leak", "v_threshold"))
    inputs = {"in": (rng.random((2, 25, 3)) < 0.5).astype(np.float64)}
    lava = simulate_graph(graph, inputs, dt=DT, progress=False)
    ref = run_graph(graph, {"in": torch.from_numpy(inputs["in"])}, dt=DT)
    assert lava.spikes["lif"].shape == (2, 25, 5) and lava.spikes["lif"].sum() > 0
    np.testing.assert_array_equal(lava.spikes["lif"], ref.spikes["lif"].numpy().astype(np.uint8))


def _lif(n: int, tau: float) -> nir.LIF:
    return nir.LIF(tau=np.full(n, tau), r=np.full(n, 10.0), v_leak=np.zeros(n), v_threshold=np.ones(n))


def test_nested_graphs_are_inlined_and_simulated_exactly(tmp_path):
    """A subgraph (as Spyx writes recurrent cells) entered by its name and by its Input's name, two deep."""
    rng = np.random.default_rng(5)
    cell = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([4])), "lif": _lif(4, 0.02),
                               "rec": nir.Linear(weight=rng.normal(0, 0.3, (4, 4))),
                               "output": nir.Output(output_type=np.array([4]))},
                        edges=[("input", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")], type_check=False)
    block = nir.NIRGraph(nodes={"x": nir.Input(input_type=np.array([4])), "cell": cell,
                                "y": nir.Output(output_type=np.array([4]))},
                         edges=[("x", "cell"), ("cell", "y")], type_check=False)
    outer = nir.NIRGraph(nodes={"in": nir.Input(input_type=np.array([3])),
                                "fc": nir.Linear(weight=rng.uniform(0, 1, (4, 3))), "block": block,
                                "fc2": nir.Affine(weight=rng.uniform(0, 1, (2, 4)), bias=np.zeros(2)),
                                "lif2": _lif(2, 0.01), "out": nir.Output(output_type=np.array([2]))},
                         edges=[("in", "fc"), ("fc", "block.x"), ("block", "fc2"), ("fc2", "lif2"), ("lif2", "out")],
                         type_check=False)
    nir.write(tmp_path / "nested.nir", outer)
    graph = read_graph(tmp_path / "nested.nir")
    assert set(graph.nodes) == {"in", "fc", "block.cell.lif", "block.cell.rec", "fc2", "lif2", "out"}
    assert sorted(graph.edges) == sorted([("in", "fc"), ("fc", "block.cell.lif"), ("block.cell.lif", "block.cell.rec"),
                                          ("block.cell.rec", "block.cell.lif"), ("block.cell.lif", "fc2"),
                                          ("fc2", "lif2"), ("lif2", "out")])
    inputs = {"in": (rng.random((2, 30, 3)) < 0.5).astype(np.float64)}
    lava = simulate_graph(graph, inputs, dt=DT, progress=False)
    ref = run_graph(graph, {"in": torch.from_numpy(inputs["in"])}, dt=DT)
    for layer in ("block.cell.lif", "lif2"):
        assert lava.spikes[layer].sum() > 0, layer
        np.testing.assert_array_equal(lava.spikes[layer], ref.spikes[layer].numpy().astype(np.uint8), err_msg=layer)


def _hetero_lif(rng: np.random.Generator, shape, dt: float) -> nir.LIF:
    """Per-neuron random taus (>= dt), thresholds, r (about the exporters' tau/dt) and v_leak, as a trained
    snnTorch, Spyx or Rockpool population exports them."""
    tau = dt * rng.uniform(1, 12, shape)
    return nir.LIF(tau=tau, r=tau / dt * rng.uniform(0.6, 1.4, shape), v_leak=rng.uniform(-0.1, 0.3, shape),
                   v_threshold=rng.uniform(0.6, 1.4, shape), v_reset=np.zeros(shape))


def _hetero_cuba(rng: np.random.Generator, n: int, dt: float, spiking: bool = True) -> nir.NIRNode:
    tau_syn, tau_mem = dt * rng.uniform(1, 6, n), dt * rng.uniform(1, 16, n)
    common = dict(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt * rng.uniform(0.6, 1.4, n),
                  v_leak=rng.uniform(-0.1, 0.2, n), w_in=tau_syn / dt * rng.uniform(0.6, 1.4, n))
    if not spiking:
        return nir.CubaLI(**common)
    return nir.CubaLIF(**common, v_threshold=rng.uniform(0.6, 1.4, n), v_reset=np.zeros(n))


def heterogeneous_graph(rng: np.random.Generator) -> nir.NIRGraph:
    """in (2,6,6) -conv-> lif (per-neuron tau, r, v_leak, threshold) -conv(stride 2)-> if (shared r, per-neuron
    thresholds: the chain stays a convolution) -flatten-affine-> cuba -linear-> li (CubaLI, per-neuron taus)."""
    conv = dict(input_shape=None, stride=1, padding=1, dilation=1, groups=1)
    nodes = {
        "in": nir.Input(input_type={"input": np.array([2, 6, 6])}),
        "c1": nir.Conv2d(weight=rng.normal(0.05, 0.4, (4, 2, 3, 3)), bias=rng.normal(0.05, 0.05, 4), **conv),
        "lif": _hetero_lif(rng, (4, 6, 6), DT),
        "c2": nir.Conv2d(weight=rng.normal(0.05, 0.3, (3, 4, 3, 3)), bias=np.zeros(3), **{**conv, "stride": 2}),
        "if": nir.IF(r=np.full((3, 3, 3), 1 / DT), v_threshold=rng.uniform(0.5, 1.5, (3, 3, 3)),
                     v_reset=np.zeros((3, 3, 3))),
        "flat": nir.Flatten(input_type={"input": np.array([3, 3, 3])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=rng.normal(0.0, 0.3, (6, 27)), bias=rng.normal(0, 0.05, 6)),
        "cuba": _hetero_cuba(rng, 6, DT),
        "fc2": nir.Linear(weight=rng.normal(0.2, 0.5, (3, 6))),
        "li": _hetero_cuba(rng, 3, DT, spiking=False),
        "out": nir.Output(output_type={"output": np.array([3])}),
    }
    edges = [("in", "c1"), ("c1", "lif"), ("lif", "c2"), ("c2", "if"), ("if", "flat"), ("flat", "fc"),
             ("fc", "cuba"), ("cuba", "fc2"), ("fc2", "li"), ("li", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": DT}, type_check=False)


def heterogeneous_recurrent_graph(rng: np.random.Generator) -> nir.NIRGraph:
    """in (4) -affine-> cuba (8, per-neuron everything) with a recurrent linear -affine-> lif (5, per-neuron)."""
    nodes = {"in": nir.Input(input_type={"input": np.array([4])}),
             "fc": nir.Affine(weight=rng.normal(0.2, 0.6, (8, 4)), bias=rng.normal(0, 0.1, 8)),
             "cuba": _hetero_cuba(rng, 8, DT), "rec": nir.Linear(weight=rng.normal(0, 0.4, (8, 8))),
             "fc2": nir.Affine(weight=rng.normal(0.2, 0.6, (5, 8)), bias=np.zeros(5)),
             "lif": _hetero_lif(rng, 5, DT), "out": nir.Output(output_type={"output": np.array([5])})}
    edges = [("in", "fc"), ("fc", "cuba"), ("cuba", "rec"), ("rec", "cuba"), ("cuba", "fc2"), ("fc2", "lif"),
             ("lif", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": DT}, type_check=False)


@pytest.fixture(scope="module")
def heterogeneous():
    rng = np.random.default_rng(6)
    return heterogeneous_graph(rng), {"in": (rng.random((3, 40, 2, 6, 6)) < 0.3).astype(np.float64)}


def _spiking(graph: nir.NIRGraph) -> list[str]:
    return [n for n, node in graph.nodes.items() if isinstance(node, (nir.LIF, nir.CubaLIF, nir.IF))]


@pytest.mark.parametrize("recurrent", [False, True])
def test_heterogeneous_populations_float_match_the_executor(heterogeneous, recurrent):
    """Per-neuron taus, thresholds, r and v_leak (LIF, CubaLIF, IF, CubaLI; feeding a conv, fed by one, inside a
    cycle): Lava float equals the reference executor spike for spike, and the LI voltage exactly."""
    if recurrent:
        rng = np.random.default_rng(7)
        graph, inputs = heterogeneous_recurrent_graph(rng), {"in": rng.uniform(0, 1.5, (3, 40, 4))}
    else:
        graph, inputs = heterogeneous
    run = simulate_graph(graph, inputs, progress=False)
    ref = run_graph(graph, {"in": torch.from_numpy(inputs["in"])})
    for layer in _spiking(graph):
        assert run.spikes[layer].sum() > 0, f"{layer} never spikes: the comparison would be vacuous"
        np.testing.assert_array_equal(run.spikes[layer], ref.spikes[layer].numpy().astype(np.uint8), err_msg=layer)
    for layer, v in run.voltages.items():
        np.testing.assert_array_equal(v, ref.spikes[layer].numpy(), err_msg=layer)


def test_heterogeneous_populations_fixed_match_simulate_fixed(heterogeneous):
    """Per-neuron 12-bit decays and threshold mantissas: Lava's bit-accurate run equals ``simulate_fixed``."""
    graph, inputs = heterogeneous
    plan = plan_graph(graph)
    assert isinstance({p.dst: p.weight for p in plan.projections}["if"], ConvChain)
    quant = quantize_plan(plan, inputs)
    assert len(set(quant.layers["cuba"].du)) > 1 and len(set(quant.layers["lif"].vth)) > 1
    ours = simulate_fixed(plan, quant, inputs)
    run = simulate_graph(graph, inputs, precision="fixed", progress=False)
    for layer in _spiking(graph):
        assert ours[layer].sum() > 0, f"{layer} never spikes in fixed point"
        np.testing.assert_array_equal(run.spikes[layer], ours[layer].astype(np.uint8), err_msg=layer)
    np.testing.assert_array_equal(run.voltages["li"] * 64 * quant.layers["li"].lam, ours["li"])


def test_uniform_populations_keep_lavas_lif_process():
    """A population whose neurons share du, dv and vth still builds Lava's own LIFReset (one value each); a
    heterogeneous one builds LIFPerNeuron. Lava is imported in a subprocess, as the runner does."""
    code = ("import numpy as np\nfrom cases import recurrent_cuba\nfrom test_nir_foreign import heterogeneous_graph\n"
            "from converters.nir_to_lava import build_network, plan_graph\n"
            "for graph in (recurrent_cuba(np.random.default_rng(0)), heterogeneous_graph(np.random.default_rng(0))):\n"
            "    for name, proc in build_network(plan_graph(graph), 10).neurons.items():\n"
            "        print(name, type(proc).__name__, proc.du.shape, proc.vth.shape)\n")
    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          cwd=tests.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == ["cuba LIFReset (1,) (1,)", "lif LIFPerNeuron (144,) (144,)",
                                        "if LIFPerNeuron (27,) (27,)", "cuba LIFPerNeuron (6,) (6,)",
                                        "li LIVoltage (3,) (3,)"]
