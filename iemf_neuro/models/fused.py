"""snnTorch's zero-reset Leaky / Synaptic dynamics over a whole spike train, as one autograd node.

Forward, per step t (bit-identical to stepping ``snn.Leaky`` / ``snn.Synaptic`` with reset_delay=False)::

    u[t] = alpha * u[t-1] + I[t]              (Leaky: u[t] = I[t])
    m[t] = beta * v[t-1] + u[t]
    s[t] = m[t] > threshold
    v[t] = m[t] - s[t] * m[t]                 (zero reset)

Backward is the gradient of snnTorch's own graph written out (atan surrogate
sigma'(x) = (a/2) / (1 + (pi/2 * a * x)^2), a = 2, and the reset's path through the spike)::

    dL/dm[t] = dL/ds[t] * sigma'(m[t] - thr) + dL/dv[t] * ((1 - s[t]) - m[t] * sigma'(m[t] - thr))
    dL/dv[t-1] = beta * dL/dm[t];   dL/du[t] = dL/dm[t] + alpha * dL/du[t+1];   dL/dI[t] = dL/du[t]

Autograd through snnTorch's per-step modules keeps about a dozen tensors per step and launches as many
kernels; this keeps one (m) and a handful, which is what makes the spiking ResNet-18 train near T ANN passes.
"""

from __future__ import annotations

import math

import torch

SLOPE = 2.0  # snnTorch's default atan surrogate slope


def surrogate_grad(x: torch.Tensor) -> torch.Tensor:
    return (SLOPE / 2) / (1 + (math.pi / 2 * SLOPE * x) ** 2)


class ZeroResetLIF(torch.autograd.Function):
    """current [T, B, ...] -> spikes [T, B, ...]; alpha is None for Leaky (no synaptic current state)."""

    @staticmethod
    def forward(ctx, current, alpha, beta, threshold):
        u = torch.zeros_like(current[0])
        v = torch.zeros_like(current[0])
        mems = torch.empty_like(current)
        spikes = torch.empty_like(current)
        for t in range(current.shape[0]):
            u = current[t] if alpha is None else alpha * u + current[t]
            m = beta * v + u
            s = (m - threshold > 0).to(current.dtype)
            mems[t], spikes[t] = m, s
            v = m - s * m
        ctx.save_for_backward(mems, spikes, beta, threshold, *(() if alpha is None else (alpha,)))
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes):
        mems, spikes, beta, threshold, *alpha = ctx.saved_tensors
        alpha = alpha[0] if alpha else None
        grad_current = torch.empty_like(grad_spikes)
        grad_v = torch.zeros_like(grad_spikes[0])
        grad_u = torch.zeros_like(grad_spikes[0])
        for t in reversed(range(grad_spikes.shape[0])):
            m, s = mems[t], spikes[t]
            sg = surrogate_grad(m - threshold)
            grad_m = grad_spikes[t] * sg + grad_v * ((1 - s) - m * sg)
            grad_u = grad_m if alpha is None else grad_m + alpha * grad_u
            grad_current[t] = grad_u
            grad_v = beta * grad_m
        return grad_current, None, None, None
