"""NIR graph -> Lava processes (float or bit-accurate fixed point), timed to match the reference executor.

Two steps. ``plan_graph`` (pure numpy, no Lava) reduces a NIR graph to *units* and *projections*:

* units are the Input nodes (sources) and the neuron nodes (LIF, CubaLIF, IF, LI, CubaLI);
* every chain of synaptic nodes (Affine, Linear, Conv2d, SumPool2d, AvgPool2d, Flatten, Scale) from one
  unit to another becomes one projection (the chain's biases, evaluated at zero input, become the bias of the
  target's first projection; the target's ``in_gain`` is folded in). A chain with a convolution or a pool
  stays a ``ConvChain`` of weight-sharing ops (memory grows with the kernel, not with the image squared);
  any other chain, and a chain that cannot fold its gains into one op, is composed into one matrix ``W``
  [out, in] by pushing basis vectors through it.

Timing. Every Lava Dense/Sparse/SynapseConv adds one step. A unit's *latency* ``lat`` is the number of projection hops
on the longest feed-forward path from an input; units of one recurrent component share a latency. A unit
processes graph step t of sample k at Lava step ``k*T + t + lat + 1`` (Lava counts steps from 1). So

    feed-forward projection src -> dst:  delay line of  lat(dst) - lat(src) - 1  steps, then the Dense;
    recurrent projection (same component): no delay; its Dense delivers s[t-1] at step t, the executor's
                                           "an edge leaving a neuron inside its cycle carries step t-1".

``build_network`` creates the processes: ``LIFReset`` (state zeroed at the start of each sample window,
reset_interval = T, reset_offset = lat + 1) for populations whose neurons share du, dv and vth,
``LIFPerNeuron`` (the same with one du, dv, vth per neuron) for heterogeneous ones, ``LIVoltage`` for
non-spiking neurons (LIFPerNeuron that never spikes and sends v), ``SynapseDense``/``SynapseSparse``
(Dense/Sparse that add the bias each step, and on recurrent edges drop the value in flight at the window
start), ``SynapseConv`` (the same for a ``ConvChain``, all its ops in one process, so one step) and
``DelayLine``, all in ``lava_processes``.
Windows of consecutive samples abut, so samples stream back to back in one run with no gap steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import nir
import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from iemf_neuro.errors import UserError
from iemf_neuro.models.fixed_point import MESSAGE_BITS, WEIGHT_BITS

from .nir_executor import int_tuple, padding_arg, stateless_op
from .nir_graph import NODE_TYPES, CheckedGraph, check_graph, strongly_connected, type_names, types_with
from .nir_semantics import DiscreteNeuron, graph_dt, graph_reset

SYNAPTIC_TYPES = types_with("lava", "weighted", "weight-sharing", "elementwise")
WEIGHT_SHARING_TYPES = types_with("lava", "weight-sharing")  # chains with one of these stay ConvChains
ELEMENTWISE_TYPES = types_with("lava", "elementwise")  # chains of only these are diagonal matrices
DENSE_MAX_DENSITY = 0.25  # sparser projections become Lava Sparse
BASIS_CHUNK = 512  # basis vectors pushed through a synaptic chain at once when composing it


@dataclass
class Unit:
    """A source (Input node) or a neuron population; Lava state is flat ``(size,)``."""

    name: str
    shape: tuple[int, ...]
    neuron: DiscreteNeuron | None  # None for sources
    latency: int = 0  # projection hops from the inputs

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def graded(self) -> bool:
        """Sends graded values (an Input's data, a non-spiking neuron's v), not binary spikes."""
        return self.neuron is None or not self.neuron.spiking

    @property
    def reset_offset(self) -> int:
        """Lava step (mod T) at which this unit's sample window starts."""
        return self.latency + 1


@dataclass
class ConvOp:
    """``conv2d`` of the flat state viewed as ``in_shape`` (C, H, W); a pool is a depthwise one (kernel of ones)."""

    weight: np.ndarray  # [out_channels, in_channels / groups, kh, kw]
    in_shape: tuple[int, int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] | str
    dilation: tuple[int, int]
    groups: int


