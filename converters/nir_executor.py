"""Reference NIR executor in PyTorch: the oracle the exporter and the Lava builder are checked against.

Semantics (``docs/nir.md``):

* Time is discrete with the step ``dt`` (recorded in the graph, or passed); neurons follow
  ``converters.nir_semantics`` (forward Euler, current first, reset in the step of the spike).
* Every node's output at step t is computed from its inputs' outputs at step t: synaptic nodes (Affine,
  Conv2d, pooling, ...) are instantaneous, no latency is added anywhere.
* Several edges into one node are summed, in the order the edges appear in ``graph.edges``.
* A cycle must pass through a neuron node; an edge that leaves a neuron and stays inside its cycle
  (strongly connected component) carries that neuron's output of step t-1 (zero at t = 0).

Nodes outside cycles run over the whole train at once, time-major ``[T*N, ...]`` exactly as ``IEMFNet``
runs its synapses, so that the float arithmetic (and BLAS batching) is the same and spikes match bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import nir
import numpy as np
import torch
import torch.nn.functional as F

from iemf_neuro.errors import UserError

from .nir_graph import NODE_TYPES, CheckedGraph, check_graph, flatten_dims, type_names
from .nir_semantics import DiscreteNeuron, graph_dt, graph_reset, is_neuron

Tensor = torch.Tensor


@dataclass
class GraphRun:
    """What one run of a graph produced; every tensor is batch-major ``[N, T, *shape]``."""

    outputs: dict[str, Tensor]  # Output node -> its summed input
    spikes: dict[str, Tensor]  # neuron node -> spikes (LI / CubaLI: membrane voltage)
    voltages: dict[str, Tensor] = field(default_factory=dict)  # neuron node -> v after reset (if asked)
    dt: float = 1.0  # the step the graph was simulated at


def _as_tensor(value, dtype: torch.dtype, device: torch.device | str | None = None) -> Tensor:
    return torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=dtype, device=device)


def int_tuple(value, n: int) -> tuple[int, ...]:
    arr = np.atleast_1d(np.asarray(value)).astype(int)
    return tuple(int(v) for v in (np.repeat(arr, n) if arr.size == 1 else arr))


def padding_arg(value, n: int):
    value = value.decode() if isinstance(value, bytes) else value
    if isinstance(value, np.ndarray) and value.dtype.kind in "SUO":
        value = str(value.item() if value.ndim == 0 else value[()])
    return value if isinstance(value, str) else int_tuple(value, n)


def _flatten(node: nir.Flatten, name: str) -> Callable[[Tensor], Tensor]:
    """The dimensions it flattens are read against its declared input_type (``nir_graph.flatten_dims``)."""
    in_type = node.input_type.get("input")
    if in_type is None:
        raise UserError(f"Flatten node {name!r} has no input_type; give it the shape it flattens")
    start, end = flatten_dims(node, len(np.atleast_1d(in_type)))
    return lambda x: torch.flatten(x, start + 1, end + 1)


def stateless_op(node: nir.NIRNode, name: str, dtype: torch.dtype,
                 device: torch.device | str | None = None) -> Callable[[Tensor], Tensor]:
    """The function ``[M, *in] -> [M, *out]`` of a synaptic (time-free) node; M folds batch and time.
    Its parameters live on ``device`` (default: the CPU)."""
    if isinstance(node, (nir.Input, nir.Output)):
        return lambda x: x
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = _as_tensor(node.weight, dtype, device)
        if w.ndim != 2:
            raise UserError(f"{type(node).__name__} node {name!r} has a {w.ndim}-D weight; only 2-D weights "
                            "[out, in] are supported")
        b = _as_tensor(node.bias, dtype, device) if isinstance(node, nir.Affine) else None
        return lambda x: F.linear(x, w, b)
    if isinstance(node, nir.Scale):
        s = _as_tensor(node.scale, dtype, device)
        return lambda x: x * s
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        n = 1 if isinstance(node, nir.Conv1d) else 2
        conv = F.conv1d if n == 1 else F.conv2d
        w, b = _as_tensor(node.weight, dtype, device), _as_tensor(node.bias, dtype, device)
        kw = dict(stride=int_tuple(node.stride, n), padding=padding_arg(node.padding, n),
                  dilation=int_tuple(node.dilation, n), groups=int(np.asarray(node.groups)))
        return lambda x: conv(x, w, b, **kw)
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        k, s, p = int_tuple(node.kernel_size, 2), int_tuple(node.stride, 2), int_tuple(node.padding, 2)
        divisor = 1 if isinstance(node, nir.SumPool2d) else None
        return lambda x: F.avg_pool2d(x, k, s, p, count_include_pad=True, divisor_override=divisor)
    if isinstance(node, nir.Flatten):
        return _flatten(node, name)
    if isinstance(node, nir.Threshold):
        thr = _as_tensor(node.threshold, dtype, device)
        return lambda x: (x > thr).to(dtype)
    raise UserError(f"node {name!r} has type {type(node).__name__}, which the reference executor does not "
                    f"support; supported: {type_names(tuple(NODE_TYPES))}")


class NeuronPopulation:
    """State of one neuron node over a batch; ``step`` applies the equations of ``nir_semantics``."""

    def __init__(self, params: DiscreteNeuron, batch: int, dtype: torch.dtype):
        t = lambda a: _as_tensor(a, dtype)  # noqa: E731 - local cast helper
        self.p = params
        self.alpha, self.beta = t(params.alpha), t(params.beta)
        self.in_gain, self.leak = t(params.in_gain), t(params.leak)
        self.threshold = t(params.threshold) if params.spiking else None
        self.v_reset = t(params.v_reset) if params.spiking else None
        self.u = torch.zeros(batch, *params.shape, dtype=dtype)
        self.v = torch.zeros_like(self.u)

    def step(self, current: Tensor) -> Tensor:
        """u = alpha u + in_gain I;  v = (beta v + u) + leak;  s = v > thr;  v <- v_reset where s."""
        drive = self.in_gain * current
        self.u = self.alpha * self.u + drive if self.p.has_current else drive
        v = self.beta * self.v + self.u + self.leak
        if self.threshold is None:
            self.v = v
            return v
        spikes = v > self.threshold
        self.v = torch.where(spikes, self.v_reset, v)
        return spikes.to(v.dtype)


def _delay_steps(node: nir.Delay, dt: float, name: str) -> np.ndarray:
    steps = np.asarray(node.delay, dtype=np.float64) / dt
    if not np.all(np.isfinite(steps)) or np.any(steps < 0) or not np.allclose(steps, np.round(steps)):
        raise UserError(f"Delay node {name!r}: delays must be non-negative multiples of dt={dt}; "
                        "re-export with whole-step delays")
    return np.round(steps).astype(int)


def _delay(x: Tensor, steps: np.ndarray) -> Tensor:
    """y[t] = x[t - d] per element (zero before the train starts); x is time-major [T, N, *shape]."""
    d = np.broadcast_to(steps, x.shape[2:])
    out = torch.zeros_like(x)
    for k in np.unique(d):
        shifted = torch.zeros_like(x)
        if k < x.shape[0]:
            shifted[k:] = x[: x.shape[0] - k]
        out = torch.where(torch.as_tensor(d == k), shifted, out)
    return out


def _order(nodes: list[str], preds: dict[str, list[str]], skip: Callable[[str, str], bool]) -> list[str]:
    """Kahn's topological order of ``nodes`` over edges inside ``nodes`` (minus skipped ones); acyclic, as every
    cycle passes through a neuron node (``CheckedGraph.require_neuron_in_cycles``)."""
    inside = set(nodes)
    deps = {n: {p for p in preds[n] if p in inside and not skip(p, n)} for n in nodes}
    order: list[str] = []
    while deps:
        ready = [n for n in nodes if n in deps and not deps[n]]
        for n in ready:
            order.append(n)
            del deps[n]
        for d in deps.values():
            d.difference_update(ready)
    return order


class _Plan:
    """The run order over a checked graph's components, with its cut (feedback) edges."""

    def __init__(self, checked: CheckedGraph):
        self.graph = graph = checked.graph
        names = list(graph.nodes)
        self.preds = checked.preds
        checked.require_fed()
        checked.require_neuron_in_cycles()
        self.steps: list[tuple[str, list[str]]] = []  # ("node", [name]) or ("cycle", ordered names)
        for comp in checked.components:
            if not checked.is_cyclic(comp):
                self.steps.append(("node", comp))
                continue
            members = set(comp)
            bad = [n for n in comp if _runs(checked, n) == "delay"]
            if bad:
                raise UserError(f"Delay node {bad[0]!r} lies on a cycle, which the executor does not support; "
                                "move the delay out of the recurrent loop")
            ordered = _order([n for n in names if n in members], self.preds,
                             lambda p, n: self.is_feedback(p, n, members))
            self.steps.append(("cycle", ordered))

    def is_feedback(self, src: str, dst: str, members: set[str]) -> bool:
        return src in members and dst in members and is_neuron(self.graph.nodes[src])


