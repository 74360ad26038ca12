"""Exact event counts of a NIR graph run: spikes, synaptic ops, neuron updates, dense-equivalent MACs.

A *synaptic path* runs from a source (an Input node or a neuron node) through time-free nodes (Affine,
Linear, Conv, pooling, Flatten, Scale, Delay) to a target neuron node. Hardware folds each path into one
connection, so its connectivity is the boolean product of its nodes' connection masks. Conv and pooling
masks are Kronecker products over (channels, rows, cols), so the product stays factored and a source
neuron's fan-out is a product of per-axis counts, with padding excluded::

    fanout[c, i, j] = sum_o C[o, c] * sum_y R[y, i] * sum_x K[x, j]     (true targets, no padded taps)
    R[y, i] = 1  iff  i = y * stride - pad + k * dilation  for some tap k

Fan-outs are computed once per path; a run then costs one product per time step::

    synops[n, t] = sum_i  (x[n, t, i] != 0) * fanout[i]        binary sources (in {-1, 0, 1}): ACs
                                                                graded sources: MACs
    dense[t]     = sum_i fanout[i] = synapses of the path      (NeuroBench's Dense per step)
    active[n, t] = #target neurons reached by >= 1 event;  inactive = neurons - active

Counts are attributed to the *target* layer (its synapses do the work), as NeuroBench does.

The equivalent ANN (every neuron node a ReLU) is counted from the graph's own nodes, not from the folded
paths (folding a pooling layer into the next conv multiplies its connections)::

    MACs(Affine/Linear) = out x in          MACs(Conv) = out positions x c_out x c_in/groups x kernel taps
    adds(pooling)       = out elements x kernel taps          weights = every stored weight, read once
Conv kernel taps count structurally (a zero tap still holds a synapse); dense weights count their non-zero
entries; Scale and Delay keep connectivity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nir
import numpy as np

from converters.nir_graph import NEURON_TYPES, CheckedGraph, check_graph, flatten_shape, type_names, types_with
from iemf_neuro.errors import UserError

IDENTITY_TYPES = types_with("count", "identity")  # keep connectivity: no mask of their own
BRANCHES = ("audio", "visual", "fusion")
MATERIALIZE_LIMIT = 200_000_000  # elements of a dense connection mask we are willing to build
CHUNK_ELEMENTS = 20_000_000  # float32 elements of received-event buffers per chunk


@dataclass
class LayerCounts:
    """Counts for one neuron layer; every array is ``[N, T]`` (samples, time steps)."""

    name: str  # neuron node name
    branch: str  # audio | visual | fusion (or "network" for foreign graphs)
    node_type: str  # NIR type, e.g. "LIF"
    neurons: int  # population size
    synapses: int  # structural synapses into this layer (all incoming paths)
    max_fan_in: int  # largest number of synapses into one neuron
    sources: list[str]  # nodes whose events arrive here
    spikes: np.ndarray  # events emitted (non-zero outputs)
    acs: np.ndarray  # synaptic ops from binary sources
    macs: np.ndarray  # synaptic ops from graded sources
    active: np.ndarray  # neurons receiving >= 1 synaptic event

    @property
    def synops(self) -> np.ndarray:
        return self.acs + self.macs

    @property
    def inactive(self) -> np.ndarray:
        return self.neurons - self.active

    @property
    def dense_macs(self) -> np.ndarray:
        """Dense-equivalent MACs per step: every synapse every step."""
        return np.full(self.spikes.shape, self.synapses, dtype=np.int64)


@dataclass(frozen=True)
class AnnOps:
    """One layer of the equivalent ANN, once per inference: the nodes feeding one neuron node."""

    macs: int  # multiply-accumulates of its Affine/Linear/Conv nodes
    adds: int  # additions of its pooling nodes
    weights: int  # stored weights (read once per inference)


@dataclass
class GraphCounts:
    """Counts for every neuron layer of one run, plus the input events fed in."""

    layers: dict[str, LayerCounts]  # neuron node name -> counts, in graph order
    inputs: dict[str, np.ndarray]  # Input node -> [N, T] non-zero input values
    samples: int  # N
    time_steps: int  # T
    source: str = "given arrays"  # where the spikes came from (printed in reports)
    notes: list[str] = field(default_factory=list)
    ann: dict[str, AnnOps] = field(default_factory=dict)  # neuron node -> the equivalent ANN's ops into it

    @property
    def branches(self) -> list[str]:
        seen = [l.branch for l in self.layers.values()]
        return [b for b in dict.fromkeys(seen)]

    def per_sample(self, quantity: str, layers: list[str] | None = None) -> np.ndarray:
        """``quantity`` (spikes, acs, macs, synops, active, inactive, dense_macs) summed over time and layers: [N]."""
        names = layers if layers is not None else list(self.layers)
        total = np.zeros(self.samples, dtype=np.float64)
        for name in names:
            total += getattr(self.layers[name], quantity).sum(axis=1)
        return total

    def branch_layers(self, branch: str) -> list[str]:
        return [n for n, l in self.layers.items() if l.branch == branch]


@dataclass
class SynapticPath:
    """One folded connection source -> target; fan-out/fan-in are flat (row-major) per neuron."""

    source: str
    target: str
    nodes: list[str]  # time-free nodes in between
    fanout: np.ndarray  # [prod(source shape)] int64
    fanin: np.ndarray  # [prod(target shape)] int64
    factors: list[np.ndarray]  # boolean masks [out_k, in_k]; the path's mask is their Kronecker product

    def received(self, active: np.ndarray) -> np.ndarray:
        """Events arriving per target neuron for source activity ``active[M, prod(source)]`` -> [M, prod(target)]."""
        x = active.reshape(active.shape[0], *(f.shape[1] for f in self.factors)).astype(np.float32)
        for f in self.factors:
            x = np.tensordot(x, f.T.astype(np.float32), axes=([1], [0]))
        return x.reshape(active.shape[0], -1)


def branch_of(names: list[str]) -> dict[str, str]:
    """audio.* -> audio, visual.* -> visual, fusion/output -> fusion; a graph outside that scheme is one branch."""
    def ours(name: str) -> str | None:
        head = name.split(".")[0]
        if head in ("audio", "visual"):
            return head
        return "fusion" if head in ("fusion", "output") else None

    found = {n: ours(n) for n in names}
    if all(found.values()):
        return found  # type: ignore[return-value]
    return {n: "network" for n in names}


def _pairs(n: int) -> tuple[int, int]:
    a = np.atleast_1d(np.asarray(n)).astype(int).ravel()
    return (int(a[0]), int(a[-1]))


def axis_mask(n_in: int, kernel: int, stride: int, pad: int, dilation: int) -> np.ndarray:
    """Connectivity along one spatial axis [n_out, n_in]: output y reads input y*stride - pad + k*dilation."""
    n_out = (n_in + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
    if n_out < 1:
        raise UserError(f"a kernel of {kernel} (dilation {dilation}) does not fit an axis of {n_in} with padding "
                        f"{pad}; fix the layer's shape")
    mask = np.zeros((n_out, n_in), dtype=bool)
    for k in range(kernel):
        i = np.arange(n_out) * stride - pad + k * dilation
        ok = (i >= 0) & (i < n_in)
        mask[np.arange(n_out)[ok], i[ok]] = True
    return mask


def _same_pad(kernel: int, dilation: int) -> int:
    return dilation * (kernel - 1) // 2


def _conv_factors(node, name: str, in_shape: tuple[int, ...], keep_zeros: bool) -> list[np.ndarray]:
    w = np.asarray(node.weight)
    n = w.ndim - 2
    if len(in_shape) != n + 1:
        raise UserError(f"conv node {name!r} gets input shape {in_shape}; expected (channels, {n} spatial dims)")
    groups = int(np.asarray(node.groups))
    c_out, c_in = w.shape[0], in_shape[0]
    if w.shape[1] * groups != c_in:
        raise UserError(f"conv node {name!r}: weight {w.shape} with groups={groups} does not take {c_in} channels")
    channel = np.zeros((c_out, c_in), dtype=bool)
    per_out, per_in = c_out // groups, c_in // groups
    taps = np.abs(w).reshape(c_out, w.shape[1], -1).any(axis=2) | keep_zeros
    for g in range(groups):
        channel[g * per_out:(g + 1) * per_out, g * per_in:(g + 1) * per_in] = taps[g * per_out:(g + 1) * per_out]
    stride = np.broadcast_to(np.atleast_1d(node.stride), (n,)).astype(int)
    dilation = np.broadcast_to(np.atleast_1d(node.dilation), (n,)).astype(int)
    if isinstance(node.padding, str):
        pads = [0 if node.padding == "valid" else _same_pad(w.shape[2 + a], dilation[a]) for a in range(n)]
    else:
        pads = np.broadcast_to(np.atleast_1d(node.padding), (n,)).astype(int)
    return [channel] + [axis_mask(in_shape[1 + a], w.shape[2 + a], stride[a], pads[a], dilation[a]) for a in range(n)]


def _pool_factors(node, name: str, in_shape: tuple[int, ...]) -> list[np.ndarray]:
    if len(in_shape) != 3:
        raise UserError(f"pooling node {name!r} gets input shape {in_shape}; expected (channels, rows, cols)")
    k, s, p = (np.broadcast_to(np.atleast_1d(v), (2,)).astype(int) for v in
               (node.kernel_size, node.stride, node.padding))
    return [np.eye(in_shape[0], dtype=bool)] + [axis_mask(in_shape[1 + a], k[a], s[a], p[a], 1) for a in range(2)]


def op_factors(node: nir.NIRNode, name: str, in_shape: tuple[int, ...],
               keep_zeros: bool = False) -> list[np.ndarray] | None:
    """A time-free node's connection mask as Kronecker factors over its input dims; None keeps connectivity.
    ``keep_zeros``: a zero weight is still a synapse (what a chip's dense or conv synaptic memory stores)."""
    if isinstance(node, IDENTITY_TYPES):
        return None
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = np.asarray(node.weight)
        if w.ndim != 2 or w.shape[1] != int(np.prod(in_shape)):
            raise UserError(f"{type(node).__name__} node {name!r} has weight {w.shape} but gets {in_shape} "
                            "inputs; fix the graph's shapes")
        return [(w != 0) | keep_zeros]
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        return _conv_factors(node, name, in_shape, keep_zeros)
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        return _pool_factors(node, name, in_shape)
    raise UserError(f"node {name!r} has type {type(node).__name__}, which energy counting does not support; "
                    f"supported: {type_names(types_with('count', 'connection', 'identity'))}")


def _bool_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.astype(np.float32) @ b.astype(np.float32)) > 0


