"""Fixed-point quantisation of a ``LavaPlan`` for Lava's bit-accurate Loihi models (``select_tag='fixed_pt'``).

The integer arithmetic (``iemf_neuro.models.fixed_point``, after lava/proc/lif/models.py and
lava/proc/dense/models.py)::

    a_in = shift(sum_j w_ij * payload_j, weight_exp)  (+ bias_i)    w: 8-bit (mixed sign: even, -256..254)
    u <- u * (4096 - (du + 1)) >> 12  +  a_in << 6                    du, dv: 12-bit; >> truncates toward 0
    v <- v * (4096 - dv) >> 12  +  u  +  bias_mant << bias_exp        u wraps, v saturates at 24 bits
    spike if v > vth << 6                                             vth: 17-bit mantissa

Each neuron layer gets one scale ``lam`` (a power of two: float current 1.0 = ``lam`` units of ``a_in``),
the largest for which the worst-case input fits 16-bit ``a_in``, the threshold fits 17 bits and every
projection bias fits ``SYNAPSE_BIAS_MAX`` (on chip a projection's bias is the neuron's 13-bit bias mantissa,
``converters.loihi2_ready``), so that threshold, bias and shift truncation lose the least. A projection from a
source whose payload per unit value is ``sigma`` (1 for spikes, ``127 / max|x|`` for graded inputs,
``64 lam_src`` for voltages) needs the real weight ``W lam / sigma = w * 2**weight_exp``. Its exponent is, by
range, the smallest whose 8-bit mantissa spans the largest weight; with calibration data, the one of
``e_range, e_range - 1, ...`` (clipping the few largest weights to halve the step of all others) whose layer
disagrees least, spike for spike, with the float network, layer by layer in forward order on the fixed-point
spikes of the layers before. A graph exported from a quantisation-aware run carries its scales
(``fixed_point`` in the metadata record), and they are used as they are: the fixed-point network is the one
that was trained.
A power-of-two fusion gain folded into a projection's weights lands entirely in that projection's exponent.
A convolutional projection (``ConvChain``) quantises its one weighted op's kernel the same way; its sum pools
keep integers integers, so the mantissas are shared exactly as Loihi shares a convolution's weights.
Decays and threshold mantissas are per neuron (a heterogeneous population: 12-bit decays of each neuron's own
alpha, beta, and its threshold at the layer's shared ``lam``); ``lam`` bounds the largest threshold.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import nir
import numpy as np
import scipy.sparse as sp
import torch

from iemf_neuro.errors import UserError
from iemf_neuro.models.fixed_point import (A_IN_MAX, BIAS_MANT_MAX, DECAY_ONE, PAYLOAD_MAX, STATE_SCALE,
                                           SYNAPSE_BIAS_MAX, VTH_MAX, FixedPointSpec, decay_ints, input_scale,
                                           loihi_lif, mantissa, mantissa_range, pow2_floor, range_exponent, shift,
                                           threshold_int)

from .nir_semantics import METADATA_KEY
from .nir_to_lava import ConvChain, LavaPlan

EXP_OFFSETS = (0, -1, -2)  # calibration: weight exponents tried below the range exponent
CALIBRATION_SAMPLES = 128  # training samples the CLI calibrates on


def calibration_indices(available: int, samples: int = CALIBRATION_SAMPLES, seed: int = 0) -> np.ndarray:
    """A seeded random subset of a split's rows, in order: splits are stored sorted by label, so their first
    rows would calibrate on one class only."""
    return np.sort(np.random.default_rng(seed).permutation(available)[:samples])


@dataclass
class InputQuant:
    """How an Input node's values become payloads: ``payload = round(x * scale)``."""

    scale: float  # payload per unit value (1 for binary spike inputs)
    binary: bool  # spike input (0/1), sent as is
    max_abs: float  # range the scale was chosen for