def _check_inputs(checked: CheckedGraph, inputs: dict, dtype: torch.dtype) -> tuple[dict[str, Tensor], int, int]:
    expected = checked.names(nir.Input)
    missing, extra = sorted(set(expected) - set(inputs)), sorted(set(inputs) - set(expected))
    if missing or extra:
        raise UserError(f"inputs {sorted(inputs)} do not match the graph's Input nodes {sorted(expected)}; "
                        "pass one [N, T, *shape] array per Input node")
    out, sizes, shapes = {}, set(), checked.unit_shapes()
    for name in expected:
        x = torch.as_tensor(np.asarray(inputs[name]) if not isinstance(inputs[name], Tensor) else inputs[name])
        shape = shapes[name]
        if x.ndim != 2 + len(shape) or tuple(x.shape[2:]) != shape:
            dims = ", ".join(map(str, shape))
            raise UserError(f"input {name!r} has shape {tuple(x.shape)}, expected [N, T, {dims}]; "
                            "pass batch-major arrays")
        sizes.add(tuple(x.shape[:2]))
        out[name] = x.to(dtype).transpose(0, 1).contiguous()  # time-major [T, N, ...]
    if len(sizes) != 1:
        raise UserError(f"inputs disagree on [N, T]: {sorted(sizes)}; give every input the same batch and steps")
    (N, T), = sizes
    return out, N, T


