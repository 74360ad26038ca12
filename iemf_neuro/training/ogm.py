"""OGM-GE (Peng et al., CVPR 2022): on-the-fly gradient modulation with generalisation enhancement.

The dominant modality's encoder learns slower. Each modality's "own" output is the fused path driven by
that modality alone, with half the fusion bias (the reference splits its linear classifier the same way):

    score_m  = sum_i softmax(out_m)_i[y_i]             out_m: fusion + output layers fed by modality m only
    ratio_v  = score_v / score_a ,  ratio_a = 1 / ratio_v
    if ratio_v > 1:  k_v = 1 - tanh(alpha * relu(ratio_v)),  k_a = 1
    else:            k_a = 1 - tanh(alpha * relu(ratio_a)),  k_v = 1
    grad_m <- k_m * grad_m + N(0, (std(grad_m) + 1e-8)^2)   for modality m's encoder weights

The reference modulates 4-D (conv) encoder weights only; here every encoder weight of rank >= 2 (conv
and Linear) is modulated, so the MLP encoders are modulated too.
"""

from __future__ import annotations

import torch
from torch import nn

from iemf_neuro.errors import UserError
from iemf_neuro.models import IEMFNet
from iemf_neuro.models.network import over_time, run_neurons


def ogm_coefficients(score_a: torch.Tensor, score_v: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(k_a, k_v) from the two modalities' true-class scores (Eq. 10 of the OGM-GE paper)."""
    ratio_v = score_v / score_a
    one = torch.ones_like(ratio_v)
    if ratio_v > 1:
        return one, 1 - torch.tanh(alpha * torch.relu(ratio_v))
    return 1 - torch.tanh(alpha * torch.relu(1 / ratio_v)), one


def unimodal_counts(model: IEMFNet, s_a: torch.Tensor, s_v: torch.Tensor) -> dict[str, torch.Tensor]:
    """Output spike counts when the fusion layer hears one modality only (plus half its bias)."""
    fusion = model.fusion
    if fusion.kind not in ("concat", "sum"):
        raise UserError(f"OGM-GE needs an additive fusion (concat or sum), not {fusion.kind!r}; "
                        "set model.fusion=concat")
    out = {}
    with torch.no_grad():
        for i, (m, s) in enumerate((("audio", s_a), ("visual", s_v))):
            x = fusion.gain[i] * over_time(fusion.readouts[m], s)
            current = fusion.proj[m](x) if fusion.kind == "concat" else fusion.proj["shared"](x)
            s_f = run_neurons(fusion.neuron, current + fusion.bias / 2)
            out[m] = model.output(s_f).sum(dim=0)
    return out


def encoder_parameters(model: IEMFNet, modality: str) -> list[nn.Parameter]:
    """The encoder weights OGM-GE modulates: every parameter of rank >= 2 in the modality's branch."""
    return [p for p in model.branches[modality].parameters() if p.dim() >= 2]
