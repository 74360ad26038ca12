"""A tiny network whose energy, latency and core count are worked out by hand below."""

import json

import nir
import numpy as np
import pytest

from hardware_targets.counting import count_graph
from hardware_targets.energy import estimate, nvml_device, nvml_joules_per_inference
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
t_barrier_1tile_s = {value = 100e-9, kind = "assumption", citation = "round number"}
t_barrier_32tiles_s = {value = 410e-9, kind = "assumption", citation = "round number"}
cores_per_chip = {value = 2, kind = "assumption", citation = "round number"}
cores_per_tile = {value = 1, kind = "assumption", citation = "round number"}
neurons_per_core = {value = 2, kind = "assumption", citation = "round number"}
synaptic_memory_bits = {value = 4, kind = "assumption", citation = "round number: 4 one-bit synapses"}
dense_synapse_bits = {value = 1, kind = "assumption", citation = "round number"}
conv_weight_bits = {value = 0, kind = "assumption", citation = "no sharing"}
axon_header_bits = {value = 0, kind = "assumption", citation = "round number"}
max_input_axons = {value = 8, kind = "assumption", citation = "round number"}
max_output_axons = {value = 8, kind = "assumption", citation = "round number"}
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
    # l0: 3 neurons x fan-in 2; a core takes 2 neurons / 4 one-bit synapses -> {0, 1}, {2}: 2 cores.
    # l1: 2 neurons x fan-in 3; one neuron per core (4 synapses) -> 2 cores. 4 cores / 2 per chip = 2 chips.
    assert {n: p.cores for n, p in mapping.layers.items()} == {"l0": 2, "l1": 2}
    assert (mapping.cores_used, mapping.chips_needed, mapping.fits) == (4, 2, True)

    counts = count_graph(graph, inputs, spikes)
    report = estimate(counts, mapping, target)
    # sample 0: l0 ACs 1*3 + 2*3 = 9, l1 ACs 1*2 = 2 -> 11 pJ
    #   updates: l0 active 3+3, l1 active 2+0 -> 8 * 10 = 80 pJ; l1 inactive 0+2 -> 2 * 5 = 10 pJ -> 90 pJ
    #   spike messages: an l0 spike goes to both l1 cores (2), an l1 spike to the host (1): 2 + 1 = 3 * 3 = 9 pJ
    #   dynamic 110 pJ
    # sample 1: l0 ACs 0 + 1*3 = 3, l1 ACs 3*2 = 6 -> 9 pJ
    #   updates: active l0 0+3, l1 0+2 -> 50 pJ; inactive l0 3+0, l1 2+0 -> 25 pJ -> 75 pJ
    #   spike messages 3 * 2 + 1 = 7 * 3 = 21 pJ;  dynamic 105 pJ
    # step time = max over layers (work / cores) + barrier(4 tiles of 1 core) = 100 + 3 * 10 = 130 ns
    #   (a spike's time is per message)
    #   s0 t0: l0 (3*1 + 3*10 + 1*2*2) / 2 = 18.5, l1 (2*1 + 2*10) / 2 = 11 -> 148.5 ns
    #   s0 t1: l0 (6*1 + 3*10) / 2 = 18, l1 (2*5 + 1*2) / 2 = 6 -> 148 ns;  inference 296.5 ns
    #   s1 t0: l0 (3*5) / 2 = 7.5, l1 (2*5) / 2 = 5 -> 137.5 ns
    #   s1 t1: l0 (3*1 + 3*10 + 3*2*2) / 2 = 22.5, l1 (6*1 + 2*10 + 1*2) / 2 = 14 -> 152.5 ns; inference 290 ns
    # static = 1 mW * 2 chips * t: s0 593 pJ, s1 580 pJ;  totals 703 pJ and 685 pJ
    pj = 1e-12
    assert report.components["synaptic_ops"].mean == pytest.approx(10 * pj, rel=1e-12)
    assert report.components["neuron_updates"].mean == pytest.approx(82.5 * pj, rel=1e-12)
    assert report.components["spikes"].mean == pytest.approx(15 * pj, rel=1e-12)
    assert report.core.mean == pytest.approx(107.5 * pj, rel=1e-12)
    assert report.core.std == pytest.approx(2.5 * pj, rel=1e-9)
    assert report.latency_inference_s.mean == pytest.approx(293.25e-9, rel=1e-12)
    assert report.latency_inference_s.std == pytest.approx(3.25e-9, rel=1e-9)
    assert report.components["static"].mean == pytest.approx(586.5 * pj, rel=1e-12)
    assert report.system.mean == pytest.approx(694 * pj, rel=1e-12)
    assert report.system.std == pytest.approx(9 * pj, rel=1e-9)
    assert report.kinds == ["assumption"]
    assert report.system_range.low == report.system_range.high == report.system.mean  # no ranged constant
    assert report.operations["synaptic_ops"].mean == 10 and report.operations["neuron_updates"].mean == 10

    paths = write_reports(tmp_path / "out", {"toy": report}, counts, {"toy": mapping})
    written = json.loads(paths["json"].read_text())["targets"]["toy"]
    assert written["system_range"]["nominal"] == pytest.approx(694 * pj, rel=1e-12)
    assert written["cores_used"] == 4 and written["chips_needed"] == 2
    assert "694 pJ ± 9 pJ" in paths["md"].read_text()


