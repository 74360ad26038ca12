"""Inverse-effectiveness driven multimodal fusion (IEMF): scale the fusion layer's gradients by how much
the fused output beats the unimodal heads.

Per batch, with p(y | .) the softmax probability of the true class summed over the batch:

    ratio = ((score_a + score_v) / 2) / score_av
    coeff = gain * (1 + tanh(1 - ratio))

When the unimodal heads are weak compared with the fused output (ratio < 1, the regime where a brain's
multisensory gain is largest) the fusion layer learns faster (coeff > 1), and slower when they are strong.
After backward, only the fusion layer's gradients change:

    grad <- coeff * grad + N(0, (std(grad) + 1e-8)^2)      (fresh noise every step)
"""

from __future__ import annotations

import torch
from torch import nn

from iemf_neuro.models import IEMFNet


def true_class_score(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """sum_i softmax(logits_i)[y_i]: the batch's total probability on the true classes."""
    return torch.softmax(logits.float(), dim=-1).gather(1, labels[:, None]).sum()


def iemf_coefficient(score_a: torch.Tensor, score_v: torch.Tensor, score_av: torch.Tensor,
                     gain: float = 1.0) -> torch.Tensor:
    """coeff = gain * (1 + tanh(1 - ((score_a + score_v) / 2) / score_av))."""
    ratio = ((score_a + score_v) / 2) / score_av
    return gain * (1 + torch.tanh(1 - ratio))


def fusion_parameters(model: IEMFNet) -> list[nn.Parameter]:
    """The fusion layer's learnable weights: its per-modality projections and its bias (not readouts/heads)."""
    return [*model.fusion.proj.parameters(), model.fusion.bias]


def enhance_gradients(params: list[nn.Parameter], coeff: float | torch.Tensor, generator: torch.Generator) -> None:
    """grad <- coeff * grad + N(0, (std(grad) + 1e-8)^2) for every parameter with a gradient.

    The noise comes from ``generator`` (on the parameters' device) so that a seeded run, a resumed run and
    every DDP rank draw the same noise.
    """
    with torch.no_grad():
        for p in params:
            if p.grad is None:
                continue
            g = p.grad
            std = g.std() if g.numel() > 1 else torch.zeros((), device=g.device)
            noise = torch.randn(g.shape, generator=generator, device=g.device, dtype=g.dtype)
            p.grad = g * coeff + noise * (std + 1e-8)