@dataclass
class LinearOp:
    """``weight @ x`` of the flat state (an Affine/Linear node after a convolution or pool)."""

    weight: np.ndarray  # [out, in]


@dataclass
class ConvChain:
    """A projection's synapses as weight-sharing ops on flat state, applied in order. ``ops[weighted]`` carries
    the weights, every scalar factor of the chain (average pools' 1/area, uniform scales and gains) folded in;
    every other op is a sum pool, so integer weights and payloads stay integers (the fixed-point path)."""

    ops: list[ConvOp | LinearOp]
    weighted: int
    in_size: int
    out_size: int

    @property
    def kernel(self) -> np.ndarray:
        return self.ops[self.weighted].weight

    @property
    def shape(self) -> tuple[int, int]:
        return self.out_size, self.in_size

    def with_kernel(self, kernel: np.ndarray) -> "ConvChain":
        ops = list(self.ops)
        ops[self.weighted] = replace(ops[self.weighted], weight=kernel)
        return replace(self, ops=ops)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``[M, in_size] -> [M, out_size]`` in float64 (exact for integers below 2**53)."""
        y = torch.as_tensor(np.asarray(x), dtype=torch.float64).reshape(-1, self.in_size)
        m = y.shape[0]
        with torch.no_grad():
            for op in self.ops:
                w = torch.from_numpy(np.asarray(op.weight, dtype=np.float64))
                if isinstance(op, ConvOp):
                    y = F.conv2d(y.reshape(m, *op.in_shape), w, None, op.stride, op.padding, op.dilation, op.groups)
                else:
                    y = F.linear(y.reshape(m, -1), w)
        return y.reshape(m, self.out_size).numpy()


@dataclass
class Projection:
    """``a_in[dst] += W @ out[src]`` (+ bias), after ``delay`` extra steps; one Lava Dense, Sparse or
    SynapseConv."""

    src: str
    dst: str
    weight: np.ndarray | sp.csr_matrix | ConvChain  # [dst.size, src.size], in_gain folded in
    bias: np.ndarray | None  # [dst.size] or None
    recurrent: bool  # inside a cycle: carries step t-1, dropped at the window start
    delay: int = 0  # delay-line steps before the Dense


@dataclass
class LavaPlan:
    """Everything Lava needs, in graph names: units (topological order), projections, outputs."""

    dt: float
    units: dict[str, Unit]
    projections: list[Projection]
    outputs: dict[str, str]  # Output node -> unit it reads (spikes, or v for non-spiking neurons)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def inputs(self) -> dict[str, Unit]:
        return {n: u for n, u in self.units.items() if u.neuron is None}

    @property
    def neurons(self) -> dict[str, Unit]:
        return {n: u for n, u in self.units.items() if u.neuron is not None}

    @property
    def max_latency(self) -> int:
        return max(u.latency for u in self.units.values())


def _check_node(name: str, node: nir.NIRNode) -> None:
    kind = NODE_TYPES.get(type(node))
    if kind is not None and kind.lava_refusal:
        raise UserError(f"{type(node).__name__} node {name!r}: {kind.lava_refusal}")
    if kind is None or kind.lava is None:
        supported = types_with("lava", "unit", "output", "weighted", "weight-sharing", "elementwise")
        raise UserError(f"node {name!r} has type {type(node).__name__}, which the Lava builder does not support; "
                        f"supported: {type_names(supported)}")


def _check_neuron(name: str, p: DiscreteNeuron) -> None:
    if p.spiking and np.any(p.v_reset != 0):
        raise UserError(f"neuron node {name!r} resets to v_reset != 0, but Lava's LIF resets to 0; "
                        "export with v_reset = 0")


class _Graph:
    """Unit shapes and chain evaluation over a checked graph: Input nodes and neurons are units, every other
    node takes its shape from the graph's propagated shapes."""

    def __init__(self, checked: CheckedGraph, dt: float):
        self.graph = checked.graph
        self.preds = checked.preds
        for name, node in self.graph.nodes.items():
            _check_node(name, node)
        checked.require_fed()
        checked.require_neuron_in_cycles()
        self.neurons = checked.neurons(dt)
        for name, params in self.neurons.items():
            _check_neuron(name, params)
        self.ops = {n: stateless_op(node, n, torch.float64) for n, node in self.graph.nodes.items()
                    if isinstance(node, SYNAPTIC_TYPES + (nir.Output,))}
        self._shapes = {**checked.shapes, **checked.unit_shapes(), **{n: p.shape for n, p in self.neurons.items()}}

    def is_unit(self, name: str) -> bool:
        return NODE_TYPES[type(self.graph.nodes[name])].lava == "unit"

    def shape(self, name: str) -> tuple[int, ...]:
        """Output shape of a node (units: their own shape; synaptic nodes: propagated from their inputs)."""
        shape = self._shapes[name]
        if shape is None:
            raise UserError(f"node {name!r} ({type(self.graph.nodes[name]).__name__}) gets no shape from the "
                            "Input nodes (sizes that do not fit its kernel or weights); read the graph with "
                            "read_graph to see why")
        return shape

    def paths(self, dst: str) -> list[tuple[str, list[str]]]:
        """(unit, synaptic chain from it to ``dst``) for every path into ``dst``, in edge order."""
        out: list[tuple[str, list[str]]] = []
        for p in self.preds[dst]:
            if self.is_unit(p):
                out.append((p, []))
            else:
                out.extend((u, chain + [p]) for u, chain in self.paths(p))
        return out

    def apply(self, chain: list[str], x: torch.Tensor, with_bias: bool) -> torch.Tensor:
        for name in chain:
            node = self.graph.nodes[name]
            if not with_bias and isinstance(node, (nir.Affine, nir.Conv2d)):
                zero = self.ops[name](torch.zeros(1, *x.shape[1:], dtype=x.dtype))
                x = self.ops[name](x) - zero
            else:
                x = self.ops[name](x)
        return x

    def bias(self, name: str) -> torch.Tensor:
        """What the synaptic sub-graph feeding ``name`` delivers when every unit outputs zero."""
        node = self.graph.nodes[name]
        if self.is_unit(name):
            return torch.zeros(1, *self.shape(name), dtype=torch.float64)
        total = None
        for p in self.preds[name]:
            part = self.bias(p)
            total = part if total is None else total + part
        return total if isinstance(node, nir.Output) else self.ops[name](total)

    def matrix(self, chain: list[str], n_in: int, in_shape: tuple[int, ...]) -> np.ndarray | sp.csr_matrix:
        """The linear map of ``chain`` (biases removed) as ``[out, in]``: a diagonal for elementwise chains
        (identity, Flatten, Scale), else composed from basis vectors."""
        if all(isinstance(self.graph.nodes[n], ELEMENTWISE_TYPES) for n in chain):
            with torch.no_grad():
                diag = self.apply(chain, torch.ones(1, *in_shape, dtype=torch.float64), with_bias=False)
            if diag.numel() == n_in:
                return stored_matrix(sp.diags(diag.reshape(-1).numpy()).tocsr())
        blocks = []
        with torch.no_grad():
            for start in range(0, n_in, BASIS_CHUNK):
                stop = min(start + BASIS_CHUNK, n_in)
                basis = torch.zeros(stop - start, n_in, dtype=torch.float64)
                basis[torch.arange(stop - start), torch.arange(start, stop)] = 1.0
                out = self.apply(chain, basis.reshape(-1, *in_shape), with_bias=False)
                blocks.append(sp.csr_matrix(out.reshape(stop - start, -1).numpy().T))
        return stored_matrix(sp.hstack(blocks).tocsr())

    def conv_chain(self, chain: list[str], in_shape: tuple[int, ...], gain: float) -> ConvChain | None:
        """``chain`` (biases removed, times the target's uniform ``gain``) as weight-sharing ops, or None when
        it has no convolution or pool, or cannot fold its factors into one weighted op (a second weighted
        node, a non-uniform Scale), or convolves anything but a (C, H, W) state."""
        nodes = [self.graph.nodes[n] for n in chain]
        if not any(isinstance(node, WEIGHT_SHARING_TYPES) for node in nodes):
            return None
        ops: list[ConvOp | LinearOp] = []
        weighted, factor, shape = None, gain, in_shape
        for name, node in zip(chain, nodes):
            if isinstance(node, WEIGHT_SHARING_TYPES) and len(shape) != 3:
                return None
            if isinstance(node, (nir.Conv2d, nir.Affine, nir.Linear)):
                if weighted is not None:
                    return None
                weighted = len(ops)
                w = np.asarray(node.weight, dtype=np.float64)
                ops.append(LinearOp(w) if not isinstance(node, nir.Conv2d) else ConvOp(
                    w, shape, int_tuple(node.stride, 2), padding_arg(node.padding, 2), int_tuple(node.dilation, 2),
                    int(np.asarray(node.groups))))
            elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
                k = int_tuple(node.kernel_size, 2)
                if isinstance(node, nir.AvgPool2d):
                    factor /= k[0] * k[1]
                ops.append(ConvOp(np.ones((shape[0], 1) + k), shape, int_tuple(node.stride, 2),
                                  int_tuple(node.padding, 2), (1, 1), shape[0]))
            elif isinstance(node, nir.Scale):
                scale = np.asarray(node.scale, dtype=np.float64).ravel()
                if not np.all(scale == scale[0]):
                    return None
                factor *= float(scale[0])
            shape = self.shape(name)
        chain_ops = ConvChain(ops, 0 if weighted is None else weighted, int(np.prod(in_shape)), int(np.prod(shape)))
        return chain_ops if factor == 1.0 else chain_ops.with_kernel(chain_ops.kernel * factor)