def test_ranges_bracket_the_nominal_and_name_the_dominant_constant(tiny, tmp_path):
    graph, inputs, spikes, _ = tiny
    path = tmp_path / "ranged.toml"
    path.write_text(TARGET.replace('static_power_w = {value = 1e-3,', 'static_power_w = {value = 1e-3, low = 0.5e-3, '
                                   'high = 4e-3,'))
    target = load_target(path)
    counts = count_graph(graph, inputs, spikes)
    report = estimate(counts, map_graph(graph, target), target)
    r = report.system_range
    # static is 586.5 pJ at 1 mW: 293.25 pJ at 0.5 mW, 2346 pJ at 4 mW; dynamic 107.5 pJ either way
    assert (r.low, r.nominal, r.high) == pytest.approx((400.75e-12, 694e-12, 2453.5e-12))
    assert report.core_range.low == report.core_range.high
    assert report.dominant["system"] == [("static_power_w", 1.0)]


def test_ann_levels_from_the_ann_graph_and_the_platform_model(tiny):
    graph, inputs, spikes, _ = tiny
    target = load_target("ann-gpu")
    report = estimate(count_graph(graph, inputs, spikes), map_graph(graph, target), target)
    v = target.value
    # 2*3 + 3*2 = 12 MACs and 12 weights, the same for every sample
    assert report.operations["macs"].mean == 12 and report.operations["weights"].mean == 12
    assert report.core.mean == pytest.approx(12 * v("e_mac_j") + 12 * v("e_weight_read_j")) and report.core.std == 0
    t = v("platform_overhead_s") + 12 * v("platform_s_per_mac")
    assert report.system.mean == pytest.approx((v("platform_idle_power_w") + v("platform_dynamic_power_w")) * t)
    assert report.latency_inference_s.mean == pytest.approx(t) and report.cores_used is None


def test_equivalent_ann_runs_on_the_cpu_and_is_relu_of_the_layers(tiny):
    """The measured-GPU path's network, without CUDA: neurons become ReLUs of their summed inputs."""
    import torch

    from hardware_targets.energy import ann_forward, measure_ann_gpu

    graph = tiny[0]
    x = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    out = ann_forward(graph)({"in": x})["out"]
    expected = torch.relu(torch.relu(x @ torch.ones(2, 3)) @ torch.ones(3, 2))
    assert torch.allclose(out.float(), expected)
    if not torch.cuda.is_available():
        assert measure_ann_gpu(graph, {"in": (2,)}) == ({}, "no CUDA device here: no measured GPU figure "
                                                            "(the system level is the platform model)")


