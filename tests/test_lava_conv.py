"""Convolutional projections in Lava: weight-sharing ops (not composed matrices), spike for spike with the
reference executor (float) and with ``quantize.simulate_fixed`` (fixed point), residual and two-input merges
aligned."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from converters.nir_executor import run_graph
from converters.nir_to_lava import ConvChain, LinearOp, plan_graph
from converters.quantize import Calibration, quantize_plan, simulate_fixed
from hardware_targets.lava_sim import simulate_graph


def lif(shape, tau=8.0, thr=1.0):
    return nir.LIF(tau=np.full(shape, tau), r=np.full(shape, tau), v_leak=np.zeros(shape),
                   v_threshold=np.full(shape, thr), v_reset=np.zeros(shape))


def conv(rng, out_c, in_c, k, scale, **kw):
    kw = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, **kw}
    return nir.Conv2d(input_shape=None, weight=rng.normal(0.1, scale, (out_c, in_c // kw["groups"], k, k)),
                      bias=rng.normal(0.05, 0.05, out_c), **kw)


def pool(kind, k, stride, padding=0):
    return kind(kernel_size=np.array([k, k]), stride=np.array([stride, stride]), padding=np.array([padding] * 2))


def conv_graph(rng):
    """Two inputs (graded image, binary spikes) through every op the conv mapping knows, with merges of
    unequal depth:

        img -conv(s2,p1)-> l1 (4,5,5)
        img -conv(groups 2, dilation 2, p2)-avgpool 2-> l2 (4,4,4) <-sumpool 2-conv(p1)- spk
        l2 -conv(p1)-> l3 (IF, in_gain 2)
        l3 -conv(p1)-> l4 <- l2 (identity) <- l1 -avgpool(k2, s1, overlapping)-scale 1.5
        l4 -flatten-affine-> l5 <- l3 -avgpool 2-flatten-linear
    """
    if3 = nir.IF(r=np.full((4, 4, 4), 2.0), v_threshold=np.full((4, 4, 4), 1.5), v_reset=np.zeros((4, 4, 4)))
    nodes = {
        "img": nir.Input(input_type={"input": np.array([2, 9, 9])}),
        "spk": nir.Input(input_type={"input": np.array([3, 8, 8])}),
        "c1": conv(rng, 4, 2, 3, 0.5, stride=2, padding=1), "l1": lif((4, 5, 5)),
        "c2": conv(rng, 4, 2, 3, 0.6, padding=2, dilation=2, groups=2), "p2": pool(nir.AvgPool2d, 2, 2),
        "sp": pool(nir.SumPool2d, 2, 2), "c2s": conv(rng, 4, 3, 3, 0.3, padding=1), "l2": lif((4, 4, 4)),
        "c3": conv(rng, 4, 4, 3, 0.4, padding=1), "l3": if3,
        "c4": conv(rng, 4, 4, 3, 0.3, padding=1), "p1": pool(nir.AvgPool2d, 2, 1),
        "s1": nir.Scale(scale=np.full((4, 4, 4), 1.5)), "l4": lif((4, 4, 4)),
        "f4": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0, end_dim=-1),
        "w4": nir.Affine(weight=rng.normal(0.05, 0.3, (5, 64)), bias=rng.normal(0, 0.1, 5)),
        "p3": pool(nir.AvgPool2d, 2, 2),
        "f3": nir.Flatten(input_type={"input": np.array([4, 2, 2])}, start_dim=0, end_dim=-1),
        "w3": nir.Linear(weight=rng.normal(0.1, 0.6, (5, 16))), "l5": lif(5),
        "out": nir.Output(output_type={"output": np.array([5])}),
    }
    edges = [("img", "c1"), ("c1", "l1"), ("img", "c2"), ("c2", "p2"), ("p2", "l2"), ("spk", "sp"), ("sp", "c2s"),
             ("c2s", "l2"), ("l2", "c3"), ("c3", "l3"), ("l3", "c4"), ("c4", "l4"), ("l2", "l4"), ("l1", "p1"),
             ("p1", "s1"), ("s1", "l4"), ("l4", "f4"), ("f4", "w4"), ("w4", "l5"), ("l3", "p3"), ("p3", "f3"),
             ("f3", "w3"), ("w3", "l5"), ("l5", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": 1.0})


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(3)
    graph = conv_graph(rng)
    inputs = {"img": rng.uniform(0, 1, (2, 6, 2, 9, 9)), "spk": (rng.uniform(0, 1, (2, 6, 3, 8, 8)) < 0.3) * 1.0}
    return graph, inputs


def test_conv_projections_store_kernels_not_matrices(case):
    graph, _ = case
    plan = plan_graph(graph)
    by_edge = {(p.src, p.dst): p for p in plan.projections}
    for (src, dst), node in {("img", "l1"): "c1", ("img", "l2"): "c2", ("spk", "l2"): "c2s", ("l2", "l3"): "c3",
                             ("l3", "l4"): "c4"}.items():
        chain = by_edge[src, dst].weight
        assert isinstance(chain, ConvChain), (src, dst)
        assert chain.kernel.shape == graph.nodes[node].weight.shape
    assert isinstance(by_edge["l3", "l5"].weight.ops[-1], LinearOp)  # avgpool - flatten - linear
    np.testing.assert_allclose(by_edge["l3", "l5"].weight.kernel, graph.nodes["w3"].weight / 4)
    np.testing.assert_allclose(by_edge["l1", "l4"].weight.kernel, 1.5 / 4)  # the pool carries the scale
    np.testing.assert_allclose(by_edge["l2", "l3"].weight.kernel, 2 * graph.nodes["c3"].weight)  # in_gain
    assert not isinstance(by_edge["l4", "l5"].weight, ConvChain)  # no conv: a matrix as before
    assert {(p.src, p.dst): p.delay for p in plan.projections if p.delay} == {("l2", "l4"): 1, ("l1", "l4"): 1,
                                                                              ("l3", "l5"): 1}


def test_large_conv_plan_is_kernel_sized():
    """3x64x64 -> 16x32x32: the composed matrix would hold 16384 x 12288 entries; the plan holds the kernel."""
    rng = np.random.default_rng(0)
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([3, 64, 64])}),
        "c": conv(rng, 16, 3, 7, 0.1, stride=2, padding=3), "l": lif((16, 32, 32)),
        "out": nir.Output(output_type={"output": np.array([16, 32, 32])}),
    }, edges=[("in", "c"), ("c", "l"), ("l", "out")], metadata={"dt": 1.0})
    (proj,) = plan_graph(graph).projections
    assert isinstance(proj.weight, ConvChain) and proj.weight.kernel.size == 16 * 3 * 7 * 7
    assert proj.weight.shape == (16 * 32 * 32, 3 * 64 * 64)


def test_conv_graph_float_matches_executor(case):
    graph, inputs = case
    ref = {k: v.numpy() for k, v in run_graph(graph, inputs).spikes.items()}
    run = simulate_graph(graph, inputs, "float", progress=False)
    for layer, spikes in ref.items():
        assert spikes.sum() > 0, f"{layer} never spikes: the comparison would be vacuous"
        np.testing.assert_array_equal(run.spikes[layer], spikes.astype(np.uint8), err_msg=layer)


def test_conv_graph_fixed_matches_simulate_fixed(case):
    graph, inputs = case
    plan = plan_graph(graph)
    ours = simulate_fixed(plan, quantize_plan(plan, inputs), inputs)
    run = simulate_graph(graph, inputs, "fixed", progress=False)
    for layer, spikes in ours.items():
        assert spikes.sum() > 0, f"{layer} never spikes in fixed point"
        np.testing.assert_array_equal(run.spikes[layer], spikes.astype(np.uint8), err_msg=layer)


def test_conv_graph_calibration_runs_on_kernels(case):
    """Calibrated exponents for conv projections: every layer agrees with float at least as well as by range."""
    graph, inputs = case
    plan = plan_graph(graph)
    calibrated = quantize_plan(plan, inputs, Calibration.from_graph(graph, inputs))
    by_range = simulate_fixed(plan, quantize_plan(plan, inputs), inputs)
    reference = Calibration.from_graph(graph, inputs).spikes
    for layer, q in calibrated.layers.items():
        assert q.spike_agreement >= np.mean(by_range[layer] == reference[layer]) - 1e-12, layer


def test_recurrent_conv_float_matches_executor():
    """A convolution inside a cycle: SynapseConv carries step t-1 and drops it at each sample's window start."""
    rng = np.random.default_rng(5)
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([2, 6, 6])}),
        "c": conv(rng, 3, 2, 3, 0.6, padding=1), "l": lif((3, 6, 6)),
        "r": conv(rng, 3, 3, 3, 0.3, padding=1, groups=3),
        "out": nir.Output(output_type={"output": np.array([3, 6, 6])}),
    }, edges=[("in", "c"), ("c", "l"), ("l", "r"), ("r", "l"), ("l", "out")], metadata={"dt": 1.0})
    inputs = {"in": rng.uniform(0, 1, (3, 5, 2, 6, 6))}
    plan = plan_graph(graph)
    assert [isinstance(p.weight, ConvChain) for p in plan.projections if p.recurrent] == [True]
    ref = run_graph(graph, inputs).spikes["l"].numpy()
    assert ref.sum() > 0
    np.testing.assert_array_equal(simulate_graph(graph, inputs, "float", progress=False).spikes["l"],
                                  ref.astype(np.uint8))