@dataclass
class ProjectionQuant:
    """Integer weights as Lava applies them (already clipped and truncated), exponent and bias."""

    weight: np.ndarray | sp.csr_matrix | ConvChain  # int32 mantissas w (mixed sign: even); ConvChain: its kernel
    weight_exp: int
    sign_mode: str  # lava.utils.weightutils.SignMode name
    bias: np.ndarray  # int32, added to a_in after the shift
    source_scale: float  # sigma: payload per unit value of the source
    weight_rel_error: float  # ||W_q - W||_F / ||W||_F (ConvChain: of the kernel)
    clipped: float = 0.0  # fraction of weights clipped to the largest mantissa


@dataclass
class LayerQuant:
    lam: float  # a_in units per unit float current
    du: np.ndarray  # int32 per neuron
    dv: np.ndarray
    vth: np.ndarray
    bias_mant: np.ndarray  # leak per step, v units (lam * 64 per unit)
    bias_exp: int
    errors: dict[str, float] = field(default_factory=dict)
    spike_agreement: float | None = None  # with the float network on the calibration data (calibrated only)


@dataclass
class QuantizedPlan:
    inputs: dict[str, InputQuant]
    layers: dict[str, LayerQuant]
    projections: list[ProjectionQuant]  # aligned with plan.projections
    method: str = "range"  # range | calibrated | trained (scales carried by a quantisation-aware graph)

    def report(self, plan: LavaPlan) -> dict[str, dict[str, Any]]:
        """Per layer: scale, threshold, decays, calibration agreement and the errors of everything feeding it."""
        out: dict[str, dict[str, Any]] = {}
        for name, q in self.layers.items():
            projs = [(p, pq) for p, pq in zip(plan.projections, self.projections) if p.dst == name]
            out[name] = {"method": self.method, "lam": q.lam, "vth": _one_or_all(q.vth), "du": _one_or_all(q.du),
                         "dv": _one_or_all(q.dv), **q.errors,
                         "calibration_spike_agreement": q.spike_agreement,
                         "projections": {p.src: {"weight_exp": pq.weight_exp, "sign_mode": pq.sign_mode,
                                                 "weight_rel_error": pq.weight_rel_error, "clipped": pq.clipped}
                                         for p, pq in projs}}
        return out


def _one_or_all(values: np.ndarray) -> int | list[int]:
    """A per-neuron integer for the report: one value when the neurons share it."""
    return int(values[0]) if np.all(values == values[0]) else values.tolist()


@dataclass
class Calibration:
    """Samples the quantiser tunes its exponents on: inputs and the float network's spikes on them."""

    inputs: dict[str, np.ndarray]  # [N, T, *shape] per Input node
    spikes: dict[str, np.ndarray]  # [N, T, *shape] per spiking neuron node: the float reference

    @classmethod
    def from_graph(cls, graph: nir.NIRGraph, inputs: dict[str, np.ndarray]) -> "Calibration":
        from .nir_executor import run_graph

        run = run_graph(graph, inputs)
        return cls({k: np.asarray(v, np.float64) for k, v in inputs.items()},
                   {k: v.numpy() for k, v in run.spikes.items()})


def input_quant(x: np.ndarray, scale: float | None = None) -> InputQuant:
    """Binary inputs pass as spikes; graded ones get ``scale`` (default: 8-bit payloads span ``max|x|``).
    A given scale (a quantisation-aware network's own) always means graded, even for data that is all 0/1."""
    x = np.asarray(x)
    if scale is None and x.size and np.all((x == 0) | (x == 1)):
        return InputQuant(1.0, True, 1.0)
    max_abs = float(np.max(np.abs(x))) if x.size else 0.0
    return InputQuant(input_scale(max_abs) if scale is None else scale, False, max_abs)


def quantize_inputs(x: np.ndarray, q: InputQuant) -> np.ndarray:
    limit = PAYLOAD_MAX if not q.binary else 1
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * q.scale), -limit, limit).astype(np.int32)


