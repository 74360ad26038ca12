"""The hardware-ready build: a ``LavaPlan`` as Lava processes that Loihi 2 runs on chip.

``nir_to_lava.build_network`` adds host-only helpers (``lava_processes``) to Lava's processes; this build maps
each onto a process with an on-chip implementation in Lava's Loihi 2 flow, so what we simulate is what a chip
with lava-loihi would run:

    projection bias            -> the target LIFReset's bias_mant / bias_exp (exact when the target has no
                                  current state, du = 1: then u = a_in, and a bias in u is one in v)
    delay line + Dense         -> DelayDense, every synapse delayed (Loihi 2: at most 63 steps)
    sum pools + a convolution  -> one Conv, the pools folded into a kernel k times larger with stride k
    any other synaptic chain   -> its composed matrix (composed when built) in a Dense or Sparse
    terminal LI / CubaLI       -> a LIFReset that never spikes (vth at its largest), v read by a Monitor probe
    sample windows             -> LIFReset's reset_interval / reset_offset, as in the simulation build

Lava's Conv holds state as (W, H, C); units a Conv touches use that layout, every other unit NIR's flat order,
and matrices are permuted to match. What has no on-chip form is named with the reason (``ReadyPlan.host``) and
is built with the simulation build's host process only when ``allow_host`` is set: recurrent projections (the
spike in flight at a sample boundary would enter the next sample: Loihi has no per-synapse reset), LI units
whose v feeds another layer (LIF sends binary spikes, not v), populations with per-neuron du, dv or vth
(Lava's LIF holds one of each per process), delayed graded inputs (DelayDense takes binary spikes), and a
projection bias into a neuron with current state or beyond the 13-bit bias mantissa.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from iemf_neuro.errors import UserError
from iemf_neuro.models.fixed_point import BIAS_MANT_MAX, DECAY_ONE, MESSAGE_BITS, STATE_SHIFT, VTH_MAX, WEIGHT_BITS

from .nir_to_lava import BASIS_CHUNK, ConvChain, ConvOp, LavaPlan, neuron_params, shared_params, stored_matrix

MAX_DELAY = 63  # Loihi 2 synaptic delay (6 bits)
BIAS_EXP_MAX = 7  # Loihi bias exponent (3 bits, unsigned)


@dataclass(frozen=True)
class HostPart:
    """A process the chip cannot hold, and why."""

    process: str
    reason: str


@dataclass
class ReadyProjection:
    """One projection as built: ``kind`` conv | matrix (Dense or Sparse) | delay (DelayDense) | host
    (SynapseDense/Sparse). Matrices are composed and permuted to the units' Lava order only when built."""

    src: str
    dst: str
    kind: str
    weight: Any  # conv: Lava kernel [C_out, kw, kh, C_in / groups]; else the plan's matrix or ConvChain
    bias: np.ndarray  # per target neuron, NIR order: moved into the neuron, or carried by a host projection
    delay: int = 0
    conv: ConvOp | None = None  # the (composite) convolution, NIR geometry
    weight_exp: int = 0
    sign_mode: str | None = None
    recurrent: bool = False

    @property
    def name(self) -> str:
        return f"{self.src}->{self.dst}"

    @property
    def process(self) -> str:
        if self.kind in ("conv", "delay"):
            return {"conv": "Conv", "delay": "DelayDense"}[self.kind]
        if isinstance(self.weight, ConvChain):
            return "Dense/Sparse (composed chain)"
        return "Sparse" if sp.issparse(self.weight) else "Dense"


@dataclass
class ReadyNeuron:
    """A neuron population as built: ``kind`` lif | li-probe (on chip) | host-lif | host-li."""

    name: str
    kind: str
    params: dict[str, Any]  # LIFReset / LIFPerNeuron / LIVoltage keyword arguments, Lava order


