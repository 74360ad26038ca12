"""The spiking fusion gate (``iemf_neuro/models/gate.py``): config, training gradients, NIR export spike for spike,
Lava float spike for spike against snnTorch (the gate path's extra hops equalised by delay lines), Lava fixed point
within the usual small disagreement, and the quantisation-aware forward equal to Lava's fixed-point models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cases import assert_one_line_error, run_cli
from torch import nn

from converters.model_to_nir import compare_with_model, export_model
from converters.nir_to_lava import plan_graph
from converters.quantize import quantize_plan, simulate_fixed
from hardware_targets.lava_sim import simulate_graph
from iemf_neuro.errors import UserError
from iemf_neuro.models import BranchConfig, build_model, encode_inputs, get_model_config, model_config_from_dict
from iemf_neuro.models.reference import fixed_point_reference, reference_spikes
from iemf_neuro.provenance import to_jsonable
from iemf_neuro.training.config import get_run_config

GATED = ("full", "relative", "common")
MLP_AUDIO = BranchConfig("mlp", (16,), (24,))
CNN = {"audio": BranchConfig("cnn", (1, 8, 8), (4, 6)), "seed": 1, "scale": 5.0}  # gate synapses read avgpool+flatten


def gated_net(gate: str, seed: int = 0, scale: float = 3.0, samples: int = 8, fusion: str = "concat",
              audio: BranchConfig = MLP_AUDIO):
    """A small net with ``gate`` whose layers all fire, and its encoded inputs [T, B, ...]."""
    torch.manual_seed(seed)
    cfg = get_model_config("avdigits-mlp", audio=audio, visual=BranchConfig("mlp", (12,), (16,)), fusion_dim=16,
                           num_classes=4, time_steps=6, fusion=fusion, gate=gate)
    net = build_model(cfg).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.mul_(scale)
        net.fusion.bias.normal_(0, 0.3)
    gen = torch.Generator().manual_seed(seed + 1)
    x_a, x_v = encode_inputs(cfg, torch.rand(samples, *audio.input_shape, generator=gen),
                             torch.rand(samples, 12, generator=gen))
    return cfg, net, x_a, x_v


def batch_major(x_a, x_v):
    return {"audio": x_a.transpose(0, 1).double().numpy(), "visual": x_v.transpose(0, 1).double().numpy()}


def assert_all_fire(spikes: dict, layers):
    for layer in layers:
        assert spikes[layer].sum() > 0, f"{layer} never spikes: the comparison would be vacuous"


def test_config_round_trips_and_refuses_bad_gates(tmp_path, guards):
    cfg = get_run_config("avdigits-mlp", overrides=["model.gate=full"]).model
    assert cfg.gate == "full" and model_config_from_dict(to_jsonable(cfg)) == cfg
    assert get_model_config("avdigits-mlp").gate == "none"
    for bad, message in [({"gate": "soft"}, "unknown model.gate='soft'"),
                         ({"gate": "full", "fusion": "film"}, "set model.fusion=concat or sum")]:
        with pytest.raises(UserError, match=message) as err:
            get_model_config("avdigits-mlp", **bad)
        assert "\n" not in str(err.value)
    code, stderr = run_cli(["train", "--out", str(tmp_path / "x"), "--set", "model.gate=soft"])
    assert_one_line_error(code, stderr)
    assert "model.gate" in stderr
    code, stderr = run_cli(["train", "--out", str(tmp_path / "y"), "--method", "ogm-ge", "--set", "model.gate=full"])
    assert_one_line_error(code, stderr)
    assert "OGM-GE" in stderr and not (tmp_path / "y" / "checkpoints").exists()


def test_no_gate_leaves_the_network_as_it_was():
    torch.manual_seed(0)
    plain = build_model(get_model_config("avdigits-mlp"))
    assert plain.fusion.gate is None and list(plain.neurons()) == ["audio.0", "visual.0", "fusion", "output"]
    assert not [k for k in plain.state_dict() if "gate" in k or "relay" in k]


@pytest.mark.parametrize("quant_aware", [False, True])
@pytest.mark.parametrize("gate", GATED)
def test_every_gate_population_trains(gate, quant_aware):
    """Surrogate gradients (quantisation-aware: straight through the fixed-point forward) reach every gate weight."""
    cfg, net, x_a, x_v = gated_net(gate)
    net.train()
    net.quant_aware = quant_aware
    out = net(x_a, x_v, record=True)
    assert set(net.neurons()) == set(out.spikes)
    (out.counts.sum() + sum(v.sum() for v in out.aux_logits.values())).backward()
    for name, p in net.fusion.gate.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("gate, kwargs", [("full", {}), ("relative", {}), ("common", {}), ("full", {"fusion": "sum"}),
                                          ("full", CNN)])
def test_export_reproduces_every_gate_layer(gate, kwargs):
    cfg, net, x_a, x_v = gated_net(gate, **kwargs)
    graph = export_model(net, cfg)
    for dtype in (torch.float32, torch.float64):
        check = compare_with_model(net, graph, x_a, x_v, dtype)
        assert set(check.mismatches) == set(net.neurons())
        assert all(n > 0 for n in check.model_spikes.values()), check.model_spikes
        assert check.mismatches == {layer: 0 for layer in net.neurons()}
    inhibit = [n for n in graph.nodes if n.startswith("fusion.relay.") and ".gate." in n]
    assert gate == "common" or all(np.all(graph.nodes[n].weight <= 0) for n in inhibit)


def test_lava_float_matches_snntorch_spike_for_spike():
    """x_m -> confidence -> gate -> relay is three hops, x_m -> relay one: the delay line of 2 makes them meet."""
    cfg, net, x_a, x_v = gated_net("full")
    graph = export_model(net, cfg)
    plan = plan_graph(graph)
    delays = {(p.src, p.dst): p.delay for p in plan.projections}
    assert delays[("audio.0", "fusion.relay.audio")] == 2 and delays[("fusion.gate.audio", "fusion.relay.audio")] == 0
    reference = float_reference(net, x_a, x_v)
    run = simulate_graph(graph, batch_major(x_a, x_v), progress=False)
    assert_all_fire(reference, net.neurons())
    for layer, spikes in reference.items():
        np.testing.assert_array_equal(run.spikes[layer], spikes.astype(np.uint8), err_msg=layer)


def assert_tracks_float(fixed: dict, reference: dict):
    """The usual small fixed-point disagreement (``test_lava_sim.test_fixed_point_tracks_float``)."""
    for layer, spikes in reference.items():
        agreement = (fixed[layer] == spikes).mean()
        assert agreement > 0.9, f"{layer}: fixed point agrees on only {agreement:.3f} of spike entries"
    predictions = [s["output"].sum(axis=1).argmax(axis=1) for s in (fixed, reference)]
    assert np.mean(predictions[0] == predictions[1]) >= 0.75


def float_reference(net, x_a, x_v) -> dict[str, np.ndarray]:
    return {k: v.transpose(0, 1).numpy() for k, v in reference_spikes(net, x_a, x_v, torch.float64).items()}


@pytest.mark.parametrize("gate", GATED)
def test_range_quantised_gate_tracks_float(gate):
    """A float-trained gated network quantised by range (``simulate_fixed`` equals Lava's fixed-point models)."""
    cfg, net, x_a, x_v = gated_net(gate, seed=1, samples=16)
    plan = plan_graph(export_model(net, cfg))
    inputs = batch_major(x_a, x_v)
    quant = quantize_plan(plan, inputs)
    assert quant.method == "range"
    assert_tracks_float(simulate_fixed(plan, quant, inputs), float_reference(net, x_a, x_v))
    for q in quant.report(plan).values():
        assert q["threshold_rel_error"] < 1e-3
        assert all(p["weight_rel_error"] < 0.02 for p in q["projections"].values())


@pytest.mark.parametrize("gate, kwargs", [("full", {}), ("relative", {}), ("common", {}), ("full", CNN)])
def test_quant_aware_forward_equals_the_fixed_point_plan(gate, kwargs):
    cfg, net, x_a, x_v = gated_net(gate, **kwargs)
    net.quant_aware = True
    forward = {k: v.transpose(0, 1).numpy() for k, v in fixed_point_reference(net, x_a, x_v).items()}
    plan = plan_graph(export_model(net, cfg))
    inputs = batch_major(x_a, x_v)
    quant = quantize_plan(plan, inputs)
    assert quant.method == "trained" and set(forward) == set(net.neurons())
    ours = simulate_fixed(plan, quant, inputs)
    for layer, spikes in forward.items():
        np.testing.assert_array_equal(ours[layer], spikes, err_msg=layer)


def test_lava_fixed_point_equals_the_quant_aware_forward_and_tracks_float():
    cfg, net, x_a, x_v = gated_net("full")
    net.quant_aware = True
    forward = {k: v.transpose(0, 1).numpy() for k, v in fixed_point_reference(net, x_a, x_v).items()}
    run = simulate_graph(export_model(net, cfg), batch_major(x_a, x_v), "fixed", progress=False)
    assert_all_fire(forward, net.neurons())
    for layer, spikes in forward.items():
        np.testing.assert_array_equal(run.spikes[layer], spikes.astype(np.uint8), err_msg=layer)
    assert_tracks_float(run.spikes, float_reference(net, x_a, x_v))