def _values(w) -> np.ndarray | sp.csr_matrix:
    """The stored weights: a ConvChain's kernel, else the matrix itself."""
    return w.kernel if isinstance(w, ConvChain) else w


def _scaled(w, factor: float):
    return w.with_kernel(w.kernel * factor) if isinstance(w, ConvChain) else w * factor


def _sign_mode(w) -> str:
    data = w.data if sp.issparse(w) else np.asarray(w)
    if data.size == 0 or data.min() >= 0:
        return "EXCITATORY"
    return "INHIBITORY" if data.max() <= 0 else "MIXED"


def quantize_weights(target: np.ndarray | sp.csr_matrix | ConvChain, exp: int | None = None) -> tuple[Any, int, str]:
    """``target ~ w * 2**exp`` with w an 8-bit Loihi mantissa (as Lava clips and truncates it); ``exp``
    defaults to the range exponent, the smallest whose mantissa spans the largest weight."""
    if isinstance(target, ConvChain):
        w, exp, mode = quantize_weights(target.kernel, exp)
        return target.with_kernel(w), exp, mode
    mode = _sign_mode(target)
    data = target.data if sp.issparse(target) else np.asarray(target)
    m = float(np.max(np.abs(data))) if data.size else 0.0
    if m == 0:
        return (target * 0).astype(np.int32) if sp.issparse(target) else np.zeros(data.shape, np.int32), 0, mode
    exp = range_exponent(m, mode == "MIXED") if exp is None else exp
    def q(a):
        return mantissa(torch.from_numpy(np.asarray(a, np.float64)), exp, mode == "MIXED").numpy().astype(np.int32)

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
    if isinstance(w, ConvChain):  # the sum pools are non-negative: a bound, exact for non-overlapping pools
        part = w.with_kernel(np.clip(w.kernel if positive else -w.kernel, 0, None))
        return part.apply(np.ones((1, w.in_size)))[0]
    if sp.issparse(w):
        part = w.maximum(0) if positive else (-w).maximum(0)
        return np.asarray(part.sum(axis=1)).ravel()
    return np.asarray(np.clip(w if positive else -w, 0, None).sum(axis=1)).ravel()


def _incoming(plan: LavaPlan, name: str) -> list[int]:
    return [i for i, pr in enumerate(plan.projections) if pr.dst == name]


def _range_lam(plan: LavaPlan, name: str, source_range: dict[str, float]) -> float:
    """Largest power of two with worst-case ``a_in`` in 16 bits and the threshold (or, for non-spiking
    neurons, the voltage's worst case) in range."""
    unit = plan.units[name]
    p = unit.neuron
    pos, neg = np.zeros(unit.size), np.zeros(unit.size)
    limits = []
    for i in _incoming(plan, name):
        pr = plan.projections[i]
        src_range = source_range.get(pr.src, 1.0)
        pos += _abs_rows(pr.weight, True) * src_range
        neg += _abs_rows(pr.weight, False) * src_range
        if pr.bias is not None:
            pos += np.clip(pr.bias, 0, None)
            neg += np.clip(-pr.bias, 0, None)
            if np.any(pr.bias != 0):
                limits.append(SYNAPSE_BIAS_MAX / float(np.max(np.abs(pr.bias))))
    worst = float(max(pos.max(initial=0), neg.max(initial=0))) or 1.0
    limits.append(A_IN_MAX / worst)
    if p.spiking:
        theta = float(np.min(p.threshold))
        if theta <= 0:
            raise UserError(f"neuron node {name!r} has threshold {theta} <= 0, which Loihi's unsigned vth "
                            "cannot hold; use a positive threshold or precision='float'")
        limits.append(VTH_MAX / float(np.max(p.threshold)))
    else:
        alpha = float(np.max(p.alpha)) if p.has_current else 0.0
        beta = float(np.max(p.beta))
        span = worst / max(1e-12, (1 - alpha)) / max(1e-12, (1 - beta)) if beta < 1 else worst * 1e3
        limits.append(VTH_MAX / span)  # below the largest threshold, so an on-chip LIF read as LI never spikes
    return pow2_floor(min(limits))


