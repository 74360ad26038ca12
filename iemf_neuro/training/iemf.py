"""Inverse-effectiveness driven multimodal fusion (IEMF): scale the fusion layer's gradients by how much
the fused representation beats the unimodal heads.

Per batch, with score_m = sum_i softmax(z_i^m)[y_i] the probability on the true classes summed over the batch:

    z^a = H_a(mean_t s_a(t)),   z^v = H_v(mean_t s_v(t)),   z^av = H_av(mean_t sg[s_f(t)])
    ratio = ((score_a + score_v) / 2) / score_av
    coeff = gain * (1 + tanh(1 - ratio))          in (0, gain * (1 + tanh 1)), gain at ratio 1

H_a, H_v are the unimodal heads on the encoders' mean spike rates, H_av the fused readout probe, a Linear on
the fusion layer's mean spike rate (sg: stop-gradient), trained by its own cross-entropy. All three scores
are softmaxes of unbounded linear logits, so they are comparable. The output layer's spike counts c in
[0, T] are not: softmax(c) is capped (T = 4, 6 classes: p <= 0.92) and is uniform when the output is silent,
which drove coeff toward 0 exactly when the fusion needed to learn. The probe reads detached spikes, so it
only measures: apart from the coefficient the network trains exactly as under aux-heads.

When the unimodal heads are weak compared with the fused readout (ratio < 1, the regime where a brain's
multisensory gain is largest) the fusion layer learns faster (coeff > 1), and slower when they are strong.
After backward, only the fusion layer's gradients change:

    grad <- coeff * grad + N(0, (std(grad) + 1e-8)^2)      (fresh noise every step)

The control ``iemf-control`` applies the same step with coeff = 1 (auxiliary losses and noise alone).
"""

from __future__ import annotations

import torch
from torch import nn

from iemf_neuro.models import IEMFNet, NetOutput


def true_class_score(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """sum_i softmax(logits_i)[y_i]: the batch's total probability on the true classes."""
    return torch.softmax(logits.float(), dim=-1).gather(1, labels[:, None]).sum()


def iemf_scores(out: NetOutput, labels: torch.Tensor) -> torch.Tensor:
    """[score_a, score_v, score_av] from the audio head, the visual head and the fused readout probe."""
    return torch.stack([true_class_score(logits, labels)
                        for logits in (out.aux_logits["audio"], out.aux_logits["visual"], out.fused_logits)])


def iemf_coefficient(score_a: torch.Tensor, score_v: torch.Tensor, score_av: torch.Tensor,
                     gain: float = 1.0) -> torch.Tensor:
    """coeff = gain * (1 + tanh(1 - ((score_a + score_v) / 2) / score_av))."""
    ratio = ((score_a + score_v) / 2) / score_av
    return gain * (1 + torch.tanh(1 - ratio))


def fusion_parameters(model: IEMFNet) -> list[nn.Parameter]:
    """The fusion stage's learnable weights: its per-modality projections, its bias and, with a gate, the gate's own
    drive, relay and inhibition weights (not readouts or heads, which the gate's confidence populations share)."""
    gate = model.fusion.gate
    own = [] if gate is None else [*gate.drive.parameters(), *gate.relay.parameters(), *gate.inhibit.parameters()]
    return [*model.fusion.proj.parameters(), model.fusion.bias, *own]


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