def stored_matrix(mat: sp.csr_matrix) -> np.ndarray | sp.csr_matrix:
    """Dense above ``DENSE_MAX_DENSITY``, else sparse without explicit zeros."""
    mat.eliminate_zeros()
    return mat.toarray() if mat.nnz > DENSE_MAX_DENSITY * mat.shape[0] * mat.shape[1] else mat


def _fold_gain(weight, bias, gain: np.ndarray):
    """Scale row i by in_gain[i] (skipped when every gain is exactly 1, so no bit changes); a ConvChain has
    its (uniform) gain folded in already."""
    gain = np.asarray(gain, dtype=np.float64).ravel()
    if np.all(gain == 1.0):
        return weight, bias
    if isinstance(weight, ConvChain):
        return weight, None if bias is None else gain * bias
    weight = sp.diags(gain) @ weight if sp.issparse(weight) else gain[:, None] * weight
    return (sp.csr_matrix(weight) if sp.issparse(weight) else weight), (None if bias is None else gain * bias)


def _latencies(units: dict[str, Unit], projections: list[Projection]) -> None:
    """Longest feed-forward path in hops; a recurrent component shares one latency."""
    names = list(units)
    succ = {n: [] for n in names}
    for p in projections:
        succ[p.src].append(p.dst)
    comps = strongly_connected(names, succ)
    comp_of = {n: i for i, comp in enumerate(comps) for n in comp}
    for comp in comps:  # topological order
        members = set(comp)
        ins = [units[p.src].latency + 1 for p in projections if p.dst in members and p.src not in members]
        lat = max(ins) if ins else (0 if all(units[n].neuron is None for n in comp) else 1)
        for n in comp:
            units[n].latency = lat
    for p in projections:
        p.recurrent = comp_of[p.src] == comp_of[p.dst]
        p.delay = 0 if p.recurrent else units[p.dst].latency - units[p.src].latency - 1