def _sigma(plan: LavaPlan, src: str, qin: dict[str, InputQuant], layers: dict[str, LayerQuant]) -> float:
    """Payload units per unit value of a projection's source."""
    neuron = plan.units[src].neuron
    if neuron is None:
        return qin[src].scale
    return 1.0 if neuron.spiking else STATE_SCALE * layers[src].lam


def _per_value(fn, *values: np.ndarray) -> np.ndarray:
    """int32 ``fn(*v)`` for each neuron's values ``v``, evaluated once per distinct ``v`` (a uniform population:
    once)."""
    distinct, inverse = np.unique(np.stack(values, axis=1), axis=0, return_inverse=True)
    return np.array([fn(*v) for v in distinct.tolist()], np.int32)[inverse.ravel()]


def _quantize_layer(plan: LavaPlan, name: str, lam: float, exps: dict[int, int | None], qin: dict[str, InputQuant],
                    layers: dict[str, LayerQuant]) -> tuple[LayerQuant, dict[int, ProjectionQuant]]:
    """The integers of one layer at scale ``lam`` and the given projection exponents (None: by range)."""
    unit = plan.units[name]
    p = unit.neuron
    alpha, beta, leak, theta = (np.broadcast_to(a, unit.shape).reshape(-1).astype(np.float64)
                                for a in (p.alpha, p.beta, p.leak, p.threshold if p.spiking else np.inf))
    du, dv = _per_value(lambda a, b: decay_ints(a if p.has_current else None, b), alpha, beta).T
    vth = _per_value(lambda t: threshold_int(t, lam), theta) if p.spiking else np.full(unit.size, VTH_MAX, np.int32)
    leak = leak * lam * STATE_SCALE
    lmax = float(np.max(np.abs(leak))) if leak.size else 0.0
    bias_exp = int(np.clip(math.ceil(math.log2(lmax / BIAS_MANT_MAX)), 0, 7)) if lmax > 0 else 0
    bias_mant = np.clip(np.round(leak / 2**bias_exp), -BIAS_MANT_MAX - 1, BIAS_MANT_MAX).astype(np.int32)
    errors = {"alpha_error": float(np.max(np.abs((DECAY_ONE - du - 1) / DECAY_ONE - alpha))) if p.has_current
              else 0.0,
              "beta_error": float(np.max(np.abs((DECAY_ONE - dv) / DECAY_ONE - beta))),
              "threshold_rel_error": float(np.max(np.abs(vth / lam - theta) / theta)) if p.spiking else 0.0,
              "leak_max_error": float(np.max(np.abs(bias_mant * 2**bias_exp - leak), initial=0)
                                      / (lam * STATE_SCALE))}
    bias_err, projections = 0.0, {}
    for i, exp in exps.items():
        pr = plan.projections[i]
        sigma = _sigma(plan, pr.src, qin, layers)
        target = _scaled(pr.weight, lam / sigma)
        w, exp, mode = quantize_weights(target, exp)
        bias = np.zeros(unit.size, np.int32)
        if pr.bias is not None:
            bias = np.clip(np.round(pr.bias * lam), -SYNAPSE_BIAS_MAX, SYNAPSE_BIAS_MAX).astype(np.int32)
            bias_err = max(bias_err, float(np.max(np.abs(bias / lam - pr.bias))))
        approx = _values(w).astype(np.float64) * (2.0**exp * sigma / lam)
        top = mantissa_range(mode == "MIXED")[0] * 2.0**exp
        data = _values(target).data if sp.issparse(target) else np.asarray(_values(target))
        clipped = float(np.mean(np.abs(data) > top)) if data.size else 0.0
        projections[i] = ProjectionQuant(w, exp, mode, bias, sigma, _rel_error(approx, _values(pr.weight)), clipped)
    errors["bias_max_error"] = bias_err
    return LayerQuant(lam, du, dv, vth, bias_mant, bias_exp, errors), projections


