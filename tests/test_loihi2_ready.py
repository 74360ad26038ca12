"""The hardware-ready build (only processes Loihi 2 runs on chip) against the simulation build, spike for spike."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch
from cases import assert_one_line_error, conv_pool_if, lif, recurrent_cuba, run_cli, unequal_merge

from converters.loihi2_ready import lava_kernel, ready_plan, single_conv
from converters.model_to_nir import export_model
from converters.nir_semantics import METADATA_KEY
from converters.nir_to_lava import ConvChain, ConvOp, plan_graph
from converters.quantize import quantize_plan
from hardware_targets.lava_sim import simulate_graph
from iemf_neuro.errors import UserError
from iemf_neuro.models import build_model, get_model_config


def graph_inputs(graph: nir.NIRGraph, samples: int, steps: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: rng.uniform(0, 1.5, (samples, steps, *np.atleast_1d(node.input_type["input"])))
            for n, node in graph.nodes.items() if isinstance(node, nir.Input)}


def assert_same_run(graph, inputs, precision, allow_host=False):
    """Both builds, every layer's spikes and every LI voltage equal; returns the ready run's deployment."""
    sim = simulate_graph(graph, inputs, precision, progress=False)
    ready = simulate_graph(graph, inputs, precision, progress=False, build="loihi2-ready", allow_host=allow_host)
    for name, spikes in sim.spikes.items():
        assert spikes.sum() > 0, f"{name} never spikes: the comparison would be vacuous"
        np.testing.assert_array_equal(ready.spikes[name], spikes, err_msg=name)
    for name, v in sim.voltages.items():
        np.testing.assert_array_equal(ready.voltages[name], v, err_msg=name)
    assert sim.deployment == {"build": "simulation"}
    return ready.deployment


@pytest.mark.parametrize("make,precision", [(conv_pool_if, "fixed"), (unequal_merge, "fixed")])
def test_foreign_graphs_run_on_chip_processes_only(make, precision):
    graph = make(np.random.default_rng(1))
    deployment = assert_same_run(graph, graph_inputs(graph, 3, 9), precision)
    assert deployment["host"] == {}
    kinds = set(deployment["on_chip"].values())
    assert kinds <= {"LIFReset", "LIFReset (v probed)", "Conv", "Dense", "Sparse", "DelayDense",
                     "Dense/Sparse (composed chain)"}
    if make is unequal_merge:  # the shallow branch's delay line became synaptic delays, the LI readout a probe
        assert deployment["on_chip"]["v1->m"] == "DelayDense" and deployment["on_chip"]["li"] == "LIFReset (v probed)"


def test_iemf_cnn_builds_on_chip_in_fixed_point():
    """The avdigits-cnn architecture (convolutions, pool + conv chains, pool + flatten + linear fusion)."""
    torch.manual_seed(0)
    cfg = get_model_config("avdigits-cnn")
    model = build_model(cfg).eval()
    with torch.no_grad():  # an untrained network's deeper layers are nearly silent: make every layer spike
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                module.weight.mul_(3.0)
    graph = export_model(model, cfg)
    deployment = assert_same_run(graph, graph_inputs(graph, 2, 6), "fixed")
    assert deployment["host"] == {}
    assert deployment["on_chip"]["audio->audio.0"] == "Conv" and deployment["on_chip"]["audio.0->audio.1"] == "Conv"


def test_what_has_no_on_chip_form_is_refused_or_kept_on_the_host():
    graph = recurrent_cuba(np.random.default_rng(1))
    plan = plan_graph(graph)
    with pytest.raises(UserError, match=r"cuba->cuba cannot run on Loihi 2: recurrent.*--allow-host"):
        ready_plan(plan)
    fixed = ready_plan(plan, "fixed", quantize_plan(plan, graph_inputs(graph, 2, 5)), allow_host=True)
    assert {h.process for h in fixed.host} == {"cuba->cuba", "in->cuba"}  # recurrence; bias into a current state
    deployment = assert_same_run(graph, graph_inputs(graph, 3, 9), "float", allow_host=True)
    assert set(deployment["host"]) == {"cuba->cuba", "in->cuba"} and deployment["on_chip"] == {"cuba": "LIFReset"}


def test_sum_pools_fold_into_one_strided_convolution():
    rng = np.random.default_rng(0)
    pool = ConvOp(np.ones((3, 1, 2, 2)), (3, 8, 8), (2, 2), (0, 0), (1, 1), 3)
    conv = ConvOp(rng.normal(size=(4, 3, 3, 3)), (3, 4, 4), (1, 1), (1, 1), (1, 1), 1)
    chain = ConvChain([pool, conv], 1, 3 * 64, 4 * 16)
    one = single_conv(chain)
    assert one.weight.shape == (4, 3, 6, 6) and one.stride == (2, 2) and one.padding == (2, 2)
    x = rng.integers(0, 2, (5, 3 * 64)).astype(np.float64)
    folded = ConvChain([one], 0, 3 * 64, 4 * 16)
    np.testing.assert_allclose(folded.apply(x), chain.apply(x), rtol=0, atol=1e-12)
    assert lava_kernel(one.weight).shape == (4, 6, 6, 3)
    overlapping = ConvChain([ConvOp(np.ones((3, 1, 2, 2)), (3, 8, 8), (1, 1), (0, 0), (1, 1), 3), conv], 1, 192, 64)
    assert single_conv(overlapping) is None  # composed into a matrix instead


def test_cli_builds_hardware_ready_or_refuses_in_one_line(tmp_path):
    graph = recurrent_cuba(np.random.default_rng(1))
    nir.write(tmp_path / "g.nir", graph)
    np.savez(tmp_path / "x.npz", **graph_inputs(graph, 2, 5))
    argv = ["simulate", str(tmp_path / "g.nir"), "--inputs", str(tmp_path / "x.npz"), "--steps", "5",
            "--out", str(tmp_path / "y.npz"), "--no-progress", "--build", "loihi2-ready"]
    code, err = run_cli(argv)
    assert_one_line_error(code, err)
    assert "cuba->cuba cannot run on Loihi 2" in err and not (tmp_path / "y.npz").exists()
    code, err = run_cli(argv + ["--allow-host"])
    assert code == 0, err
    with np.load(tmp_path / "y.npz") as out:
        meta = json.loads(str(out["meta"]))
    assert meta["deployment"]["on_chip"] == {"cuba": "LIFReset"} and set(meta["deployment"]["host"]) == {
        "cuba->cuba", "in->cuba"}


def flat_conv_graph() -> nir.NIRGraph:
    """Conv2d -> Flatten -> a flat LIF population: the convolution's output is not the target's (C, H, W)."""
    rng = np.random.default_rng(0)
    n = 2 * 4 * 4
    return nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([1, 4, 4])}),
        "conv": nir.Conv2d(input_shape=(4, 4), weight=rng.normal(0, 1, (2, 1, 3, 3)), stride=1, padding=1,
                           dilation=1, groups=1, bias=np.full(2, 0.1)),
        "flat": nir.Flatten(start_dim=0, end_dim=-1, input_type={"input": np.array([2, 4, 4])}),
        "lif": lif(n), "out": nir.Output(output_type={"output": np.array([n])}),
    }, edges=[("in", "conv"), ("conv", "flat"), ("flat", "lif"), ("lif", "out")], metadata={"dt": 1.0})


def test_a_convolution_into_a_flat_population_becomes_a_matrix():
    graph = flat_conv_graph()
    ready = ready_plan(plan_graph(graph))
    assert ready.on_chip["in->lif"] == "Dense/Sparse (composed chain)" and ready.shapes["lif"] == (32,)
    assert_same_run(graph, graph_inputs(graph, 2, 5), "float")


def test_a_trained_scale_that_would_clip_a_bias_is_refused():
    graph = flat_conv_graph()
    record = {"fixed_point": {"input_scale": {"in": 127.0},
                              "layers": {"lif": {"lam": 2.0**16, "weight_exp": {"in": 0}}}}}
    graph.metadata[METADATA_KEY] = json.dumps(record)
    with pytest.raises(UserError, match="13-bit bias mantissa"):
        quantize_plan(plan_graph(graph), graph_inputs(graph, 2, 5))