def _dense(factors: list[np.ndarray], what: str) -> np.ndarray:
    size = int(np.prod([f.size for f in factors], dtype=np.float64))
    if size > MATERIALIZE_LIMIT:
        raise UserError(f"{what}: the folded connection would need a {size:,}-element mask; keep a Flatten "
                        "before dense layers so the path stays factored")
    out = np.ones((1, 1), dtype=bool)
    for f in factors:
        out = np.kron(out, f)
    return out


def compose(current: list[np.ndarray] | None, nxt: list[np.ndarray], what: str) -> list[np.ndarray]:
    """Boolean product nxt o current, kept factored whenever the axes line up."""
    if current is None:
        return nxt
    c_out = tuple(f.shape[0] for f in current)
    n_in = tuple(f.shape[1] for f in nxt)
    if c_out == n_in:
        return [_bool_matmul(n, c) for n, c in zip(nxt, current)]
    if len(nxt) == 1:
        x = nxt[0].reshape(nxt[0].shape[0], *c_out).astype(np.float32)
        for f in current:
            x = np.tensordot(x, f.astype(np.float32), axes=([1], [0]))
        return [(x > 0).reshape(x.shape[0], -1)]
    return [_bool_matmul(_dense(nxt, what), _dense(current, what))]


def _out_shape(node: nir.NIRNode, shape: tuple[int, ...], factors: list[np.ndarray] | None) -> tuple[int, ...]:
    if isinstance(node, nir.Flatten):
        return flatten_shape(node, shape)
    if factors is None:
        return shape
    return tuple(f.shape[0] for f in factors)