def _check_trained_bias(plan: LavaPlan, name: str, lam: float) -> None:
    """A trained scale from before biases were bounded would have its biases clipped: refuse instead."""
    for i in _incoming(plan, name):
        bias = plan.projections[i].bias
        if bias is not None and np.any(np.abs(np.round(bias * lam)) > SYNAPSE_BIAS_MAX):
            raise UserError(f"layer {name!r}: the graph's fixed_point scale puts its bias beyond the neuron's 13-bit "
                            "bias mantissa (a record from an older version); fine-tune and re-export the run")


def trained_spec(plan: LavaPlan) -> FixedPointSpec | None:
    """The scales a quantisation-aware graph carries in its metadata record, if any."""
    text = plan.metadata.get(METADATA_KEY)
    if text is None:
        return None
    record = json.loads(text.decode() if isinstance(text, bytes) else str(text))
    return FixedPointSpec.from_dict(record["fixed_point"]) if record.get("fixed_point") else None


def _a_in(plan: LavaPlan, name: str, projections: dict[int, ProjectionQuant],
          payloads: dict[str, np.ndarray]) -> torch.Tensor:
    """A layer's integer a_in [T, N, size] from its sources' payloads [T, N, size]."""
    total = None
    for i, pq in projections.items():
        x = payloads[plan.projections[i].src]
        flat = x.reshape(-1, x.shape[-1])
        w = pq.weight
        acc = w.apply(flat) if isinstance(w, ConvChain) else (w.astype(np.float64) @ flat.T).T
        a = shift(torch.from_numpy(np.asarray(acc)).reshape(*x.shape[:2], -1), pq.weight_exp) + torch.from_numpy(
            pq.bias.astype(np.float64))
        total = a if total is None else total + a
    return total


def _run_layer(plan: LavaPlan, name: str, q: LayerQuant, projections: dict[int, ProjectionQuant],
               payloads: dict[str, np.ndarray]) -> np.ndarray:
    """Spikes (or, non-spiking, v) [T, N, size] of one layer in fixed point (per-neuron du, dv and vth)."""
    per_neuron = [torch.from_numpy(x.astype(np.float64)) for x in (q.du, q.dv, q.vth)]
    bias = torch.from_numpy((q.bias_mant.astype(np.float64) * 2.0**q.bias_exp))
    spiking = plan.units[name].neuron.spiking
    spikes, volts = loihi_lif(_a_in(plan, name, projections, payloads), *per_neuron, bias, spiking)
    return (spikes if spiking else volts).numpy()


def _tuned(plan: LavaPlan, name: str, calibration: Calibration | None) -> bool:
    """Whether a layer is measured against the float reference: spiking and recorded in the calibration."""
    return calibration is not None and plan.units[name].neuron.spiking and name in calibration.spikes