def plan_graph(graph: nir.NIRGraph | CheckedGraph, dt: float | None = None) -> LavaPlan:
    """Reduce ``graph`` to units, composed projections and latencies (see the module docstring)."""
    if not isinstance(graph, (nir.NIRGraph, CheckedGraph)):
        raise UserError(f"expected a nir.NIRGraph, got {type(graph).__name__}; read the file with nir.read")
    checked = check_graph(graph)
    graph = checked.graph
    dt = graph_dt(graph, dt)
    graph_reset(graph)
    g = _Graph(checked, dt)
    units = {n: Unit(n, g.shape(n), g.neurons.get(n)) for n in graph.nodes if g.is_unit(n)}
    if not any(u.neuron is None for u in units.values()):
        raise UserError("the graph has no Input node; add one Input node per input array")
    projections: list[Projection] = []
    for dst, unit in units.items():
        if unit.neuron is None:
            continue
        chains: dict[str, list[list[str]]] = {}
        for src, chain in g.paths(dst):
            out_shape = g.shape(chain[-1]) if chain else units[src].shape
            if int(np.prod(out_shape)) != unit.size:
                raise UserError(f"neuron node {dst!r} has {unit.shape} neurons but receives shape {out_shape} "
                                f"from {src!r}; fix the synaptic nodes between them")
            chains.setdefault(src, []).append(chain)
        gain = np.broadcast_to(unit.neuron.in_gain, unit.shape).ravel()
        merged: dict[str, Any] = {}
        for src, paths in chains.items():
            src_shape = units[src].shape
            single = len(paths) == 1 and np.all(gain == gain[0])
            w = g.conv_chain(paths[0], src_shape, float(gain[0])) if single else None
            if w is None:
                w = g.matrix(paths[0], units[src].size, src_shape)
                for chain in paths[1:]:
                    w = w + g.matrix(chain, units[src].size, src_shape)
            merged[src] = w
        bias = sum(g.bias(p) for p in g.preds[dst]).reshape(-1).numpy()
        for i, (src, w) in enumerate(merged.items()):
            b = bias if (i == 0 and bias is not None and np.any(bias != 0)) else None
            w, b = _fold_gain(w, b, gain)
            projections.append(Projection(src, dst, w, b, recurrent=False))
    _latencies(units, projections)
    outputs = {}
    for name, node in graph.nodes.items():
        if isinstance(node, nir.Output):
            srcs = g.preds[name]
            if len(srcs) != 1 or not g.is_unit(srcs[0]):
                raise UserError(f"Output node {name!r} must be fed by exactly one neuron or Input node (got "
                                f"{srcs}); move synaptic nodes before a neuron node")
            outputs[name] = srcs[0]
    order = sorted(units, key=lambda n: units[n].latency)
    return LavaPlan(dt=dt, units={n: units[n] for n in order}, projections=projections, outputs=outputs,
                    metadata=dict(graph.metadata) if isinstance(graph.metadata, dict) else {})


