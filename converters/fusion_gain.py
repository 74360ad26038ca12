"""Fusion-gain calibration by inverse effectiveness, on data that matches the deployment condition.

The rule (``docs/nir.md``, "Fusion-gain calibration"), for a trained model and labelled calibration data
x_i, y_i (e.g. the validation split with the deployment's microphone noise applied):

    E_av = mean_i softmax(c_i)[y_i]          c_i: output spike counts of the deployed network (gains 1, 1)
    E_m  = mean_i softmax(c_i^m)[y_i]        c_i^m: the same with only modality m driving the fusion layer
                                             (the other modality's projection gain set to 0)
    r_m  = E_m / E_av                        unimodal effectiveness relative to the fused one
    h_m  = 1 + tanh(1 - r_m)                 the training rule's coefficient: weaker evidence -> larger h_m
    g_m  = h_m / sqrt(h_a * h_v)             normalised: geometric mean 1, equal evidence -> g = (1, 1)
    g_m  <- snap(g_m) = round(mant * 2**b) / 2**b * 2**exp     (gain = mant * 2**exp, mant in [1, 2))

so that on fixed-point hardware the gain is a power of two in the projection's weight exponent times a
mantissa with ``b`` fractional bits (``b = 0``: pure powers of two, folded without any rounding).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from iemf_neuro.errors import UserError
from iemf_neuro.models import IEMFNet, ModelConfig, encode_inputs
from iemf_neuro.models.network import MODALITIES

from .model_to_nir import split_gain


@dataclass(frozen=True)
class FusionGains:
    """Calibrated gains and the evidence they came from (recorded in the graph's metadata)."""

    gains: dict[str, float]  # snapped g_m, what export folds into the projections
    raw: dict[str, float]  # g_m before snapping
    evidence: dict[str, float]  # E_audio, E_visual, E_av (mean true-class softmax of spike counts)
    mantissa_bits: int  # b
    n_samples: int  # calibration samples
    condition: dict[str, Any] = field(default_factory=dict)  # the deployment condition (e.g. corruption)


def snap_gain(gain: float, mantissa_bits: int) -> float:
    """gain -> round(mant * 2**b) / 2**b * 2**exp (mant in [1, 2)); exact in binary floating point."""
    if mantissa_bits < 0:
        raise UserError(f"mantissa_bits={mantissa_bits} must be >= 0")
    mantissa, exponent = split_gain(gain)
    steps = 2 ** mantissa_bits
    return math.ldexp(round(mantissa * steps) / steps, exponent)


def true_class_evidence(counts: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per sample softmax(c)[y] of the output spike counts."""
    return torch.softmax(counts.double(), dim=-1).gather(1, labels[:, None].long())[:, 0]


def evidence(model: IEMFNet, cfg: ModelConfig, audio: torch.Tensor, image: torch.Tensor, labels: torch.Tensor,
             gains: tuple[float, float], batch_size: int = 256, seed: int = 0) -> float:
    """Mean true-class evidence of the network with fusion gains ``gains`` (encoding seeded: reproducible)."""
    net = copy.deepcopy(model).eval()
    net.fusion.gain.copy_(torch.tensor(gains, dtype=net.fusion.gain.dtype))
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(labels), batch_size):
            sl = slice(start, start + batch_size)
            x_a, x_v = encode_inputs(cfg, audio[sl], image[sl], generator)
            total += float(true_class_evidence(net(x_a, x_v).counts, labels[sl]).sum())
    return total / len(labels)


def gains_from_evidence(e_audio: float, e_visual: float, e_av: float) -> dict[str, float]:
    """h_m = 1 + tanh(1 - E_m / E_av); g_m = h_m / sqrt(h_a h_v)."""
    if not e_av > 0:
        raise UserError("the fused network puts no probability on the true class of any calibration sample; "
                        "calibrate a trained model on data of its task")
    h = {m: 1.0 + math.tanh(1.0 - e / e_av) for m, e in (("audio", e_audio), ("visual", e_visual))}
    norm = math.sqrt(h["audio"] * h["visual"])
    return {m: h[m] / norm for m in MODALITIES}


def calibrate_gains(model: IEMFNet, cfg: ModelConfig, data: Any, mantissa_bits: int = 3, batch_size: int = 256,
                    seed: int = 0, condition: dict[str, Any] | None = None) -> FusionGains:
    """Gains by the inverse-effectiveness rule on ``data`` (``.audio``, ``.image``, ``.labels`` of one split)."""
    if model.fusion.kind not in ("concat", "sum"):
        raise UserError(f"fusion {model.fusion.kind!r} has no per-modality projection gains; calibrate a concat "
                        "or sum model")
    try:
        audio, image, labels = (torch.as_tensor(data.audio), torch.as_tensor(data.image), torch.as_tensor(data.labels))
    except AttributeError as exc:
        raise UserError("calibration data must hold whole-split .audio/.image/.labels arrays (AV-Digits or "
                        "synthetic); load an in-memory split") from exc
    if len(labels) == 0:
        raise UserError("the calibration split is empty; pick a split with samples")
    e = {name: evidence(model, cfg, audio, image, labels, g, batch_size, seed)
         for name, g in (("audio", (1.0, 0.0)), ("visual", (0.0, 1.0)), ("av", (1.0, 1.0)))}
    raw = gains_from_evidence(e["audio"], e["visual"], e["av"])
    return FusionGains(gains={m: snap_gain(g, mantissa_bits) for m, g in raw.items()}, raw=raw, evidence=e,
                       mantissa_bits=mantissa_bits, n_samples=len(labels), condition=dict(condition or {}))
