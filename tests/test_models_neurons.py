"""Every neuron of the deployable configs is a zero-reset LIF/CubaLIF with per-neuron parameters, and the
network follows the one neuron equation of docs/architecture.md."""

import pytest
import snntorch as snn
import torch

from iemf_neuro.models import DEPLOYABLE_FUSIONS, MODEL_CONFIGS, build_model, encode_inputs, get_model_config
from iemf_neuro.models.network import run_neurons
from iemf_neuro.models.neurons import NeuronConfig, make_neuron

DEPLOYABLE = [name for name, cfg in MODEL_CONFIGS.items() if cfg.fusion in DEPLOYABLE_FUSIONS]


def _is_exact_decay(value: torch.Tensor) -> bool:
    k = -torch.log2(1 - value)
    return bool(torch.all(k == torch.round(k)))


@pytest.mark.parametrize("name", DEPLOYABLE)
@pytest.mark.parametrize("kind", ["lif", "cuba"])
def test_every_neuron_is_zero_reset_with_per_neuron_parameters(name, kind):
    cfg = get_model_config(name, neuron=NeuronConfig(kind=kind))
    net = build_model(cfg)
    neurons = net.neurons()
    assert {"fusion", "output", "audio.0", "visual.0"} <= set(neurons)
    spikes = {}
    if name != "cremad-resnet18":  # one forward on the paper-scale config costs too much for a unit test
        x_a, x_v = encode_inputs(cfg, torch.rand(2, *cfg.audio.input_shape), torch.rand(2, *cfg.visual.input_shape))
        spikes = net(x_a, x_v, record=True).spikes
        assert set(spikes) == set(neurons)
    for layer, neuron in neurons.items():
        assert type(neuron) is (snn.Leaky if kind == "lif" else snn.Synaptic), layer
        assert neuron.reset_mechanism == "zero" and neuron.reset_delay is False, layer
        params = [neuron.beta, neuron.threshold] + ([neuron.alpha] if kind == "cuba" else [])
        for p in params:
            assert p.dim() >= 1 and p.numel() > 1, layer
            if spikes:
                assert p.shape == spikes[layer].shape[2:], layer
        assert _is_exact_decay(neuron.beta) and (kind == "lif" or _is_exact_decay(neuron.alpha)), layer


@pytest.mark.parametrize("kind", ["lif", "cuba"])
def test_neurons_follow_the_documented_equation(kind):
    cfg = NeuronConfig(kind=kind, beta=0.75, alpha=0.5, threshold=1.0)
    neuron = make_neuron(cfg, (5,))
    current = torch.rand(12, 3, 5, generator=torch.Generator().manual_seed(0)) * 0.9
    got = run_neurons(neuron, current)
    u = torch.zeros(3, 5)
    v = torch.zeros(3, 5)
    for t in range(12):
        u = (cfg.alpha * u if kind == "cuba" else 0) + current[t]
        v = cfg.beta * v + u
        s = (v > cfg.threshold).float()
        v = torch.where(s > 0, torch.zeros_like(v), v)
        assert torch.equal(got[t], s), t
    assert got.sum() > 0


def test_state_does_not_leak_between_batches():
    cfg = get_model_config("avdigits-mlp")
    net = build_model(cfg).eval()
    x_a, x_v = encode_inputs(cfg, torch.rand(4, 32, 32), torch.rand(4, 8, 8))
    first = net(x_a, x_v).counts
    net(*encode_inputs(cfg, torch.rand(7, 32, 32), torch.rand(7, 8, 8)))
    assert torch.equal(net(x_a, x_v).counts, first)