@dataclass
class LavaNetwork:
    """Built processes, keyed by graph names; the runner attaches sources and recorders to these ports."""

    precision: str
    plan: LavaPlan
    input_ports: dict[str, list[Any]]  # Input node -> the InPorts its source must feed
    spike_ports: dict[str, Any]  # neuron node -> s_out (spiking) or v_out (non-spiking)
    neurons: dict[str, Any]  # neuron node -> its LIFReset / LIFPerNeuron / LIVoltage process
    processes: list[Any]  # every process built here

    def model_map(self) -> dict[Any, Any]:
        """Process (instance and class) -> ProcessModel: Lava then skips its slow directory search."""
        from .lava_processes import MODELS

        out = {}
        for proc in self.processes:
            out[proc] = out[type(proc)] = MODELS[(type(proc), self.precision)]
        return out


PER_NEURON = ("du", "dv", "vth")  # what Lava's LIFReset holds once per population


def neuron_params(unit: Unit, precision: str, quant: Any = None) -> dict[str, Any]:
    """Lava LIF parameters, one per neuron: du = 1 - alpha, dv = 1 - beta, vth = threshold, bias_mant = leak
    (float); the quantised integers for fixed point."""
    p = unit.neuron
    if precision == "fixed":
        q = quant.layers[unit.name]
        return dict(du=q.du, dv=q.dv, vth=q.vth, bias_mant=q.bias_mant, bias_exp=q.bias_exp)

    def flat(a: np.ndarray) -> np.ndarray:
        return np.broadcast_to(a, unit.shape).reshape(-1).astype(np.float64)

    return dict(du=1.0 - flat(p.alpha), dv=1.0 - flat(p.beta),
                vth=flat(p.threshold) if p.spiking else np.full(unit.size, np.inf), bias_mant=flat(p.leak), bias_exp=0)


