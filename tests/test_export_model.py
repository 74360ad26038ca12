"""Export to NIR: round trip, spike-for-spike agreement with snnTorch, gain folding, BatchNorm folding, bad input."""

import dataclasses

import nir
import numpy as np
import pytest
import torch
from torch import nn

from converters.model_to_nir import OUTPUT_NODE, compare_with_model, export_model, split_gain, write_graph
from converters.nir_semantics import graph_dt, graph_metadata
from iemf_neuro.errors import UserError
from iemf_neuro.models import BranchConfig, build_model, encode_inputs, get_model_config
from iemf_neuro.models.build import spread_batchnorm


def spiking_model(name: str, seed: int = 0, scale: float = 4.0, **overrides):
    """Random weights scaled up so every layer fires; a random fusion bias so the bias path is exercised."""
    torch.manual_seed(seed)
    cfg = get_model_config(name, **overrides)
    model = build_model(cfg).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.mul_(scale)
        model.fusion.bias.normal_(0, 0.3)
    return cfg, model


def inputs(cfg, batch: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return encode_inputs(cfg, torch.rand(batch, *cfg.audio.input_shape, generator=g),
                         torch.rand(batch, *cfg.visual.input_shape, generator=g))


def assert_firing(check, model, cfg, batch):
    """A non-trivial firing rate in every layer, or agreement would prove nothing."""
    for layer, neuron in model.neurons().items():
        rate = check.model_spikes[layer] / (cfg.time_steps * batch * neuron.threshold.numel())
        assert 0.002 < rate < 0.95, f"layer {layer} fires at rate {rate:.4f}"


CASES = {
    "mlp-concat": ("avdigits-mlp", {}),
    "mlp-sum": ("avdigits-mlp", {"fusion": "sum", "visual": BranchConfig("mlp", (8, 8), (128,))}),
    "cnn-concat": ("avdigits-cnn", {}),
    "cnn-sum": ("avdigits-cnn", {"fusion": "sum", "audio": BranchConfig("cnn", (1, 32, 32), (8, 4)),
                                  "visual": BranchConfig("cnn", (1, 16, 16), (8, 16))}),
    "mlp-cuba": ("avdigits-mlp", {"neuron": dataclasses.replace(get_model_config("avdigits-mlp").neuron, kind="cuba")}),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_executor_reproduces_model_spikes_at_every_layer(case, dtype):
    name, overrides = CASES[case]
    cfg, model = spiking_model(name, **overrides)
    graph = export_model(model, cfg)
    x_a, x_v = inputs(cfg, 12)
    check = compare_with_model(model, graph, x_a, x_v, dtype)
    assert set(check.mismatches) == set(model.neurons())
    assert_firing(check, model, cfg, 12)
    assert check.mismatches == {layer: 0 for layer in model.neurons()}
    assert torch.equal(check.model_prediction, check.graph_prediction)


def test_round_trip_write_read_gives_the_same_graph(tmp_path):
    cfg, model = spiking_model("avdigits-cnn")
    graph = export_model(model, cfg, gains={"audio": 1.5, "visual": 0.75}, metadata={"class_names": list("abcdefghij")})
    path = write_graph(graph, tmp_path / "model.nir")
    back = nir.read(path, type_check=True)
    assert back.edges == graph.edges
    assert set(back.nodes) == set(graph.nodes)
    for name, node in graph.nodes.items():
        other = back.nodes[name]
        assert type(other) is type(node), name
        for key, value in node.to_dict().items():
            if key in ("type", "metadata"):
                continue
            np.testing.assert_array_equal(np.asarray(other.to_dict()[key]), np.asarray(value), err_msg=f"{name}.{key}")
    meta = graph_metadata(back)
    assert graph_dt(back) == 1.0 and meta["reset"] == "zero" and meta["time_steps"] == cfg.time_steps
    assert meta["class_names"] == list("abcdefghij")
    assert meta["fusion"]["gains"] == {"audio": 1.5, "visual": 0.75}
    assert meta["fusion"]["projections"]["fusion.visual"] == {"modality": "visual", "gain": 0.75, "mantissa": 1.5,
                                                             "exponent": -1}
    assert meta["provenance"]["versions"]["nir"] == nir.version
    x_a, x_v = inputs(cfg, 4)
    assert compare_with_model(model, back, x_a, x_v).mismatches == compare_with_model(model, graph, x_a, x_v).mismatches


def test_graph_form():
    cfg, model = spiking_model("avdigits-mlp")
    graph = export_model(model, cfg, gains={"audio": 2.0, "visual": 0.5})
    assert set(graph.inputs) == {"audio", "visual"} and set(graph.outputs) == {OUTPUT_NODE}
    assert {n for n, node in graph.nodes.items() if isinstance(node, (nir.LIF, nir.CubaLIF))} == set(model.neurons())
    assert [e for e in graph.edges if e[1] == "fusion"] == [("fusion.audio", "fusion"), ("fusion.visual", "fusion")]
    w_a = model.fusion.proj["audio"].weight.detach().numpy()
    np.testing.assert_array_equal(graph.nodes["fusion.audio"].weight, 2.0 * w_a)
    np.testing.assert_array_equal(graph.nodes["fusion.audio"].bias, model.fusion.bias.detach().numpy())
    lif = graph.nodes["audio.0"]
    assert lif.tau.shape == lif.r.shape == lif.v_threshold.shape == lif.v_reset.shape == (128,)
    np.testing.assert_array_equal(lif.tau, 8.0)


@pytest.mark.parametrize("fusion", ["concat", "sum"])
def test_folding_power_of_two_gains_changes_no_spike(fusion):
    """The model applies g_m as a separate multiply; the graph has it folded into W_m."""
    overrides = {"fusion": fusion}
    if fusion == "sum":
        overrides["visual"] = BranchConfig("mlp", (8, 8), (128,))
    cfg, model = spiking_model("avdigits-mlp", scale=3.0, **overrides)
    model.fusion.gain.copy_(torch.tensor([2.0, 0.5]))
    graph = export_model(model, cfg)
    x_a, x_v = inputs(cfg, 16)
    check = compare_with_model(model, graph, x_a, x_v)
    assert check.model_spikes["fusion"] > 0
    assert check.mismatches == {layer: 0 for layer in model.neurons()}


def test_folding_other_gains_is_counted():
    """Non-power-of-two gains round differently when folded: count the flips (documented, not hidden)."""
    cfg, model = spiking_model("avdigits-mlp", scale=3.0)
    model.fusion.gain.copy_(torch.tensor([1.3, 0.7]))
    graph = export_model(model, cfg)
    x_a, x_v = inputs(cfg, 16)
    check = compare_with_model(model, graph, x_a, x_v)
    total = sum(check.model_spikes.values())
    flips = sum(check.mismatches.values())
    print(f"non-power-of-two gains: {flips} mismatches of {total} spikes")
    assert check.mismatches["audio.0"] == check.mismatches["visual.0"] == 0
    assert flips <= 0.01 * total


def test_split_gain_is_exact():
    for g in (1.0, 0.75, 1.2, 3.0, 2.0 ** -5, 1e3):
        m, e = split_gain(g)
        assert 1.0 <= m < 2.0 and m * 2.0 ** e == g


def check_resnet18(cfg, batch):
    torch.manual_seed(0)
    model = build_model(cfg)
    spread_batchnorm(model)
    with torch.no_grad():
        model.fusion.bias.normal_(0, 0.3)
    model.eval()
    graph = export_model(model.double(), cfg)
    convs = [n for n in graph.nodes.values() if isinstance(n, nir.Conv2d)]
    assert len(convs) == sum(isinstance(m, nn.Conv2d) for m in model.branches.modules())
    assert all(np.any(c.bias != 0) for c in convs)  # every conv carries its folded BatchNorm shift
    assert "audio.1.second.shortcut0" in graph.nodes  # the avg-pool shortcut of the first block
    x_a, x_v = inputs(cfg, batch)
    check = compare_with_model(model, graph, x_a, x_v, torch.float64)
    fired = [layer for layer, c in check.model_spikes.items() if c > 0]
    assert len(fired) >= len(check.model_spikes) // 2, check.model_spikes
    assert check.mismatches == {layer: 0 for layer in model.neurons()}


def test_resnet18_batchnorm_folded_matches():
    """cremad-resnet18 layers at reduced input sizes, BatchNorm with non-trivial statistics, float64."""
    check_resnet18(get_model_config("cremad-resnet18", audio=BranchConfig("resnet18", (1, 64, 48)),
                                    visual=BranchConfig("resnet18", (3, 64, 64)), time_steps=3), batch=2)


@pytest.mark.slow
def test_resnet18_full_size_matches():
    check_resnet18(get_model_config("cremad-resnet18"), batch=1)


@pytest.mark.parametrize("fusion", ["film", "gated"])
def test_multiplicative_fusion_is_refused(fusion):
    cfg = get_model_config("avdigits-mlp", fusion=fusion)
    with pytest.raises(UserError, match=r"fusion layer 'fusion'.*concat or sum"):
        export_model(build_model(cfg), cfg)


def test_nan_weights_and_bad_gains_are_refused(tmp_path):
    cfg, model = spiking_model("avdigits-mlp")
    for gains, pattern in [({"audio": 0.0}, "> 0"), ({"visual": -1.0}, "> 0"), ({"audio": "x"}, "not a number"),
                           ({"audio": float("nan")}, "finite"), ({"speech": 1.0}, "unknown modality")]:
        with pytest.raises(UserError, match=pattern):
            export_model(model, cfg, gains=gains)
    with torch.no_grad():
        model.branches["visual"].blocks[0].synapse[1].weight[0, 0] = float("nan")
    with pytest.raises(UserError, match="NaN/inf"):
        export_model(model, cfg)
    assert not list(tmp_path.iterdir())


def test_failed_write_leaves_no_file(tmp_path):
    cfg, model = spiking_model("avdigits-mlp")
    graph = export_model(model, cfg)
    graph.nodes["audio.0.syn1"].weight = graph.nodes["audio.0.syn1"].weight[:, :5]  # breaks type checking on read
    with pytest.raises(Exception):
        write_graph(graph, tmp_path / "model.nir")
    assert not list(tmp_path.iterdir())