@dataclass
class ReadyPlan:
    """Everything the hardware-ready build creates, in Lava's layouts, and what it keeps on the host."""

    precision: str
    shapes: dict[str, tuple[int, ...]]  # unit -> Lava state shape: (W, H, C) or (size,)
    orders: dict[str, np.ndarray]  # unit -> index into its NIR-flat state of each Lava state entry
    neurons: dict[str, ReadyNeuron]
    projections: list[ReadyProjection]
    host: list[HostPart] = field(default_factory=list)

    @property
    def on_chip(self) -> dict[str, str]:
        """Process name -> Lava process class, for everything the chip holds."""
        kinds = {"lif": "LIFReset", "li-probe": "LIFReset (v probed)"}
        out = {n: kinds[u.kind] for n, u in self.neurons.items() if u.kind in kinds}
        out.update({p.name: p.process for p in self.projections if p.kind != "host"})
        return out

    def matrix(self, p: ReadyProjection) -> np.ndarray | sp.csr_matrix:
        """``p``'s ``[dst, src]`` in the units' Lava order: a ConvChain composed (dense or sparse by density)."""
        rows, cols = self.orders[p.dst], self.orders[p.src]
        mat = p.weight
        if isinstance(mat, ConvChain):
            blocks = [sp.csr_matrix(mat.apply(np.eye(cols.size)[start:start + BASIS_CHUNK]).T)
                      for start in range(0, cols.size, BASIS_CHUNK)]
            mat = stored_matrix(sp.hstack(blocks).tocsr())
        mat = mat[rows][:, cols]
        return sp.csr_matrix(mat) if sp.issparse(mat) else np.ascontiguousarray(mat)

    def summary(self) -> dict[str, Any]:
        return {"build": "loihi2-ready", "on_chip": self.on_chip,
                "host": {h.process: h.reason for h in self.host}}


def lava_order(shape: tuple[int, ...], conv_layout: bool) -> np.ndarray:
    """Index into the NIR-flat state of each Lava state entry: (C, H, W) read as (W, H, C), or identity."""
    idx = np.arange(int(np.prod(shape, dtype=np.int64)))
    return idx.reshape(shape).transpose(2, 1, 0).ravel() if conv_layout else idx


def _lava_shape(shape: tuple[int, ...], conv_layout: bool) -> tuple[int, ...]:
    return (shape[2], shape[1], shape[0]) if conv_layout else (int(np.prod(shape, dtype=np.int64)),)


def single_conv(chain: ConvChain) -> ConvOp | None:
    """The chain as one convolution (leading non-overlapping sum pools folded into the kernel), or None."""
    *pools, last = chain.ops
    if not isinstance(last, ConvOp) or chain.weighted != len(chain.ops) - 1 or isinstance(last.padding, str):
        return None
    kernel = np.asarray(last.weight, dtype=np.float64)
    k = (1, 1)
    for p in pools:
        ph, pw = p.weight.shape[2:]
        if (p.stride != (ph, pw) or p.padding != (0, 0) or p.groups != p.in_shape[0]
                or p.in_shape[1] % ph or p.in_shape[2] % pw):
            return None
        k = (k[0] * ph, k[1] * pw)
    if k == (1, 1):
        return last
    if last.dilation != (1, 1):
        return None
    kernel = np.repeat(np.repeat(kernel, k[0], axis=2), k[1], axis=3)
    pad = last.padding
    return ConvOp(kernel, pools[0].in_shape, (last.stride[0] * k[0], last.stride[1] * k[1]),
                  (pad[0] * k[0], pad[1] * k[1]), (1, 1), last.groups)


