"""Fixed-point quantisation of a ``LavaPlan`` for Lava's bit-accurate Loihi models (``select_tag='fixed_pt'``).

Integer arithmetic of the models (lava/proc/lif/models.py, lava/proc/dense/models.py)::

    a_in = (sum_j w_ij * payload_j) << weight_exp  (+ bias_i)      w: 8-bit (mixed sign: even, -256..254)
    u <- u * (4096 - (du + 1)) >> 12  +  a_in << 6                    du, dv: 12-bit; >> truncates toward 0
    v <- v * (4096 - dv) >> 12  +  u  +  bias_mant << bias_exp        u wraps, v saturates at 24 bits
    spike if v > vth << 6                                             vth: 17-bit mantissa

Each neuron layer gets one scale ``lam`` (a power of two: float current 1.0 = ``lam`` units of ``a_in``),
the largest for which the worst-case input fits 16-bit ``a_in`` and the threshold fits 17 bits, so that
threshold, bias and shift truncation lose the least. A projection from a source whose payload per unit
value is ``sigma`` (1 for spikes, ``2**k`` for graded inputs, ``64 lam_src`` for voltages) needs the real
weight ``W lam / sigma = w * 2**weight_exp``: its exponent is chosen per projection so the 8-bit mantissa
spans the largest weight. A power-of-two fusion gain folded into a projection's weights therefore lands
entirely in that projection's ``weight_exp``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from iemf_neuro.errors import UserError

from .nir_to_lava import LavaPlan

A_IN_MAX = 2**15 - 1  # 16-bit synaptic input
VTH_MAX = 2**17 - 1  # 17-bit threshold mantissa
UV_MAX = 2**23 - 1  # 24-bit u, v
DECAY_ONE = 4096  # 12-bit decays
BIAS_MANT_MAX = 2**12 - 1  # 13-bit signed bias mantissa
INPUT_BITS = 8  # graded-spike payload of direct-encoded inputs (signed)


@dataclass
class InputQuant:
    """How an Input node's values become payloads: ``payload = round(x * scale)``."""

    scale: float  # payload per unit value (1 for binary spike inputs)
    binary: bool  # spike input (0/1), sent as is
    max_abs: float  # range the scale was chosen for


@dataclass
class ProjectionQuant:
    """Integer weights as Lava applies them (already clipped and truncated), exponent and bias."""

    weight: np.ndarray | sp.csr_matrix  # int32 mantissas w (mixed sign: even)
    weight_exp: int
    sign_mode: str  # lava.utils.weightutils.SignMode name
    bias: np.ndarray  # int32, added to a_in after the shift
    source_scale: float  # sigma: payload per unit value of the source
    weight_rel_error: float  # ||W_q - W||_F / ||W||_F


@dataclass
class LayerQuant:
    lam: float  # a_in units per unit float current
    du: int
    dv: int
    vth: int
    bias_mant: np.ndarray  # leak per step, v units (lam * 64 per unit)
    bias_exp: int
    errors: dict[str, float] = field(default_factory=dict)


@dataclass
class QuantizedPlan:
    inputs: dict[str, InputQuant]
    layers: dict[str, LayerQuant]
    projections: list[ProjectionQuant]  # aligned with plan.projections

    def report(self, plan: LavaPlan) -> dict[str, dict[str, Any]]:
        """Per layer: scale, threshold, decays, and the quantisation errors of everything feeding it."""
        out: dict[str, dict[str, Any]] = {}
        for name, q in self.layers.items():
            projs = [(p, pq) for p, pq in zip(plan.projections, self.projections) if p.dst == name]
            out[name] = {"lam": q.lam, "vth": q.vth, "du": q.du, "dv": q.dv, **q.errors,
                         "projections": {p.src: {"weight_exp": pq.weight_exp, "sign_mode": pq.sign_mode,
                                                 "weight_rel_error": pq.weight_rel_error}
                                         for p, pq in projs}}
        return out


def _pow2_floor(x: float) -> float:
    return 2.0 ** math.floor(math.log2(x))


def input_quant(x: np.ndarray, bits: int = INPUT_BITS) -> InputQuant:
    """Binary inputs pass as spikes; graded ones get the largest power-of-two scale fitting ``bits``."""
    x = np.asarray(x)
    if x.size and np.all((x == 0) | (x == 1)):
        return InputQuant(1.0, True, 1.0)
    max_abs = float(np.max(np.abs(x))) if x.size else 0.0
    if max_abs == 0:
        return InputQuant(1.0, False, 0.0)
    return InputQuant(_pow2_floor((2 ** (bits - 1) - 1) / max_abs), False, max_abs)


def quantize_inputs(x: np.ndarray, q: InputQuant) -> np.ndarray:
    limit = 2 ** (INPUT_BITS - 1) - 1 if not q.binary else 1
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * q.scale), -limit, limit).astype(np.int32)


def _sign_mode(w) -> str:
    data = w.data if sp.issparse(w) else np.asarray(w)
    if data.size == 0 or data.min() >= 0:
        return "EXCITATORY"
    return "INHIBITORY" if data.max() <= 0 else "MIXED"