def _counts_of(factors: list[np.ndarray] | None, size: int, axis: int) -> np.ndarray:
    if factors is None:
        return np.ones(size, dtype=np.int64)
    out = np.ones(1, dtype=np.int64)
    for f in factors:
        out = np.multiply.outer(out, f.sum(axis=axis).astype(np.int64)).ravel()
    return out


def synaptic_paths(graph: nir.NIRGraph | CheckedGraph, shapes: dict[str, tuple[int, ...]],
                   keep_zeros: bool = False) -> list[SynapticPath]:
    """Every source -> target neuron path with its folded connectivity. ``shapes``: per-sample source shapes;
    ``keep_zeros``: zero weights connect too (synaptic memory), else only non-zero ones do (synaptic ops)."""
    checked = check_graph(graph)
    checked.require_neuron_in_cycles()
    graph, succ = checked.graph, checked.succ
    paths: list[SynapticPath] = []
    for source in graph.nodes:
        node = graph.nodes[source]
        if not isinstance(node, (nir.Input, *NEURON_TYPES)):
            continue
        shape = shapes[source]
        stack = [(d, [], None, shape) for d in succ[source]]
        while stack:
            name, between, factors, cur_shape = stack.pop()
            node = graph.nodes[name]
            if isinstance(node, NEURON_TYPES):
                size_in = int(np.prod(shape))
                fanout = _counts_of(factors, size_in, 0)
                fanin = _counts_of(factors, int(np.prod(cur_shape)), 1)
                paths.append(SynapticPath(source, name, between, fanout, fanin,
                                          factors or [np.eye(d, dtype=bool) for d in shape]))
                continue
            if isinstance(node, (nir.Output, nir.Input)):
                continue
            step = op_factors(node, name, cur_shape, keep_zeros)
            what = f"path {source!r} -> {name!r}"
            new = factors if step is None else compose(factors, step, what)
            stack.extend((d, between + [name], new, _out_shape(node, cur_shape, step)) for d in succ[name])
    return paths


