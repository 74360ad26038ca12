"""Static fusion gains for a declared deployment condition: reliability weighting, snapped to what fixed point
folds exactly.

Cue combination weights the more reliable cue up (Ernst & Banks 2002); inverse effectiveness is the
enhancement when both cues are weak, which a common gain on both projections provides (Ohshiro et al. 2011's
normalisation model gives both). IEMF only shapes training: with no mapped gain the deployed network runs with
gains (1, 1), the baseline any rule must beat (``benchmarks/fusion_gain.py``).

For a trained model, K classes and labelled calibration data under the deployment condition (the validation
split degraded like the deployment), with each modality's auxiliary head h_m reading its encoder's spikes:

    L_m = mean_i log softmax(h_m(x_i))[y_i]           head log-likelihood of the true class (nats)
    r_m = clip((L_m + log K) / log K, R_MIN, 1)        reliability: R_MIN at or below chance, 1 when certain
    w_m = r_m / ((r_a + r_v) / 2)                      relative weight, mean 1: the more reliable cue up
    G   = clip(sqrt(R_0 / (r_a + r_v)), 1, G_MAX)      common gain, > 1 when both cues are weaker than on
                                                       clean data (R_0 = r_a + r_v there)
    g_m = snap(G * w_m)                                round(mant * 2**b) / 2**b * 2**exp, mant in [1, 2)

so that on fixed-point hardware the gain is a power of two in the projection's weight exponent times a mantissa
with ``b`` fractional bits (``b = 0``: pure powers of two, folded without any rounding). ``power_of_two_search``
tries every pair of powers of two on the calibration data instead: the ceiling a static rule is compared to.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from iemf_neuro.errors import UserError
from iemf_neuro.models import IEMFNet, ModelConfig, encode_inputs
from iemf_neuro.models.network import MODALITIES

from .model_to_nir import split_gain

R_MIN = 1 / 16  # reliability floor: a cue at chance keeps a small gain instead of a cut projection
G_MAX = 4.0  # largest common gain
SEARCH_EXPONENTS = (-3, -2, -1, 0, 1, 2)  # powers of two per modality tried by power_of_two_search


@dataclass(frozen=True)
class FusionGains:
    """Gains for one deployment condition and what they came from (recorded in the graph's metadata)."""

    rule: str  # reliability | power-of-two search
    gains: dict[str, float]  # snapped g_m, what export folds into the projections
    raw: dict[str, float]  # g_m before snapping
    mantissa_bits: int  # b
    n_samples: int  # calibration samples
    reliability: dict[str, float] = field(default_factory=dict)  # r_m under the condition and on clean data
    common_gain: float = 1.0  # G
    accuracy: float | None = None  # power-of-two search: calibration accuracy of the chosen pair
    condition: dict[str, Any] = field(default_factory=dict)  # the deployment condition (e.g. corruption)


def snap_gain(gain: float, mantissa_bits: int) -> float:
    """gain -> round(mant * 2**b) / 2**b * 2**exp (mant in [1, 2)); exact in binary floating point."""
    if mantissa_bits < 0:
        raise UserError(f"mantissa_bits={mantissa_bits} must be >= 0")
    mantissa, exponent = split_gain(gain)
    steps = 2 ** mantissa_bits
    return math.ldexp(round(mantissa * steps) / steps, exponent)


def reliability(log_likelihood: float, num_classes: int) -> float:
    """r = clip((L + log K) / log K, R_MIN, 1): the head's information about the class, 0 at chance."""
    return min(1.0, max(R_MIN, (log_likelihood + math.log(num_classes)) / math.log(num_classes)))


def reliability_gains(r: dict[str, float], r_clean: dict[str, float]) -> tuple[dict[str, float], float]:
    """(g_m = G w_m, G) from the reliabilities under the condition and on clean data."""
    total = r["audio"] + r["visual"]
    common = min(G_MAX, max(1.0, math.sqrt((r_clean["audio"] + r_clean["visual"]) / total)))
    return {m: common * r[m] / (total / 2) for m in MODALITIES}, common


@dataclass
class BranchSpikes:
    """The encoders' spikes of a dataset, computed once: the fusion gains act only after them."""

    audio: list[torch.Tensor]  # per batch [T, B, ...]
    visual: list[torch.Tensor]
    labels: torch.Tensor  # [N]
    head_log_probs: dict[str, torch.Tensor]  # log softmax of each auxiliary head [N, classes] (float64)

    @property
    def head_log_likelihood(self) -> dict[str, float]:
        """L_m: each head's mean log-probability of the true class."""
        return {m: float(lp.gather(1, self.labels[:, None]).mean()) for m, lp in self.head_log_probs.items()}


def _arrays(data: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    try:
        return torch.as_tensor(data.audio), torch.as_tensor(data.image), torch.as_tensor(data.labels)
    except AttributeError as exc:
        raise UserError("calibration data must hold whole-split .audio/.image/.labels arrays (AV-Digits or "
                        "synthetic); load an in-memory split") from exc


def check_gainable(model: IEMFNet) -> None:
    if model.fusion.kind not in ("concat", "sum"):
        raise UserError(f"fusion {model.fusion.kind!r} has no per-modality projection gains; use a concat or sum "
                        "model")


@torch.no_grad()
def branch_spikes(model: IEMFNet, cfg: ModelConfig, data: Any, batch_size: int = 256, seed: int = 0) -> BranchSpikes:
    """Encode ``data`` (seeded: reproducible) and run both encoders and the auxiliary heads once."""
    audio, image, labels = _arrays(data)
    if len(labels) == 0:
        raise UserError("the calibration split is empty; pick a split with samples")
    was_training = model.training
    net = model.eval()
    generator = torch.Generator().manual_seed(seed)
    out = BranchSpikes([], [], labels.long(), {})
    log_probs: dict[str, list[torch.Tensor]] = {m: [] for m in MODALITIES}
    for start in range(0, len(labels), batch_size):
        sl = slice(start, start + batch_size)
        x_a, x_v = encode_inputs(cfg, audio[sl], image[sl], generator)
        s = {"audio": net.branches["audio"](x_a), "visual": net.branches["visual"](x_v)}
        for m in MODALITIES:
            getattr(out, m).append(s[m])
            log_probs[m].append(torch.log_softmax(net.aux_heads[m](s[m].mean(dim=0)).double(), -1))
    out.head_log_probs = {m: torch.cat(lp) for m, lp in log_probs.items()}
    model.train(was_training)
    return out


@torch.no_grad()
def fused_counts(model: IEMFNet, spikes: BranchSpikes, gains: dict[str, float]) -> torch.Tensor:
    """Output spike counts [N, classes] of the deployed network with fusion gains ``gains`` (the model's own gains
    are restored afterwards)."""
    kept = model.fusion.gain.clone()
    model.fusion.gain.copy_(torch.tensor([gains[m] for m in MODALITIES], dtype=kept.dtype))
    try:
        return torch.cat([model.output(model.fusion(s_a, s_v)).sum(dim=0)
                          for s_a, s_v in zip(spikes.audio, spikes.visual)])
    finally:
        model.fusion.gain.copy_(kept)


def calibrate_gains(model: IEMFNet, cfg: ModelConfig, data: Any, clean: Any, mantissa_bits: int = 3,
                    batch_size: int = 256, seed: int = 0, condition: dict[str, Any] | None = None) -> FusionGains:
    """Reliability-weighted gains on ``data`` (the deployment condition), ``clean`` the same split undegraded."""
    check_gainable(model)
    spikes, clean_spikes = (branch_spikes(model, cfg, d, batch_size, seed) for d in (data, clean))
    return reliability_choice(spikes, clean_spikes, mantissa_bits, condition)


def reliability_choice(spikes: BranchSpikes, clean: BranchSpikes, mantissa_bits: int = 3,
                       condition: dict[str, Any] | None = None) -> FusionGains:
    """``calibrate_gains`` on encoder spikes already computed (the condition's, and the clean split's)."""
    num_classes = spikes.head_log_probs["audio"].shape[1]
    r, r_clean = ({m: reliability(ll, num_classes) for m, ll in s.head_log_likelihood.items()}
                  for s in (spikes, clean))
    raw, common = reliability_gains(r, r_clean)
    return FusionGains("reliability", {m: snap_gain(g, mantissa_bits) for m, g in raw.items()}, raw, mantissa_bits,
                       len(spikes.labels), reliability={**r, **{f"clean_{m}": v for m, v in r_clean.items()}},
                       common_gain=common, condition=dict(condition or {}))


def power_of_two_search(model: IEMFNet, cfg: ModelConfig, data: Any, batch_size: int = 256, seed: int = 0,
                        condition: dict[str, Any] | None = None) -> FusionGains:
    """The pair (2**i, 2**j), i, j in SEARCH_EXPONENTS, most accurate on ``data``; ties go to the pair nearest
    (1, 1) (smallest |i| + |j|), then the lower exponents."""
    check_gainable(model)
    return power_of_two_choice(model, branch_spikes(model, cfg, data, batch_size, seed), condition)


def power_of_two_choice(model: IEMFNet, spikes: BranchSpikes, condition: dict[str, Any] | None = None) -> FusionGains:
    """``power_of_two_search`` on encoder spikes already computed."""
    best: tuple[float, dict[str, float]] | None = None
    for i, j in sorted(itertools.product(SEARCH_EXPONENTS, repeat=2), key=lambda p: (abs(p[0]) + abs(p[1]), p)):
        gains = {"audio": 2.0 ** i, "visual": 2.0 ** j}
        accuracy = float((fused_counts(model, spikes, gains).argmax(-1) == spikes.labels).double().mean())
        if best is None or accuracy > best[0]:
            best = (accuracy, gains)
    accuracy, gains = best
    return FusionGains("power-of-two search", gains, dict(gains), 0, len(spikes.labels), accuracy=accuracy,
                       condition=dict(condition or {}))