@pytest.mark.parametrize("batch", [1, 64])
def test_nvml_energy_per_inference_runs_whole_batches_for_the_minimum_time(batch):
    """A fake cumulative counter (mJ) and clock: each batch takes 0.3 s and 10 mJ, so a 1 s window runs 4
    batches (0.3, 0.6, 0.9 < 1 s, 1.2 s) and reads 40 mJ; the warm-up batch is outside the window."""
    state = {"mj": 1000.0, "s": 0.0}

    def run_batch():
        state["mj"] += 10.0
        state["s"] += 0.3

    joules = nvml_joules_per_inference(run_batch, batch, lambda: state["mj"], 1.0, lambda: state["s"])
    assert joules == pytest.approx(0.04 / (4 * batch))


@pytest.mark.parametrize("visible, torch_index, nvml", [(None, 1, 1), ("", 0, 0), ("3,1", 0, 3), ("3, 1", 1, 1),
                                                         ("GPU-8d2f,2", 0, "GPU-8d2f")])
def test_torch_device_maps_to_the_nvml_device_through_cuda_visible_devices(visible, torch_index, nvml):
    assert nvml_device(torch_index, visible) == nvml


def too_wide_for_truenorth():
    """A 300 -> 2 dense layer (fan-in 300 > TrueNorth's 256 axons), every input on for 2 steps, 2 samples."""
    wide = nir.NIRGraph(nodes={"in": nir.Input(input_type=np.array([300])), "w": nir.Linear(np.ones((2, 300))),
                               "l": lif(2), "out": nir.Output(output_type=np.array([2]))},
                        edges=[("in", "w"), ("w", "l"), ("l", "out")])
    return wide, count_graph(wide, {"in": np.ones((2, 2, 300), np.uint8)}, {"l": np.zeros((2, 2, 2), np.uint8)})


def test_summary_carries_levels_with_ranges_and_no_figure_for_a_misfit(tiny, tmp_path):
    from hardware_targets.report import energy_summary

    graph, inputs, spikes, _ = tiny
    path = tmp_path / "ranged.toml"
    path.write_text(TARGET.replace('static_power_w = {value = 1e-3,', 'static_power_w = {value = 1e-3, low = 0.5e-3, '
                                   'high = 4e-3,').replace('e_synop_j = {value = 1e-12,',
                                                           'e_synop_j = {value = 1e-12, low = 0.5e-12, high = 3e-12,'))
    toy = load_target(path)
    counts = count_graph(graph, inputs, spikes)
    wide, wide_counts = too_wide_for_truenorth()
    truenorth = load_target("truenorth")
    reports = {"toy": estimate(counts, map_graph(graph, toy), toy),
               "truenorth": estimate(wide_counts, map_graph(wide, truenorth), truenorth)}
    paths = write_reports(tmp_path / "out", reports, counts)
    targets = json.loads(paths["json"].read_text())["targets"]
    toy_summary, tn_summary = energy_summary(targets["toy"]), energy_summary(targets["truenorth"])
    assert toy_summary["fits"] and toy_summary["violations"] == []
    for level in ("core_energy_j", "system_energy_j"):
        assert toy_summary[level]["low"] < toy_summary[level]["nominal"] < toy_summary[level]["high"]
    assert tn_summary["fits"] is False and tn_summary["core_energy_j"] is None and tn_summary["latency_s"] is None
    assert tn_summary["violations"] == ["l: one neuron needs 300 input axons, a core has 256 (1.17x the limit)"]
    assert "does not fit" in paths["md"].read_text()
    assert targets["truenorth"]["system_range"] is None and targets["truenorth"]["components"] is None


def test_a_target_the_network_does_not_fit_gets_no_energy_or_latency_at_all():
    wide, counts = too_wide_for_truenorth()
    target = load_target("truenorth")
    report = estimate(counts, map_graph(wide, target), target)
    assert not report.fits and report.violations
    figures = (report.core, report.system, report.core_range, report.system_range, report.components,
               report.per_layer, report.per_branch, report.latency_step_s, report.latency_inference_s,
               report.latency_range)
    assert all(f is None for f in figures) and report.dominant == {}
    assert report.violations == ["l: one neuron needs 300 input axons, a core has 256 (1.17x the limit)"]
    assert report.operations["synaptic_ops"].mean == 1200  # the counts stay: 300 inputs x 2 targets x 2 steps