def _node_ann_ops(node: nir.NIRNode, out_shape: tuple[int, ...]) -> AnnOps:
    out = int(np.prod(out_shape))
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = np.asarray(node.weight)
        return AnnOps(int(w.size), 0, int(w.size))
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        w = np.asarray(node.weight)
        per_out = int(np.prod(w.shape[1:]))  # c_in / groups x kernel taps
        return AnnOps(out * per_out, 0, int(w.size))
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        return AnnOps(0, out * int(np.prod(np.broadcast_to(np.atleast_1d(node.kernel_size), (2,)))), 0)
    return AnnOps(0, 0, 0)


def ann_ops(graph: nir.NIRGraph | CheckedGraph, shapes: dict[str, tuple[int, ...]]) -> dict[str, AnnOps]:
    """The equivalent ANN's ops per neuron layer, node by node (each node counted once, for the first neuron
    node it reaches); ``shapes``: per-sample shapes of the Input and neuron nodes."""
    checked = check_graph(graph)
    graph, succ = checked.graph, checked.succ
    totals = {n: AnnOps(0, 0, 0) for n in checked.neuron_names}
    seen: set[str] = set()
    for source in graph.nodes:
        if not isinstance(graph.nodes[source], (nir.Input, *NEURON_TYPES)):
            continue
        stack = [(d, shapes[source], []) for d in succ[source]]
        while stack:
            name, shape, pending = stack.pop()
            node = graph.nodes[name]
            if isinstance(node, NEURON_TYPES):
                t = totals[name]
                totals[name] = AnnOps(t.macs + sum(o.macs for o in pending), t.adds + sum(o.adds for o in pending),
                                      t.weights + sum(o.weights for o in pending))
                continue
            if isinstance(node, (nir.Output, nir.Input)) or name in seen:
                continue
            seen.add(name)
            step = op_factors(node, name, shape)
            out = _out_shape(node, shape, step)
            stack.extend((d, out, pending + [_node_ann_ops(node, out)]) for d in succ[name])
    return totals


def node_shapes(graph: nir.NIRGraph | CheckedGraph) -> dict[str, tuple[int, ...]]:
    """Per-sample shapes of the Input nodes (their input_type) and neuron nodes (their parameters' shape)."""
    return check_graph(graph).unit_shapes()


def fan_in(graph: nir.NIRGraph | CheckedGraph) -> dict[str, np.ndarray]:
    """Synapses into each neuron of each neuron layer (flat, row-major), from the graph alone."""
    checked = check_graph(graph)
    shapes = checked.unit_shapes()
    out = {n: np.zeros(int(np.prod(shapes[n])), dtype=np.int64) for n in checked.neuron_names}
    for p in synaptic_paths(checked, shapes):
        out[p.target] += p.fanin
    return out


def _is_binary(x: np.ndarray) -> bool:
    return bool(np.isin(x, (-1, 0, 1)).all())


def _nonzero_per_step(x: np.ndarray) -> np.ndarray:
    return (x.reshape(x.shape[0], x.shape[1], -1) != 0).sum(axis=2).astype(np.int64)


