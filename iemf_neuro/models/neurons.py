"""Deployable spiking neurons: snnTorch zero-reset LIF / current-based LIF with per-neuron parameters.

Both equal Lava's ``LIF`` exactly (u: synaptic current, v: membrane)::

    u[t] = alpha * u[t-1] + I[t]        (Leaky: alpha = 0, i.e. u[t] = I[t]; Lava du = 1 - alpha)
    v[t] = beta  * v[t-1] + u[t]        (Lava dv = 1 - beta)
    s[t] = v[t] > threshold;  v[t] <- 0 where s[t]   (zero reset in the same step)

Decays are kept fixed (not learned) at 1 - 2**-k so that tau = dt / (1 - beta) and every derived NIR
parameter is exact in binary floating point: exporting and re-simulating changes no bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import snntorch as snn
import torch
from torch import nn

from iemf_neuro.errors import UserError


@dataclass(frozen=True)
class NeuronConfig:
    kind: str = "lif"  # "lif" (snn.Leaky) or "cuba" (snn.Synaptic)
    beta: float = 0.875  # membrane decay per step, 1 - 2**-k
    alpha: float = 0.5  # synaptic current decay per step (cuba only), 1 - 2**-k
    threshold: float = 1.0  # firing threshold

    def __post_init__(self) -> None:
        if self.kind not in ("lif", "cuba"):
            raise UserError(f"neuron kind {self.kind!r} is not deployable; set model.neuron.kind=lif or cuba")
        for name in ("beta", "alpha"):
            value = getattr(self, name)
            if not 0.5 <= value < 1.0:
                raise UserError(f"model.neuron.{name}={value} must lie in [0.5, 1) for exact Lava decays; "
                                "use 1 - 2**-k")
        if not self.threshold > 0:
            raise UserError(f"model.neuron.threshold={self.threshold} must be positive; set e.g. 1.0")


def make_neuron(cfg: NeuronConfig, shape: tuple[int, ...]) -> nn.Module:
    """A zero-reset neuron population of ``shape`` with per-neuron parameter tensors."""
    full = lambda value: torch.full(shape, float(value))  # noqa: E731 - one-line helper
    common = dict(threshold=full(cfg.threshold), reset_mechanism="zero", reset_delay=False,
                  init_hidden=False)
    if cfg.kind == "lif":
        return snn.Leaky(beta=full(cfg.beta), **common)
    return snn.Synaptic(alpha=full(cfg.alpha), beta=full(cfg.beta), **common)


def initial_state(neuron: nn.Module, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Zero state for one population; passing state explicitly avoids snnTorch's hidden, shape-keyed state."""
    zeros = torch.zeros_like(like)
    return (zeros, zeros.clone()) if isinstance(neuron, snn.Synaptic) else (zeros,)


def step(neuron: nn.Module, current: torch.Tensor, state: tuple[torch.Tensor, ...]):
    """One time step: returns (spikes, new_state)."""
    if isinstance(neuron, snn.Synaptic):
        spk, syn, mem = neuron(current, state[0], state[1])
        return spk, (syn, mem)
    spk, mem = neuron(current, state[0])
    return spk, (mem,)
