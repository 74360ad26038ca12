"""The snnTorch reference run that export and Lava are checked against, spike for spike.

Training steps neurons through ``fused.ZeroResetLIF`` (same forward, bit for bit); the reference steps them
through snnTorch's own ``Leaky`` / ``Synaptic`` modules, one call per time step, in the requested dtype
(float64 to compare with Lava's float models). A quantisation-aware model's fixed-point forward is the reference
for Lava's fixed-point models.
"""

from __future__ import annotations

import copy

import torch

from .fixed_point import fixed_spikes
from .network import neuron_kernels

def _heaviside(x: torch.Tensor) -> torch.Tensor:
    """snnTorch's surrogate returns float32 whatever its input; inference keeps the dtype."""
    return (x > 0).to(x.dtype)


def reference_spikes(model: torch.nn.Module, x_audio: torch.Tensor, x_visual: torch.Tensor,
                     dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """Every layer's spikes ``[T, B, ...]`` of snnTorch's own modules on time-major inputs, in ``dtype``."""
    net = copy.deepcopy(model).to(dtype).eval()
    net.quant_aware = False
    for neuron in net.neurons().values():
        neuron.spike_grad = _heaviside
    with torch.no_grad(), neuron_kernels("snntorch"):
        return net(x_audio.to(dtype), x_visual.to(dtype), record=True).spikes


def fixed_point_reference(model: torch.nn.Module, x_audio: torch.Tensor,
                          x_visual: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every layer's spikes ``[T, B, ...]`` of the model in Loihi fixed point (``fixed_point.fixed_spikes``):
    what Lava's fixed-point models must reproduce for a quantisation-aware model."""
    net = copy.deepcopy(model).eval()
    with torch.no_grad():
        return fixed_spikes(net, x_audio.float(), x_visual.float())
