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
kernels; this node keeps one (m) per step. Its two loops are plain functions, so ``torch.compile`` can
turn each into one kernel per layer (``compiled=True``): the loop then reads and writes every
activation a few times instead of a few dozen, which is what the GPU time of a spiking ResNet is spent on.
Compiled code may contract ``beta * v + u`` into one fused multiply-add, so its membranes can differ from
snnTorch's in the last bit; the reference check against NIR and Lava always runs snnTorch's own modules.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import torch

SLOPE = 2.0  # snnTorch's default atan surrogate slope


def surrogate_grad(x: torch.Tensor) -> torch.Tensor:
    return (SLOPE / 2) / (1 + (math.pi / 2 * SLOPE * x) ** 2)


def lif_forward(current, alpha, beta, threshold):
    """current [T, ...] -> (spikes, membranes before reset), both [T, ...]; alpha None for Leaky.

    Results are stacked rather than written into preallocated buffers: compiled, the stack becomes the
    one kernel's output slices (preallocation would compile to slower scatters)."""
    u = v = torch.zeros_like(current[0])
    spikes, mems = [], []
    for t in range(current.shape[0]):
        u = current[t] if alpha is None else alpha * u + current[t]
        m = beta * v + u
        s = (m > threshold).to(current.dtype)
        v = m - s * m
        spikes.append(s)
        mems.append(m)
    return torch.stack(spikes), torch.stack(mems)


def lif_backward(grad_spikes, mems, spikes, alpha, beta, threshold):
    """dL/ds [T, ...] -> dL/dI [T, ...], walking the forward loop backwards."""
    grad_v = grad_u = torch.zeros_like(mems[0])
    grads = []
    for t in reversed(range(grad_spikes.shape[0])):
        m, s = mems[t], spikes[t]
        sg = surrogate_grad(m - threshold)
        grad_m = grad_spikes[t] * sg + grad_v * ((1 - s) - m * sg)
        grad_u = grad_m if alpha is None else grad_m + alpha * grad_u
        grad_v = beta * grad_m
        grads.append(grad_u)
    return torch.stack(grads[::-1])


@functools.cache
def _compiled(loop: Callable) -> Callable:
    """Compiled with symbolic sizes: every layer's [T, B, neurons] shares a kernel (one more for stride-0
    currents or gradients; a new T, dtype or neuron kind also recompiles, within dynamo's cache limit)."""
    return torch.compile(loop, dynamic=True)


def _loops(compiled: bool) -> tuple[Callable, Callable]:
    if compiled:
        return _compiled(lif_forward), _compiled(lif_backward)
    return lif_forward, lif_backward


def memory_order(x: torch.Tensor) -> list[int]:
    """x's dims as [T, B, *neuron dims outermost-to-innermost in memory]: flattening the neuron dims in
    this order is a view for contiguous and channels_last tensors alike (no layout copies)."""
    return [0, 1, *sorted(range(2, x.dim()), key=lambda d: -x.stride(d))]


class ZeroResetLIF(torch.autograd.Function):
    """current [T, B, *neurons] -> spikes of the same shape and layout; alpha is None for Leaky; ``compiled``
    runs both loops as torch.compile kernels.

    The loops see ``[T, B, neurons]`` with flat per-neuron parameters, so one compiled kernel serves every
    layer. Spikes keep the current's dtype; membranes are computed and kept in the wider of the current's
    and the parameters' dtypes (float32 under bf16 autocast).
    """

    @staticmethod
    def forward(ctx, current, alpha, beta, threshold, compiled):
        forward_loop, ctx.backward_loop = _loops(compiled)
        order = memory_order(current)
        x = current.permute(order)
        dtype = torch.promote_types(current.dtype, beta.dtype)
        neurons = current.shape[2:]
        params = [None if p is None else p.to(dtype).expand(neurons).permute([d - 2 for d in order[2:]]).reshape(-1)
                  for p in (alpha, beta, threshold)]
        spikes, mems = forward_loop(x.reshape(*x.shape[:2], -1), *params)
        ctx.save_for_backward(mems, spikes, *params)
        ctx.order, ctx.permuted_shape, ctx.dtype = order, x.shape, current.dtype
        return spikes.reshape(x.shape).permute(_inverse(order))

    @staticmethod
    def backward(ctx, grad_spikes):
        mems, spikes, alpha, beta, threshold = ctx.saved_tensors
        grad_flat = grad_spikes.permute(ctx.order).reshape(mems.shape)
        grad = ctx.backward_loop(grad_flat, mems, spikes, alpha, beta, threshold)
        return grad.reshape(ctx.permuted_shape).permute(_inverse(ctx.order)).to(ctx.dtype), None, None, None, None


def _inverse(order: list[int]) -> list[int]:
    return sorted(range(len(order)), key=order.__getitem__)
