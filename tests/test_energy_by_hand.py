"""A tiny network whose energy, latency and core count are worked out by hand below."""

import json

import nir
import numpy as np
import pytest

from hardware_targets.counting import count_graph
from hardware_targets.energy import estimate
from hardware_targets.mapping import map_graph
from hardware_targets.report import write_reports
from hardware_targets.targets import load_target

TARGET = """
name = "toy"
model = "neuromorphic"
[constants]
e_synop_j = {value = 1e-12, kind = "assumption", citation = "round number"}
e_graded_synop_j = {value = 2e-12, kind = "assumption", citation = "round number"}
e_update_active_j = {value = 10e-12, kind = "assumption", citation = "round number"}
e_update_inactive_j = {value = 5e-12, kind = "assumption", citation = "round number"}
e_spike_j = {value = 3e-12, kind = "assumption", citation = "round number"}
static_power_w = {value = 1e-3, kind = "assumption", citation = "round number"}
t_synop_s = {value = 1e-9, kind = "assumption", citation = "round number"}
t_update_active_s = {value = 10e-9, kind = "assumption", citation = "round number"}
t_update_inactive_s = {value = 5e-9, kind = "assumption", citation = "round number"}
t_spike_s = {value = 2e-9, kind = "assumption", citation = "round number"}
t_barrier_1core_s = {value = 100e-9, kind = "assumption", citation = "round number"}
t_barrier_32cores_s = {value = 410e-9, kind = "assumption", citation = "round number"}
cores_per_chip = {value = 2, kind = "assumption", citation = "round number"}
neurons_per_core = {value = 2, kind = "assumption", citation = "round number"}
synapses_per_core = {value = 4, kind = "assumption", citation = "round number"}
"""


def lif(n):
    return nir.LIF(tau=np.full(n, 8.0), r=np.full(n, 8.0), v_leak=np.zeros(n), v_threshold=np.ones(n))


@pytest.fixture
def tiny(tmp_path):
    """in(2) -Linear-> l0(3) -Linear-> l1(2); N = 2 samples, T = 2 steps, binary input."""
    nodes = {"in": nir.Input(input_type=np.array([2])), "w0": nir.Linear(np.ones((3, 2))), "l0": lif(3),
             "w1": nir.Linear(np.ones((2, 3))), "l1": lif(2), "out": nir.Output(output_type=np.array([2]))}
    edges = [("in", "w0"), ("w0", "l0"), ("l0", "w1"), ("w1", "l1"), ("l1", "out")]
    graph = nir.NIRGraph(nodes=nodes, edges=edges)
    x = np.array([[[1, 0], [1, 1]], [[0, 0], [0, 1]]], dtype=np.uint8)
    s0 = np.array([[[1, 0, 0], [0, 0, 0]], [[0, 0, 0], [1, 1, 1]]], dtype=np.uint8)
    s1 = np.array([[[0, 0], [1, 0]], [[0, 0], [0, 1]]], dtype=np.uint8)
    path = tmp_path / "toy.toml"
    path.write_text(TARGET)
    return graph, {"in": x}, {"l0": s0, "l1": s1}, load_target(path)


