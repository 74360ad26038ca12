"""The fused neuron node against snnTorch's own per-step modules: same spikes bit for bit, same gradients."""

from dataclasses import replace

import pytest
import torch

from iemf_neuro.errors import UserError
from iemf_neuro.models import build_model, encode_inputs, get_model_config, neuron_kernels
from iemf_neuro.models.network import run_neurons
from iemf_neuro.models.neurons import NeuronConfig, make_neuron
from iemf_neuro.models.reference import reference_spikes


@pytest.mark.parametrize("kind", ["lif", "cuba"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_matches_snntorch_forward_and_gradient(kind, dtype):
    torch.manual_seed(0)
    neuron = make_neuron(NeuronConfig(kind=kind, beta=0.875, alpha=0.75), (6, 4)).to(dtype)
    current = (torch.randn(16, 3, 6, 4, dtype=dtype) * 1.2 + 0.4).requires_grad_()
    weights = torch.randn(16, 3, 6, 4, dtype=dtype)

    with neuron_kernels("snntorch"):
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


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lif", "cuba"])
def test_compiled_loops_match_eager_across_layer_shapes(kind):
    """torch.compile'd loops (one dynamic-shape kernel for every layer) give the eager node's spikes and
    gradients; on the GPU the same code becomes Triton kernels."""
    torch.manual_seed(2)
    for shape in [(6, 4), (3, 5, 5), (17,)]:
        neuron = make_neuron(NeuronConfig(kind=kind, beta=0.875, alpha=0.75), shape)
        current = (torch.randn(5, 3, *shape) * 1.2 + 0.4).requires_grad_()
        weights = torch.randn(5, 3, *shape)
        eager = run_neurons(neuron, current)
        (eager * weights).sum().backward()
        grad_eager, current.grad = current.grad.clone(), None
        with neuron_kernels("compiled"):
            compiled = run_neurons(neuron, current)
        (compiled * weights).sum().backward()

        assert 0.1 < float(eager.mean()) < 0.9
        assert torch.equal(compiled, eager), shape
        torch.testing.assert_close(current.grad, grad_eager, rtol=1e-5, atol=1e-6)


def test_unknown_kernel_is_refused():
    with pytest.raises(UserError, match="unknown neuron kernel 'triton'"):
        with neuron_kernels("triton"):
            pass


SMALL_RESNET = {"audio": (1, 33, 24), "visual": (3, 32, 32)}


def small_config(name: str):
    cfg = get_model_config(name)
    if name != "cremad-resnet18":
        return cfg
    return replace(cfg, audio=replace(cfg.audio, input_shape=SMALL_RESNET["audio"]),
                   visual=replace(cfg.visual, input_shape=SMALL_RESNET["visual"]))


@pytest.mark.parametrize("name", ["avdigits-cnn", "cremad-resnet18"])
def test_time_constant_input_passes_the_stem_once_with_the_same_result(name):
    """A direct-encoded input (a stride-0 view over T) runs the first synapse on B samples, not T*B, and
    training gives the same outputs and gradients as the materialised train (BatchNorm included)."""
    cfg = small_config(name)
    torch.manual_seed(3)
    model = build_model(cfg).train()
    audio = torch.rand(4, *cfg.audio.input_shape) * 3
    image = torch.rand(4, *cfg.visual.input_shape) * 3
    x_a, x_v = encode_inputs(cfg, audio, image)
    assert x_a.stride(0) == 0 and x_v.stride(0) == 0
    stem = model.branches["audio"].blocks[0].synapse
    batches = []
    handle = stem.register_forward_hook(lambda module, inputs, output: batches.append(inputs[0].shape[0]))

    def run(xa, xv):
        model.zero_grad()
        out = model(xa, xv, record=True)
        (out.counts.sum() + sum(l.sum() for l in out.aux_logits.values())).backward()
        return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    once, grads_once = run(x_a, x_v)
    full, grads_full = run(x_a.contiguous(), x_v.contiguous())
    handle.remove()
    assert batches == [4, cfg.time_steps * 4]
    assert sum(float(s.sum()) for s in full.spikes.values()) > 0
    for layer, spikes in full.spikes.items():
        assert torch.equal(once.spikes[layer], spikes), layer
    assert set(grads_once) == set(grads_full)
    for name, grad in grads_full.items():
        torch.testing.assert_close(grads_once[name], grad, rtol=1e-4, atol=1e-5, msg=name)


def test_channels_last_currents_keep_their_layout_and_results():
    neuron = make_neuron(NeuronConfig(kind="lif"), (5, 4, 3))
    torch.manual_seed(4)
    current = torch.randn(3, 2, 5, 4, 3) * 1.2 + 0.4
    weights = torch.randn(3, 2, 5, 4, 3)
    last = current.reshape(6, 5, 4, 3).to(memory_format=torch.channels_last).reshape(3, 2, 5, 4, 3)
    assert last.stride() != current.stride()
    results = []
    for x in (current, last):
        x = x.detach().requires_grad_()
        spikes = run_neurons(neuron, x)
        (spikes * weights).sum().backward()
        results.append((spikes, x.grad, spikes.stride()))
    (s_c, g_c, stride_c), (s_l, g_l, stride_l) = results
    assert stride_c == current.stride() and stride_l == last.stride()  # no layout conversion
    assert torch.equal(s_c, s_l) and 0 < float(s_c.mean()) < 1
    torch.testing.assert_close(g_l, g_c)


@pytest.mark.parametrize("kernel", ["eager", "compiled"])
def test_bf16_currents_keep_float32_membranes(kernel):
    """Under bf16 autocast the current arrives in bf16: spikes and the gradient come back in bf16, the
    membranes are integrated in float32 (the parameters' dtype), so spikes equal a float32 run's."""
    neuron = make_neuron(NeuronConfig(kind="cuba", beta=0.875, alpha=0.75), (4, 3))
    torch.manual_seed(5)
    current = (torch.randn(4, 2, 4, 3) * 1.2 + 0.4).to(torch.bfloat16).requires_grad_()
    with neuron_kernels(kernel):
        spikes = run_neurons(neuron, current)
        reference = run_neurons(neuron, current.detach().float())
    spikes.sum().backward()
    assert spikes.dtype == torch.bfloat16 and current.grad.dtype == torch.bfloat16
    assert torch.equal(spikes.float(), reference) and 0 < float(reference.mean()) < 1