def quantize_weights(target: np.ndarray | sp.csr_matrix) -> tuple[Any, int, str]:
    """``target ~ w * 2**e`` with w an 8-bit Loihi mantissa (as Lava clips and truncates it)."""
    mode = _sign_mode(target)
    data = target.data if sp.issparse(target) else np.asarray(target)
    m = float(np.max(np.abs(data))) if data.size else 0.0
    if m == 0:
        return (target * 0).astype(np.int32) if sp.issparse(target) else np.zeros(data.shape, np.int32), 0, mode
    top, step = (254, 2) if mode == "MIXED" else (255, 1)
    exp = math.ceil(math.log2(m / top))
    q = lambda a: (np.clip(np.round(a / 2.0**exp / step), -top // step, top // step) * step).astype(np.int32)  # noqa: E731
    if sp.issparse(target):
        w = target.copy().astype(np.float64)
        w.data = q(w.data)
        return w.astype(np.int32).tocsr(), exp, mode
    return q(data), exp, mode


def _rel_error(approx, exact) -> float:
    diff = approx - exact
    num = sp.linalg.norm(diff) if sp.issparse(diff) else np.linalg.norm(diff)
    den = sp.linalg.norm(exact) if sp.issparse(exact) else np.linalg.norm(exact)
    return float(num / den) if den > 0 else 0.0


def _abs_rows(w, positive: bool) -> np.ndarray:
    if sp.issparse(w):
        part = w.maximum(0) if positive else (-w).maximum(0)
        return np.asarray(part.sum(axis=1)).ravel()
    return np.asarray(np.clip(w if positive else -w, 0, None).sum(axis=1)).ravel()


def quantize_plan(plan: LavaPlan, inputs: dict[str, np.ndarray], input_bits: int = INPUT_BITS) -> QuantizedPlan:
    """Choose scales, exponents and integers for every layer and projection (see the module docstring).

    ``inputs`` (the data to run, ``[N, T, *shape]`` per Input node) sets each graded input's payload scale.
    """
    qin = {n: input_quant(inputs[n], input_bits) for n in plan.inputs}
    source_range = {n: (1.0 if q.binary else q.max_abs) for n, q in qin.items()}
    layers: dict[str, LayerQuant] = {}
    projections: list[ProjectionQuant | None] = [None] * len(plan.projections)
    for name, unit in plan.neurons.items():
        p = unit.neuron
        incoming = [(i, pr) for i, pr in enumerate(plan.projections) if pr.dst == name]
        pos = np.zeros(unit.size)
        neg = np.zeros(unit.size)
        for _, pr in incoming:
            src_range = source_range.get(pr.src, 1.0)
            pos += _abs_rows(pr.weight, True) * src_range
            neg += _abs_rows(pr.weight, False) * src_range
            if pr.bias is not None:
                pos += np.clip(pr.bias, 0, None)
                neg += np.clip(-pr.bias, 0, None)
        worst = float(max(pos.max(initial=0), neg.max(initial=0))) or 1.0
        theta = float(np.ravel(p.threshold)[0]) if p.spiking else None
        alpha = float(np.ravel(p.alpha)[0]) if p.has_current else 0.0
        beta = float(np.ravel(p.beta)[0])
        limits = [A_IN_MAX / worst]
        if theta is not None:
            if theta <= 0:
                raise UserError(f"neuron node {name!r} has threshold {theta} <= 0, which Loihi's unsigned vth "
                                "cannot hold; use a positive threshold or precision='float'")
            limits.append(VTH_MAX / theta)
        else:
            span = worst / max(1e-12, (1 - alpha)) / max(1e-12, (1 - beta)) if beta < 1 else worst * 1e3
            limits.append(UV_MAX / 64 / span)
        lam = _pow2_floor(min(limits))
        du = DECAY_ONE - 1 if not p.has_current else int(np.clip(round((1 - alpha) * DECAY_ONE) - 1, 0, DECAY_ONE - 1))
        dv = int(np.clip(round((1 - beta) * DECAY_ONE), 0, DECAY_ONE - 1))
        vth = int(np.clip(round(theta * lam), 0, VTH_MAX)) if theta is not None else VTH_MAX
        leak = np.broadcast_to(p.leak, unit.shape).reshape(-1) * lam * 64
        lmax = float(np.max(np.abs(leak))) if leak.size else 0.0
        bias_exp = int(np.clip(math.ceil(math.log2(lmax / BIAS_MANT_MAX)), 0, 7)) if lmax > 0 else 0
        bias_mant = np.clip(np.round(leak / 2**bias_exp), -BIAS_MANT_MAX - 1, BIAS_MANT_MAX).astype(np.int32)
        errors = {"alpha_error": abs((DECAY_ONE - du - 1) / DECAY_ONE - alpha) if p.has_current else 0.0,
                  "beta_error": abs((DECAY_ONE - dv) / DECAY_ONE - beta),
                  "threshold_rel_error": abs(vth / lam - theta) / theta if theta is not None else 0.0,
                  "leak_max_error": float(np.max(np.abs(bias_mant * 2**bias_exp - leak), initial=0) / (lam * 64))}
        bias_err = 0.0
        for i, pr in incoming:
            src = plan.units[pr.src]
            if src.neuron is None:
                sigma = qin[pr.src].scale
            elif src.neuron.spiking:
                sigma = 1.0
            else:
                sigma = 64 * layers[pr.src].lam
            w, exp, mode = quantize_weights(pr.weight * (lam / sigma))
            bias = np.zeros(unit.size, np.int32)
            if pr.bias is not None:
                bias = np.clip(np.round(pr.bias * lam), -A_IN_MAX, A_IN_MAX).astype(np.int32)
                bias_err = max(bias_err, float(np.max(np.abs(bias / lam - pr.bias))))
            approx = w.astype(np.float64) * (2.0**exp * sigma / lam)
            projections[i] = ProjectionQuant(w, exp, mode, bias, sigma, _rel_error(approx, pr.weight))
        errors["bias_max_error"] = bias_err
        layers[name] = LayerQuant(lam, du, dv, vth, bias_mant, bias_exp, errors)
    return QuantizedPlan(qin, layers, projections)
