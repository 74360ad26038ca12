"""The snnTorch reference run that export and Lava are checked against, spike for spike.

Training steps neurons through ``fused.ZeroResetLIF`` (same forward, bit for bit); the reference steps them
through snnTorch's own ``Leaky`` / ``Synaptic`` modules, one call per time step, in the requested dtype
(float64 to compare with Lava's float models).
"""

from __future__ import annotations

import copy

import torch

from .network import neuron_kernels

def _heaviside(x: torch.Tensor) -> torch.Tensor:
    """snnTorch's surrogate returns float32 whatever its input; inference keeps the dtype."""
    return (x > 0).to(x.dtype)


def reference_spikes(model: torch.nn.Module, x_audio: torch.Tensor, x_visual: torch.Tensor,
                     dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """Every layer's spikes ``[T, B, ...]`` of snnTorch's own modules on time-major inputs, in ``dtype``."""
    net = copy.deepcopy(model).to(dtype).eval()
    for neuron in net.neurons().values():
        neuron.spike_grad = _heaviside
    with torch.no_grad(), neuron_kernels("snntorch"):
        return net(x_audio.to(dtype), x_visual.to(dtype), record=True).spikes