def _fits_conv(conv: ConvOp, src_shape: tuple[int, ...], dst_shape: tuple[int, ...]) -> bool:
    """Lava's Conv reads its source's (C, H, W) state and writes its target's: both must be those shapes."""
    if tuple(conv.in_shape) != tuple(src_shape) or len(dst_shape) != 3:
        return False
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = conv.weight.shape[2:], conv.stride, conv.padding, conv.dilation
    out = (conv.weight.shape[0], (src_shape[1] + 2 * ph - dh * (kh - 1) - 1) // sh + 1,
           (src_shape[2] + 2 * pw - dw * (kw - 1) - 1) // sw + 1)
    return out == tuple(dst_shape)


def lava_kernel(kernel: np.ndarray) -> np.ndarray:
    """NIR/torch kernel [C_out, C_in/g, kh, kw] (correlation) -> Lava Conv's [C_out, kw, kh, C_in/g], which
    Lava flips spatially before correlating (it convolves)."""
    return np.ascontiguousarray(np.asarray(kernel).transpose(0, 3, 2, 1)[:, ::-1, ::-1])


def _neuron_bias(params: dict[str, Any], bias: np.ndarray, precision: str):
    """The neuron bias with the projections' ``bias`` moved in (float: bias_mant; fixed: (bias_mant, bias_exp)),
    and None; or None and the reason it cannot be."""
    du = np.asarray(params["du"])
    if precision == "float":
        if not np.all(du == 1.0):
            return None, "it has a current state (du < 1), so a bias in u is not one in v"
        return params["bias_mant"] + bias, None
    if not np.all(du == DECAY_ONE - 1):
        return None, "it has a current state (du < 4095), so a bias in u is not one in v"
    exp = int(params["bias_exp"])
    leak = params["bias_mant"].astype(np.int64)
    total = (leak << exp if exp >= 0 else leak >> -exp) + (bias.astype(np.int64) << STATE_SHIFT)
    for e in range(BIAS_EXP_MAX + 1):
        mant = total >> e
        if np.all(mant << e == total) and np.all(np.abs(mant) <= BIAS_MANT_MAX):
            return (mant.astype(np.int32), e), None
    return None, f"its bias needs {int(np.abs(total).max()).bit_length() + 1} bits; Loihi holds 13 << 7"


def ready_plan(plan: LavaPlan, precision: str = "float", quant: Any = None, allow_host: bool = False) -> ReadyPlan:
    """Decide, for every unit and projection of ``plan``, the on-chip process (see the module docstring).
    Raises UserError naming the first part without an on-chip form, unless ``allow_host``."""
    host: list[HostPart] = []
    feeds = {p.src for p in plan.projections}
    projections = []
    for i, p in enumerate(plan.projections):
        q = quant.projections[i] if precision == "fixed" else None
        src, dst = plan.units[p.src], plan.units[p.dst]
        weight, bias = (q.weight, q.bias) if q else (p.weight, p.bias)
        reason = None
        if p.recurrent:
            reason = "recurrent: its spike in flight at a sample boundary would enter the next sample"
        elif p.delay > MAX_DELAY:
            reason = f"needs a delay of {p.delay} steps; Loihi 2 synapses delay at most {MAX_DELAY}"
        elif p.delay and src.graded:
            reason = "a delayed graded input: DelayDense takes binary spikes"
        conv = single_conv(weight) if isinstance(weight, ConvChain) and not p.delay and not reason else None
        if conv is not None and not _fits_conv(conv, src.shape, dst.shape):
            conv = None  # the chain views the states in other shapes (a flatten around it): a matrix instead
        kind = "host" if reason else "conv" if conv else "delay" if p.delay else "matrix"
        proj = ReadyProjection(p.src, p.dst, kind, lava_kernel(conv.weight) if conv else weight,
                               np.zeros(dst.size) if bias is None else np.asarray(bias), p.delay, conv,
                               q.weight_exp if q else 0, q.sign_mode if q else None, p.recurrent)
        if reason:
            host.append(HostPart(proj.name, reason))
        projections.append(proj)
    conv_units = {n for p in projections if p.kind == "conv" for n in (p.src, p.dst)}
    shapes = {n: _lava_shape(u.shape, n in conv_units) for n, u in plan.units.items()}
    orders = {n: lava_order(u.shape, n in conv_units) for n, u in plan.units.items()}

    neurons: dict[str, ReadyNeuron] = {}
    for name, unit in plan.neurons.items():
        params = neuron_params(unit, precision, quant)
        shared = shared_params(params)
        incoming = [p for p in projections if p.dst == name and p.kind != "host"]
        moved = sum((p.bias for p in incoming), np.zeros(unit.size))
        unchanged = (params["bias_mant"], params["bias_exp"]) if precision == "fixed" else params["bias_mant"]
        merged, why = _neuron_bias(params, moved, precision) if np.any(moved != 0) else (unchanged, None)
        if why is not None:  # the biased projections keep their bias on the host
            for p in incoming:
                host.append(HostPart(p.name, f"bias into {name}: {why}"))
                p.kind = "host"
            merged = unchanged
        if precision == "fixed":
            params = {**params, "bias_mant": merged[0], "bias_exp": merged[1]}
        else:
            params = {**params, "bias_mant": merged}
        order = orders[name]
        params = {k: (np.asarray(v)[order].reshape(shapes[name]) if np.ndim(v) else v) for k, v in params.items()}
        if shared is None:
            kind, why = ("host-li" if not unit.neuron.spiking else "host-lif"), \
                "per-neuron du, dv or vth: Lava's LIF holds one of each per process"
        elif not unit.neuron.spiking and name in feeds:
            kind, why = "host-li", "its voltage feeds another layer: LIF sends binary spikes, not v"
        else:
            kind, why = ("lif" if unit.neuron.spiking else "li-probe"), None
            params = {**params, **{k: np.asarray(params[k]).ravel()[0].item() for k in ("du", "dv", "vth")}}
            if kind == "li-probe":
                params["vth"] = VTH_MAX if precision == "fixed" else np.inf
        if why is not None:
            host.append(HostPart(name, why))
        neurons[name] = ReadyNeuron(name, kind, params)

    if host and not allow_host:
        first = host[0]
        raise UserError(f"{first.process} cannot run on Loihi 2: {first.reason}; build with --allow-host to keep "
                        f"it on a host process ({len(host)} part(s) need the host)")
    return ReadyPlan(precision, shapes, orders, neurons, projections, host)


def build_ready_network(ready: ReadyPlan, plan: LavaPlan, steps: int) -> dict[str, Any]:
    """Create the processes of ``ready`` for samples of ``steps`` steps. Returns ``processes``, ``inputs`` (Input
    node -> (InPort its source feeds, whether to flatten the source's Lava shape for it)), ``records`` (unit ->
    the OutPort to record: s_out, or a host LIVoltage's v_out) and ``probed`` (LI unit -> its LIFReset, whose v
    a Monitor reads)."""
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.conv.process import Conv
    from lava.proc.lif.process import LIFReset
    from lava.proc.sparse.process import Sparse
    from lava.utils.weightutils import SignMode

    from . import lava_processes as host

    processes, outs, records, probed, targets = [], {}, {}, {}, {}
    for name, n in ready.neurons.items():
        unit = plan.units[name]
        kwargs = dict(shape=ready.shapes[name], reset_interval=steps, reset_offset=unit.reset_offset % steps,
                      name=name, **n.params)
        proc = {"lif": LIFReset, "li-probe": LIFReset, "host-lif": host.LIFPerNeuron,
                "host-li": host.LIVoltage}[n.kind](**kwargs)
        outs[name] = proc.v_out if n.kind == "host-li" else proc.s_out
        if n.kind == "li-probe":
            probed[name] = proc
        else:
            records[name] = outs[name]
        targets[name] = proc.a_in
        processes.append(proc)
    inputs: dict[str, list[Any]] = {n: [] for n in plan.inputs}
    for p in ready.projections:
        src = plan.units[p.src]
        bits = dict(num_message_bits=MESSAGE_BITS if src.graded else 0)
        fixed = ready.precision == "fixed"
        exps = dict(weight_exp=p.weight_exp, num_weight_bits=WEIGHT_BITS) if fixed else {}
        signs = dict(sign_mode=SignMode[p.sign_mode]) if fixed and p.sign_mode else {}
        name = p.name
        if p.kind == "conv":
            c = p.conv
            syn = Conv(weight=p.weight, input_shape=ready.shapes[p.src], padding=c.padding[::-1],
                       stride=c.stride[::-1], dilation=c.dilation[::-1], groups=c.groups, name=name, **bits, **exps)
        elif p.kind == "delay":
            mat = ready.matrix(p)
            mat = mat.toarray() if sp.issparse(mat) else mat
            syn = DelayDense(weights=mat, delays=np.full(mat.shape, p.delay, dtype=int), name=name, **bits, **exps,
                             **signs)
        else:
            mat = ready.matrix(p)
            sparse = sp.issparse(mat)
            if p.kind == "host":
                reset = dict(reset_interval=steps, reset_offset=plan.units[p.dst].reset_offset % steps) \
                    if p.recurrent else {}
                cls = host.SynapseSparse if sparse else host.SynapseDense
                syn = cls(weights=mat, bias=p.bias[ready.orders[p.dst]], name=name, **bits, **exps, **signs, **reset)
            else:
                syn = (Sparse if sparse else Dense)(weights=mat, name=name, **bits, **exps, **signs)
        processes.append(syn)
        entry = syn.s_in
        if p.kind == "host" and p.delay:
            line = host.DelayLine(shape=(src.size,), delay=p.delay)
            line.s_out.connect(entry)
            processes.append(line)
            entry = line.s_in
        flatten = p.kind != "conv" and len(ready.shapes[p.src]) > 1  # Dense takes flat state; Lava reshapes
        if src.neuron is None:
            inputs[p.src].append((entry, flatten))
        else:
            (outs[p.src].flatten() if flatten else outs[p.src]).connect(entry)
        a_out = syn.a_out
        if p.kind != "conv" and len(ready.shapes[p.dst]) > 1:
            a_out = a_out.reshape(ready.shapes[p.dst])
        a_out.connect(targets[p.dst])
    return {"processes": processes, "inputs": inputs, "records": records, "probed": probed}
