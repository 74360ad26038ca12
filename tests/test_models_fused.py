"""The fused neuron node against snnTorch's own per-step modules: same spikes bit for bit, same gradients."""

import pytest
import torch

from iemf_neuro.models import build_model, encode_inputs, get_model_config
from iemf_neuro.models.network import run_neurons
from iemf_neuro.models.neurons import NeuronConfig, make_neuron
from iemf_neuro.models.reference import reference_spikes, snntorch_stepwise


@pytest.mark.parametrize("kind", ["lif", "cuba"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_matches_snntorch_forward_and_gradient(kind, dtype):
    torch.manual_seed(0)
    neuron = make_neuron(NeuronConfig(kind=kind, beta=0.875, alpha=0.75), (6, 4)).to(dtype)
    current = (torch.randn(16, 3, 6, 4, dtype=dtype) * 1.2 + 0.4).requires_grad_()
    weights = torch.randn(16, 3, 6, 4, dtype=dtype)

    with snntorch_stepwise():
        reference = run_neurons(neuron, current)
    (reference.to(dtype) * weights).sum().backward()
    grad_reference, current.grad = current.grad.clone(), None
    fused = run_neurons(neuron, current)
    (fused * weights).sum().backward()

    assert 0.1 < float(fused.mean()) < 0.9  # the comparison covers spiking and silent steps
    assert torch.equal(fused, reference.to(dtype))
    # snnTorch's surrogate computes in float32 whatever the input, hence a float32 tolerance
    torch.testing.assert_close(current.grad, grad_reference, rtol=1e-5, atol=1e-6)


def test_whole_model_fused_equals_reference_spikes():
    cfg = get_model_config("avdigits-cnn")
    torch.manual_seed(1)
    model = build_model(cfg).eval()
    x_a, x_v = encode_inputs(cfg, torch.rand(4, 32, 32) * 3, torch.rand(4, 8, 8) * 3)
    with torch.no_grad():
        fused = model(x_a, x_v, record=True).spikes
    reference = reference_spikes(model, x_a, x_v, torch.float32)
    assert set(fused) == set(reference)
    assert sum(float(s.sum()) for s in fused.values()) > 0
    for layer, spikes in reference.items():
        assert torch.equal(fused[layer], spikes), layer