def _active(incoming: list[SynapticPath], arrays: dict[str, np.ndarray], n_samples: int, n_steps: int,
            size: int) -> np.ndarray:
    """Target neurons reached by >= 1 event, per sample and step; chunked over samples to bound memory."""
    active = np.zeros((n_samples, n_steps), dtype=np.int64)
    chunk = max(1, CHUNK_ELEMENTS // max(1, n_steps * size))
    for lo in range(0, n_samples, chunk):
        hi = min(n_samples, lo + chunk)
        received = np.zeros(((hi - lo) * n_steps, size), dtype=np.float32)
        for p in incoming:
            received += p.received(arrays[p.source][lo:hi].reshape((hi - lo) * n_steps, -1) != 0)
        active[lo:hi] = (received > 0).sum(axis=1).reshape(hi - lo, n_steps)
    return active


def count_graph(graph: nir.NIRGraph | CheckedGraph, inputs: dict[str, np.ndarray], spikes: dict[str, np.ndarray],
                source: str = "given arrays") -> GraphCounts:
    """Count a run of ``graph``: ``inputs`` per Input node and ``spikes`` per neuron node, each ``[N, T, *shape]``."""
    checked = check_graph(graph)
    graph = checked.graph
    neurons = checked.neuron_names
    input_names = checked.names(nir.Input)
    arrays: dict[str, np.ndarray] = {}
    for kind, names, given in (("input", input_names, inputs), ("spike", neurons, spikes)):
        for name in names:
            if name not in given:
                raise UserError(f"no {kind} array for node {name!r}; pass one [N, T, *shape] array per "
                                f"{'Input' if kind == 'input' else 'neuron'} node (have {sorted(given)})")
            arrays[name] = np.asarray(given[name])
    if not neurons:
        raise UserError("the graph has no neuron nodes (LIF, CubaLIF, IF, LI, CubaLI); nothing to count")
    lead = {a.shape[:2] for a in arrays.values()}
    if len(lead) != 1 or any(a.ndim < 3 for a in arrays.values()):
        raise UserError(f"arrays disagree on [N, T] or lack a neuron axis ({sorted(lead)}); pass [N, T, *shape] "
                        "arrays from one run")
    (n_samples, n_steps), = lead
    shapes = {n: tuple(a.shape[2:]) for n, a in arrays.items()}
    paths = synaptic_paths(checked, shapes)
    branches = branch_of(neurons)
    binary = {n: _is_binary(a) for n, a in arrays.items()}
    layers: dict[str, LayerCounts] = {}
    for name in neurons:
        incoming = [p for p in paths if p.target == name]
        size = int(np.prod(shapes[name]))
        acs = np.zeros((n_samples, n_steps), dtype=np.int64)
        macs = np.zeros_like(acs)
        fanin = np.zeros(size, dtype=np.int64)
        for p in incoming:
            src_size = int(np.prod(shapes[p.source]))
            if src_size != p.fanout.size or p.fanin.size != size:
                raise UserError(f"path {p.source!r} -> {name!r} connects {p.fanout.size} -> {p.fanin.size} neurons "
                                f"but the arrays hold {src_size} -> {size}; pass arrays of this graph's run")
            nz = arrays[p.source].reshape(n_samples, n_steps, -1) != 0
            (acs if binary[p.source] else macs)[...] += nz @ p.fanout
            fanin += p.fanin
        active = _active(incoming, arrays, n_samples, n_steps, size)
        layers[name] = LayerCounts(
            name=name, branch=branches[name], node_type=type(graph.nodes[name]).__name__, neurons=size,
            synapses=int(sum(int(p.fanout.sum()) for p in incoming)),
            max_fan_in=int(fanin.max()) if size else 0, sources=[p.source for p in incoming],
            spikes=_nonzero_per_step(arrays[name]), acs=acs, macs=macs, active=active)
    return GraphCounts(layers=layers, inputs={n: _nonzero_per_step(arrays[n]) for n in input_names},
                       samples=n_samples, time_steps=n_steps, source=source, ann=ann_ops(checked, shapes))


@dataclass
class _NeuroBenchHook:
    """What NeuroBench's metrics read from a hook: the layer, the inputs it saw, and remove/register."""

    layer: object  # torch connection layer
    inputs: list  # [(tensor,)] as NeuroBench's connection hooks record them
    activation_outputs: list = field(default_factory=list)

    @property
    def hook(self) -> "_NeuroBenchHook":
        return self

    def remove(self) -> None:
        """NeuroBench removes and re-registers hooks around its counting; nothing is registered here."""

    def register_hook(self) -> None:
        """See remove()."""


def _pair(value) -> tuple[int, int]:
    return tuple(int(v) for v in np.broadcast_to(np.atleast_1d(value), (2,)))


def torch_node(node: nir.NIRNode, in_shape: tuple[int, ...]):
    """(connection layer or None, function on [M, *in_shape]) for one time-free node."""
    import torch
    import torch.nn.functional as F

    def tensor(a):
        return torch.as_tensor(np.asarray(a), dtype=torch.float64)

    if isinstance(node, (nir.Affine, nir.Linear)):
        w = tensor(node.weight)
        layer = torch.nn.Linear(w.shape[1], w.shape[0], bias=isinstance(node, nir.Affine)).double()
        with torch.no_grad():
            layer.weight.copy_(w)
            if isinstance(node, nir.Affine):
                layer.bias.copy_(tensor(node.bias))
        return layer, lambda x: layer(x.reshape(x.shape[0], -1))
    if isinstance(node, nir.Conv2d):
        w = tensor(node.weight)
        pad = node.padding if isinstance(node.padding, str) else _pair(node.padding)
        layer = torch.nn.Conv2d(w.shape[1] * int(node.groups), w.shape[0], tuple(w.shape[2:]),
                                stride=_pair(node.stride), padding=pad, dilation=_pair(node.dilation),
                                groups=int(node.groups), bias=False).double()
        with torch.no_grad():
            layer.weight.copy_(w)
        return layer, layer
    if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
        k, s, p = (_pair(v) for v in (node.kernel_size, node.stride, node.padding))
        scale = 1.0 if isinstance(node, nir.AvgPool2d) else float(np.prod(k))
        return None, lambda x: F.avg_pool2d(x, k, s, p) * scale
    if isinstance(node, nir.Scale):
        return None, lambda x: x * tensor(node.scale)
    return None, lambda x: x.reshape(x.shape[0], *_out_shape(node, in_shape, None))


def neurobench_counts(graph: nir.NIRGraph, inputs: dict[str, np.ndarray],
                      spikes: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """The same run counted by NeuroBench 2.3's own SynapticOperations and ActivationSparsity metrics.

    Every connection node (Affine, Linear, Conv2d) becomes its torch layer and is fed what it sees at every
    step: its source's events pushed through the nodes before it (pooling included, so a pooled map reaches
    the next layer graded, as NeuroBench counts it). Returns, per target neuron layer, NeuroBench's
    Effective_ACs / Effective_MACs / Dense per sample, and under "network" its activation sparsity."""
    import torch
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations

    checked = check_graph(graph)
    graph, succ = checked.graph, checked.succ
    arrays = {**inputs, **spikes}
    n_samples = next(iter(arrays.values())).shape[0]
    hooks: dict[str, list[_NeuroBenchHook]] = {}
    with torch.no_grad():
        for source, values in arrays.items():
            x0 = torch.as_tensor(np.asarray(values, dtype=np.float64)).reshape(-1, *values.shape[2:])
            stack = [(d, x0) for d in succ[source]]
            while stack:
                name, x = stack.pop()
                node = graph.nodes[name]
                if isinstance(node, (*NEURON_TYPES, nir.Output, nir.Input)):
                    continue
                layer, fn = torch_node(node, tuple(x.shape[1:]))
                if layer is not None:
                    target = _first_neuron(graph, succ, name)
                    hooks.setdefault(target, []).append(_NeuroBenchHook(layer, [(x.clone(),)]))
                stack.extend((d, fn(x)) for d in succ[name])
    data = (torch.zeros(n_samples),)
    out: dict[str, dict[str, float]] = {}
    for target, layer_hooks in hooks.items():
        metric = SynapticOperations()
        metric(type("Model", (), {"connection_hooks": layer_hooks})(), None, data)
        out[target] = {k: float(v) for k, v in metric.compute().items()}
    sparsity = ActivationSparsity()
    model = type("Model", (), {"activation_hooks": [_NeuroBenchHook(None, [], [torch.as_tensor(s)])
                                                    for s in spikes.values()]})()
    out["network"] = {"activation_sparsity": float(sparsity(model, None, data))}
    return out


def _first_neuron(graph: nir.NIRGraph, succ: dict[str, list[str]], name: str) -> str:
    stack = list(succ[name])
    while stack:
        node = stack.pop()
        if isinstance(graph.nodes[node], NEURON_TYPES):
            return node
        stack.extend(succ[node])
    raise UserError(f"node {name!r} reaches no neuron node; every connection must end in a neuron layer")