def test_cores_energy_latency_match_hand_arithmetic(tiny, tmp_path):
    graph, inputs, spikes, target = tiny
    mapping = map_graph(graph, target)
    # l0: 3 neurons x fan-in 2; a core takes 2 neurons / 4 synapses -> {0, 1}, {2}: 2 cores.
    # l1: 2 neurons x fan-in 3; one neuron per core (4 synapses) -> 2 cores. 4 cores / 2 per chip = 2 chips.
    assert {n: p.cores for n, p in mapping.layers.items()} == {"l0": 2, "l1": 2}
    assert (mapping.cores_used, mapping.chips_needed, mapping.fits_one_chip) == (4, 2, False)

    counts = count_graph(graph, inputs, spikes)
    report = estimate(counts, mapping, target)
    # sample 0: l0 ACs 1*3 + 2*3 = 9, l1 ACs 1*2 = 2 -> 11 pJ
    #   updates: l0 active 3+3, l1 active 2+0 -> 8 * 10 = 80 pJ; l1 inactive 0+2 -> 2 * 5 = 10 pJ -> 90 pJ
    #   spikes 1 + 1 = 2 * 3 = 6 pJ;  dynamic 107 pJ
    # sample 1: l0 ACs 0 + 1*3 = 3, l1 ACs 3*2 = 6 -> 9 pJ
    #   updates: active l0 0+3, l1 0+2 -> 50 pJ; inactive l0 3+0, l1 2+0 -> 25 pJ -> 75 pJ
    #   spikes 3 + 1 = 4 * 3 = 12 pJ;  dynamic 96 pJ
    # step time = max over layers (work / cores) + barrier(4 cores) = 100 + 3 * 10 = 130 ns
    #   s0 t0: l0 (3*1 + 3*10 + 1*2) / 2 = 17.5, l1 (2*1 + 2*10) / 2 = 11 -> 147.5 ns
    #   s0 t1: l0 (6*1 + 3*10) / 2 = 18, l1 (2*5 + 1*2) / 2 = 6 -> 148 ns;  inference 295.5 ns
    #   s1 t0: l0 (3*5) / 2 = 7.5, l1 (2*5) / 2 = 5 -> 137.5 ns
    #   s1 t1: l0 (3*1 + 3*10 + 3*2) / 2 = 19.5, l1 (6*1 + 2*10 + 1*2) / 2 = 14 -> 149.5 ns; inference 287 ns
    # static = 1 mW * 2 chips * t: s0 591 pJ, s1 574 pJ;  totals 698 pJ and 670 pJ
    pj = 1e-12
    assert report.components["synaptic_ops"].mean == pytest.approx(10 * pj, rel=1e-12)
    assert report.components["neuron_updates"].mean == pytest.approx(82.5 * pj, rel=1e-12)
    assert report.components["spikes"].mean == pytest.approx(9 * pj, rel=1e-12)
    assert report.dynamic.mean == pytest.approx(101.5 * pj, rel=1e-12)
    assert report.dynamic.std == pytest.approx(5.5 * pj, rel=1e-9)
    assert report.latency_inference_s.mean == pytest.approx(291.25e-9, rel=1e-12)
    assert report.latency_inference_s.std == pytest.approx(4.25e-9, rel=1e-9)
    assert report.static.mean == pytest.approx(582.5 * pj, rel=1e-12)
    assert report.total.mean == pytest.approx(684 * pj, rel=1e-12)
    assert report.total.std == pytest.approx(14 * pj, rel=1e-9)
    assert report.kinds == ["assumption"]

    paths = write_reports(tmp_path / "out", {"toy": report}, counts, {"toy": mapping})
    written = json.loads(paths["json"].read_text())["targets"]["toy"]
    assert written["total"]["mean"] == pytest.approx(684 * pj, rel=1e-12)
    assert written["cores_used"] == 4 and written["chips_needed"] == 2
    assert "6.84e-10 ± 1.4e-11 J" in paths["md"].read_text()


def test_ann_reference_is_dense_macs_once(tiny):
    graph, inputs, spikes, _ = tiny
    target = load_target("ann-gpu")
    report = estimate(count_graph(graph, inputs, spikes), map_graph(graph, target), target)
    # 2*3 + 3*2 = 12 MACs x 4.6 pJ, the same for every sample; no latency model
    assert report.total.mean == pytest.approx(12 * 4.6e-12, rel=1e-12) and report.total.std == 0
    assert report.latency_inference_s is None and report.kinds == ["arithmetic-only"]


def test_truenorth_fan_in_limit_is_reported():
    target = load_target("truenorth")
    big = nir.NIRGraph(nodes={"in": nir.Input(input_type=np.array([300])), "w": nir.Linear(np.ones((2, 300))),
                              "l": lif(2), "out": nir.Output(output_type=np.array([2]))},
                       edges=[("in", "w"), ("w", "l"), ("l", "out")])
    mapping = map_graph(big, target)
    assert not mapping.fits_one_chip
    assert any("fan-in 300 exceeds" in v for v in mapping.violations)