def _summed(name: str, parts: list[Tensor]) -> Tensor:
    total = parts[0]
    for part in parts[1:]:
        if part.shape != total.shape:
            raise UserError(f"edges into node {name!r} carry shapes {tuple(total.shape)} and {tuple(part.shape)}; "
                            "every input of a node must have the same shape")
        total = total + part
    return total


def _over_time(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Apply a time-free op to a time-major train by folding T into the batch (as ``IEMFNet`` does)."""
    T, N = x.shape[:2]
    y = fn(x.reshape(T * N, *x.shape[2:]))
    return y.reshape(T, N, *y.shape[1:])


def _runs(checked: CheckedGraph, name: str) -> str:
    """How the executor runs a node (its table entry; a type the table lacks is an op that ``stateless_op``
    refuses)."""
    kind = checked.kind(name)
    return kind.run if kind else "op"


def run_graph(graph: nir.NIRGraph | CheckedGraph, inputs: dict[str, np.ndarray | Tensor], dt: float | None = None,
              dtype: torch.dtype = torch.float64, record_voltages: bool = False) -> GraphRun:
    """Simulate ``graph`` on batch-major ``inputs[name] -> [N, T, *shape]`` (one per Input node)."""
    checked = check_graph(graph)
    graph = checked.graph
    dt = graph_dt(graph, dt)
    graph_reset(graph)
    plan = _Plan(checked)
    signals, N, T = _check_inputs(checked, inputs, dtype)  # node -> time-major [T, N, ...]
    spikes: dict[str, Tensor] = {}
    voltages: dict[str, Tensor] = {}
    ops: dict[str, Callable[[Tensor], Tensor]] = {}
    neurons = {n: NeuronPopulation(p, N, dtype) for n, p in checked.neurons(dt).items()}
    for name, node in graph.nodes.items():
        run = _runs(checked, name)
        if run == "delay":
            steps = _delay_steps(node, dt, name)
            ops[name] = lambda x, s=steps: _delay(x, s)
        elif run == "op":
            ops[name] = stateless_op(node, name, dtype)
    with torch.no_grad():
        for kind, names in plan.steps:
            if kind == "node":
                name = names[0]
                if name in signals:
                    continue
                x = _summed(name, [signals[p] for p in plan.preds[name]])
                if name in neurons:
                    signals[name] = _run_neuron(neurons[name], x, voltages if record_voltages else None, name)
                elif _runs(checked, name) == "delay":
                    signals[name] = ops[name](x)
                else:
                    signals[name] = _over_time(ops[name], x)
            else:
                _run_cycle(plan, names, signals, ops, neurons, T, voltages if record_voltages else None)
    for name in neurons:
        spikes[name] = signals[name].transpose(0, 1)
    outputs = {n: signals[n].transpose(0, 1) for n in checked.names(nir.Output)}
    return GraphRun(outputs=outputs, spikes=spikes, voltages={k: v.transpose(0, 1) for k, v in voltages.items()},
                    dt=dt)


def _run_neuron(pop: NeuronPopulation, current: Tensor, voltages: dict | None, name: str) -> Tensor:
    if tuple(current.shape[2:]) != pop.p.shape:
        raise UserError(f"neuron node {name!r} has {pop.p.shape} neurons but receives shape "
                        f"{tuple(current.shape[2:])}; fix the synaptic node feeding it")
    out, vs = [], []
    for cur in current:
        out.append(pop.step(cur))
        vs.append(pop.v)
    if voltages is not None:
        voltages[name] = torch.stack(vs)
    return torch.stack(out)


def _run_cycle(plan: _Plan, names: list[str], signals: dict[str, Tensor], ops: dict, neurons: dict,
               T: int, voltages: dict | None) -> None:
    """Step a recurrent component: inside it, an edge leaving a neuron carries that neuron's step t-1 output."""
    members = set(names)
    prev = {n: torch.zeros(neurons[n].u.shape, dtype=neurons[n].u.dtype) for n in names if n in neurons}
    trains: dict[str, list[Tensor]] = {n: [] for n in names}
    vs: dict[str, list[Tensor]] = {n: [] for n in names if n in neurons}
    for t in range(T):
        now: dict[str, Tensor] = {}
        for name in names:
            parts = []
            for p in plan.preds[name]:
                if p not in members:
                    parts.append(signals[p][t])
                elif plan.is_feedback(p, name, members):
                    parts.append(prev[p])
                else:
                    parts.append(now[p])
            x = _summed(name, parts)
            if name in neurons:
                if tuple(x.shape[1:]) != neurons[name].p.shape:
                    raise UserError(f"neuron node {name!r} has {neurons[name].p.shape} neurons but receives shape "
                                    f"{tuple(x.shape[1:])}; fix the synaptic node feeding it")
                now[name] = neurons[name].step(x)
                vs[name].append(neurons[name].v)
            else:
                now[name] = ops[name](x)
            trains[name].append(now[name])
        prev = {n: now[n] for n in prev}
    for name in names:
        signals[name] = torch.stack(trains[name])
    if voltages is not None:
        voltages.update({n: torch.stack(v) for n, v in vs.items()})
