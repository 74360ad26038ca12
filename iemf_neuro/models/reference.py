"""The snnTorch reference run that export and Lava are checked against, spike for spike.

Training steps neurons through ``fused.ZeroResetLIF`` (same forward, bit for bit); the reference steps them
through snnTorch's own ``Leaky`` / ``Synaptic`` modules, one call per time step, in the requested dtype
(float64 to compare with Lava's float models).
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
from typing import Iterator

import torch

_STEPWISE = contextvars.ContextVar("snntorch_stepwise", default=False)


@contextlib.contextmanager
def snntorch_stepwise() -> Iterator[None]:
    """Within this block, neurons run through snnTorch's per-step modules instead of the fused node."""
    token = _STEPWISE.set(True)
    try:
        yield
    finally:
        _STEPWISE.reset(token)


def stepwise() -> bool:
    return _STEPWISE.get()


def _heaviside(x: torch.Tensor) -> torch.Tensor:
    """snnTorch's surrogate returns float32 whatever its input; inference keeps the dtype."""
    return (x > 0).to(x.dtype)


def reference_spikes(model: torch.nn.Module, x_audio: torch.Tensor, x_visual: torch.Tensor,
                     dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """Every layer's spikes ``[T, B, ...]`` of snnTorch's own modules on time-major inputs, in ``dtype``."""
    net = copy.deepcopy(model).to(dtype).eval()
    for neuron in net.neurons().values():
        neuron.spike_grad = _heaviside
    with torch.no_grad(), snntorch_stepwise():
        return net(x_audio.to(dtype), x_visual.to(dtype), record=True).spikes