def shared_params(params: dict[str, Any]) -> dict[str, Any] | None:
    """``params`` with du, dv and vth as one value each when all neurons share them (Lava's LIFReset), else None."""
    if not all(np.all(params[k] == params[k][0]) for k in PER_NEURON):
        return None
    return {**params, **{k: params[k][0].item() for k in PER_NEURON}}


def build_network(plan: LavaPlan, steps: int, precision: str = "float", quant: Any = None) -> LavaNetwork:
    """Create the Lava processes of ``plan`` for samples of ``steps`` time steps (see the module docstring).

    ``quant`` (a ``converters.quantize.QuantizedPlan``) is required for ``precision='fixed'``.
    """
    if precision not in ("float", "fixed"):
        raise UserError(f"precision {precision!r} is not supported; choose 'float' or 'fixed'")
    if precision == "fixed" and quant is None:
        raise UserError("fixed-point build needs the quantised plan; call converters.quantize.quantize_plan")
    from . import lava_processes as lava  # Lava sets multiprocessing's start method at import: only here

    processes: list[Any] = []
    neurons: dict[str, Any] = {}
    spike_ports: dict[str, Any] = {}
    for name, unit in plan.neurons.items():
        kwargs = dict(shape=(unit.size,), reset_interval=steps, reset_offset=unit.reset_offset % steps, name=name)
        params = neuron_params(unit, precision, quant)
        shared = shared_params(params)
        if not unit.neuron.spiking:
            proc = lava.LIVoltage(**kwargs, **params)
            spike_ports[name] = proc.v_out
        else:
            proc = lava.LIFPerNeuron(**kwargs, **params) if shared is None else lava.LIFReset(**kwargs, **shared)
            spike_ports[name] = proc.s_out
        neurons[name] = proc
        processes.append(proc)
    input_ports: dict[str, list[Any]] = {n: [] for n in plan.inputs}
    for i, proj in enumerate(plan.projections):
        src = plan.units[proj.src]
        dst = plan.units[proj.dst]
        if precision == "fixed":
            q = quant.projections[i]
            from lava.utils.weightutils import SignMode
            weight, bias, exp, extra = q.weight, q.bias, q.weight_exp, dict(
                weight_exp=q.weight_exp, num_weight_bits=WEIGHT_BITS, sign_mode=SignMode[q.sign_mode])
        else:
            weight, bias, exp, extra = proj.weight, proj.bias, 0, {}
            bias = np.zeros(dst.size) if bias is None else bias
        common = dict(bias=np.asarray(bias), name=f"{proj.src}->{proj.dst}")
        if proj.recurrent:
            common.update(reset_interval=steps, reset_offset=dst.reset_offset % steps)
        if isinstance(weight, ConvChain):
            syn = lava.SynapseConv(chain=weight, weight_exp=exp, **common)
        else:
            cls = lava.SynapseSparse if sp.issparse(weight) else lava.SynapseDense
            syn = cls(weights=weight, num_message_bits=MESSAGE_BITS if src.graded else 0, **common, **extra)
        processes.append(syn)
        entry = syn.s_in
        if proj.delay > 0:
            line = lava.DelayLine(shape=(src.size,), delay=proj.delay)
            line.s_out.connect(syn.s_in)
            processes.append(line)
            entry = line.s_in
        if src.neuron is None:
            input_ports[proj.src].append(entry)
        else:
            spike_ports[proj.src].connect(entry)
        syn.a_out.connect(neurons[proj.dst].a_in)
    return LavaNetwork(precision, plan, input_ports, spike_ports, neurons, processes)