def quantize_plan(plan: LavaPlan, inputs: dict[str, np.ndarray],
                  calibration: Calibration | None = None) -> QuantizedPlan:
    """Choose scales, exponents and integers for every layer and projection (see the module docstring).

    ``inputs`` (the data to run, ``[N, T, *shape]`` per Input node) sets each graded input's payload scale,
    unless the graph carries trained scales; ``calibration`` (feed-forward graphs) tunes the exponents.
    """
    spec = trained_spec(plan)
    if spec is not None:
        missing = sorted(set(plan.neurons) - set(spec.layers))
        if missing:
            raise UserError(f"the graph's fixed_point record has no scales for layers {missing}; re-export the run")
    if calibration is not None and any(p.recurrent for p in plan.projections):
        raise UserError("fixed-point calibration supports feed-forward graphs only; quantise this graph by range "
                        "(no calibration)")
    if spec is not None and set(spec.input_scale) != set(plan.inputs):
        raise UserError(f"the graph's fixed_point record has input scales for {sorted(spec.input_scale)}, the graph "
                        f"has inputs {sorted(plan.inputs)}; re-export the run")
    ranged = calibration.inputs if calibration is not None else inputs  # the deployed integers never see test data
    qin = {n: input_quant(ranged[n], spec.input_scale[n] if spec else None) for n in plan.inputs}
    source_range = {n: (1.0 if q.binary else q.max_abs) for n, q in qin.items()}
    layers: dict[str, LayerQuant] = {}
    projections: list[ProjectionQuant | None] = [None] * len(plan.projections)
    payloads = {n: quantize_inputs(_time_major(calibration.inputs[n]), q)
                for n, q in qin.items()} if calibration is not None else {}
    for name in plan.neurons:
        incoming = _incoming(plan, name)
        tune = _tuned(plan, name, calibration)
        if spec is not None:
            lam = spec.layers[name].lam
            _check_trained_bias(plan, name, lam)
            candidates = [{i: spec.layers[name].weight_exp[plan.projections[i].src] for i in incoming}]
        else:
            lam = _range_lam(plan, name, source_range)
            base = {i: quantize_weights(_scaled(plan.projections[i].weight,
                                                lam / _sigma(plan, plan.projections[i].src, qin, layers)))[1]
                    for i in incoming}
            offsets = product(EXP_OFFSETS, repeat=len(incoming)) if tune else [(0,) * len(incoming)]
            candidates = [{i: base[i] + o for i, o in zip(incoming, offs)} for offs in offsets]
        best = None  # (agreement, layer, projections, spikes); the first of equals wins: range before clipping
        for exps in candidates:
            lq, pqs = _quantize_layer(plan, name, lam, exps, qin, layers)
            if not tune:
                best = (None, lq, pqs, None)
                break
            out = _run_layer(plan, name, lq, pqs, payloads)
            agreement = float(np.mean(out == _time_major(calibration.spikes[name])))
            if best is None or agreement > best[0]:
                best = (agreement, lq, pqs, out)
        agreement, lq, pqs, out = best
        lq.spike_agreement = agreement
        layers[name] = lq
        for i, pq in pqs.items():
            projections[i] = pq
        if calibration is not None:
            payloads[name] = out if out is not None else _run_layer(plan, name, lq, pqs, payloads)
    method = "trained" if spec is not None else ("calibrated" if calibration is not None else "range")
    return QuantizedPlan(qin, layers, projections, method)


def _time_major(x: np.ndarray) -> np.ndarray:
    """[N, T, *shape] -> [T, N, size]."""
    x = np.asarray(x)
    return x.reshape(*x.shape[:2], -1).transpose(1, 0, 2)


def simulate_fixed(plan: LavaPlan, quant: QuantizedPlan, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Bit-exact fixed-point run of a feed-forward plan without Lava (calibration, benchmarks, tests): every
    neuron layer's spikes (non-spiking: integer v) ``[N, T, *shape]``, equal to Lava's ``fixed_pt`` models."""
    if any(p.recurrent for p in plan.projections):
        raise UserError("simulate_fixed supports feed-forward graphs only; simulate recurrent graphs in Lava")
    payloads = {n: quantize_inputs(_time_major(x), quant.inputs[n]) for n, x in inputs.items()}
    out = {}
    for name, unit in plan.neurons.items():
        pqs = {i: quant.projections[i] for i in _incoming(plan, name)}
        payloads[name] = _run_layer(plan, name, quant.layers[name], pqs, payloads)
        out[name] = payloads[name].transpose(1, 0, 2).reshape(-1, payloads[name].shape[0], *unit.shape)
    return out
