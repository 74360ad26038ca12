"""The NIR node types this toolchain knows, in one table, and a flat graph's structure computed once.

Adding a node type is one ``NODE_TYPES`` entry (a neuron kind also needs its equations in ``nir_semantics``):
the loader's checks, the reference executor, the Lava planner and the event counting all read it. A
``CheckedGraph`` holds what each of them would otherwise recompute: fan-in and fan-out lists, strongly
connected components in topological order, per-node shapes and the discretised neurons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Literal

import nir
import numpy as np

from iemf_neuro.errors import UserError

from .nir_semantics import NEURON_KINDS, NEURON_TYPES, DiscreteNeuron, discretize

Shape = tuple[int, ...]
ShapeRule = Callable[[nir.NIRNode, "Shape | None"], "tuple[int | None, Shape | None]"]


@dataclass(frozen=True)
class NodeType:
    """How every stage treats one NIR node type."""

    shape: ShapeRule  # (input size the node takes or None, its output shape or None) given its input's shape
    run: Literal["input", "op", "delay", "neuron"]  # the executor: a source, a time-free op, a delay, a neuron
    count: Literal["io", "connection", "identity", "neuron"]  # counting: path end, connection mask, kept as is
    lava: Literal["unit", "output", "weighted", "weight-sharing", "elementwise"] | None  # None: Lava refuses it
    lava_refusal: str = ""  # why Lava refuses it, when more than "not supported" can be said


def _shape_of(value) -> Shape | None:
    if value is None:
        return None
    arr = np.atleast_1d(np.asarray(value))
    if arr.dtype.kind not in "iu" or np.any(arr < 0):
        return None
    return tuple(int(v) for v in arr)


def _io_shape(node: nir.NIRNode, attr: str, key: str) -> Shape | None:
    types = getattr(node, attr, None)
    return _shape_of(types.get(key)) if isinstance(types, dict) else None


def _pairs(value, n: int) -> Shape | None:
    arr = np.atleast_1d(np.asarray(value))
    if arr.dtype.kind not in "iu":
        return None
    arr = np.repeat(arr, n) if arr.size == 1 else arr
    return tuple(int(v) for v in arr) if arr.size == n else None


def _window_out(size: Shape, kernel, stride, padding, dilation=1) -> Shape | None:
    """Output spatial shape: floor((n + 2p - d(k-1) - 1)/s) + 1 per dimension ('same' keeps n)."""
    n = len(size)
    padding = padding.decode() if isinstance(padding, bytes) else padding
    if isinstance(padding, np.ndarray) and padding.dtype.kind in "SUO":
        padding = str(padding.item()) if padding.ndim == 0 else None
    if isinstance(padding, str):
        if padding == "same":
            return size
        padding = 0 if padding == "valid" else None
    k, s, p, d = (_pairs(v, n) if v is not None else None for v in (kernel, stride, padding, dilation))
    if None in (k, s, p, d) or min(s) < 1:
        return None
    return tuple((a + 2 * pi - di * (ki - 1) - 1) // si + 1 for a, ki, si, pi, di in zip(size, k, s, p, d))


def _input(node: nir.Input, in_shape: Shape | None):
    return None, _io_shape(node, "input_type", "input")


def _output(node: nir.Output, in_shape: Shape | None):
    shape = _io_shape(node, "output_type", "output")
    return (math.prod(shape) if shape else None), shape or in_shape


def _dense(node: nir.Affine | nir.Linear, in_shape: Shape | None):
    weight = np.asarray(node.weight)
    return (weight.shape[1], (weight.shape[0],)) if weight.ndim == 2 else (None, None)


def _scale(node: nir.Scale, in_shape: Shape | None):
    shape = np.asarray(node.scale).shape
    return (math.prod(shape), shape) if shape else (None, in_shape)


def _conv(node: nir.Conv1d | nir.Conv2d, in_shape: Shape | None):
    weight = np.asarray(node.weight)
    if weight.ndim < 3:
        return None, None
    c_in = weight.shape[1] * int(np.asarray(node.groups).reshape(-1)[0])
    spatial = _shape_of(getattr(node, "input_shape", None))
    if spatial is None and in_shape is not None and len(in_shape) == weight.ndim - 1:
        spatial = in_shape[1:]
    if spatial is None or len(spatial) != weight.ndim - 2:
        return None, None
    out = _window_out(spatial, weight.shape[2:], node.stride, node.padding, node.dilation)
    return c_in * math.prod(spatial), (weight.shape[0], *out) if out else None


def _pool(node: nir.SumPool2d | nir.AvgPool2d, in_shape: Shape | None):
    if in_shape is None or len(in_shape) != 3:
        return None, None
    out = _window_out(in_shape[1:], node.kernel_size, node.stride, node.padding)
    return None, (in_shape[0], *out) if out else None


def flatten_dims(node: nir.Flatten, nd: int) -> tuple[int, int]:
    """(first, last) dimension a Flatten merges, of an ``nd``-D shape: NIR's start_dim/end_dim index the shape
    *without* the batch dimension (as its type inference)."""
    return int(node.start_dim) % nd, int(node.end_dim) % nd


def flatten_shape(node: nir.Flatten, shape: Shape) -> Shape:
    start, end = flatten_dims(node, len(shape))
    return shape[:start] + (int(np.prod(shape[start:end + 1])),) + shape[end + 1:]


def _flatten(node: nir.Flatten, in_shape: Shape | None):
    return None, flatten_shape(node, in_shape) if in_shape else None


def _elementwise(node: nir.NIRNode, in_shape: Shape | None):
    return None, in_shape


def neuron_shape(node: nir.NIRNode) -> Shape:
    """A neuron population's shape: that of its time constant (its r for IF)."""
    param = next(getattr(node, a) for a in ("tau", "tau_mem", "r") if hasattr(node, a))
    return tuple(np.asarray(param).shape)


def _neuron(node: nir.NIRNode, in_shape: Shape | None):
    shape = neuron_shape(node)
    if math.prod(shape) == 1 and in_shape is not None:  # scalar parameters: one neuron per incoming value
        return None, in_shape
    return math.prod(shape), shape


NODE_TYPES: dict[type, NodeType] = {
    nir.Input: NodeType(_input, "input", "io", "unit"),
    nir.Output: NodeType(_output, "op", "io", "output"),
    nir.Affine: NodeType(_dense, "op", "connection", "weighted"),
    nir.Linear: NodeType(_dense, "op", "connection", "weighted"),
    nir.Scale: NodeType(_scale, "op", "identity", "elementwise"),
    nir.Conv1d: NodeType(_conv, "op", "connection", None),
    nir.Conv2d: NodeType(_conv, "op", "connection", "weight-sharing"),
    nir.Flatten: NodeType(_flatten, "op", "identity", "elementwise"),
    nir.SumPool2d: NodeType(_pool, "op", "connection", "weight-sharing"),
    nir.AvgPool2d: NodeType(_pool, "op", "connection", "weight-sharing"),
    nir.Threshold: NodeType(_elementwise, "op", "identity", None,
                            "a stateless threshold has no Lava neuron equivalent; use an IF/LIF node instead"),
    nir.Delay: NodeType(_elementwise, "delay", "identity", None,
                        "Lava's Dense and LIF have no per-synapse axonal delay here; remove the Delay node or "
                        "fold it into the data"),
    **{t: NodeType(_neuron, "neuron", "neuron", "unit") for t in NEURON_KINDS},
}


def types_with(field: str, *values: object) -> tuple[type, ...]:
    """The node types whose ``field`` is one of ``values``, in table order."""
    return tuple(t for t, k in NODE_TYPES.items() if getattr(k, field) in values)


def type_names(types: tuple[type, ...]) -> str:
    """``types`` as the list a refusal prints."""
    return ", ".join(t.__name__ for t in types)



def strongly_connected(names: list[str], succ: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components in topological order (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in names:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            recurse = False
            for j in range(i, len(succ[node])):
                nxt = succ[node][j]
                if nxt not in index:
                    work.append((node, j + 1))
                    work.append((nxt, 0))
                    recurse = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if recurse:
                continue
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                out.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out[::-1]


def _cyclic(component: list[str], succ: dict[str, list[str]]) -> bool:
    return len(component) > 1 or component[0] in succ[component[0]]


@dataclass(frozen=True)
class CheckedGraph:
    """A flat NIR graph with its structure computed once; build it with ``check_graph``, and change the graph
    no more (its shapes are computed once, on first use)."""

    graph: nir.NIRGraph
    preds: dict[str, list[str]]  # fan-in per node, in edge order
    succ: dict[str, list[str]]  # fan-out per node, in edge order
    components: list[list[str]]  # strongly connected components, in topological order

    @property
    def nodes(self) -> dict[str, nir.NIRNode]:
        return self.graph.nodes

    def kind(self, name: str) -> NodeType | None:
        """The table entry of a node (None for a type this toolchain does not know)."""
        return NODE_TYPES.get(type(self.graph.nodes[name]))

    def names(self, *types: type) -> list[str]:
        """The nodes of the given types, in graph order."""
        return [n for n, node in self.graph.nodes.items() if isinstance(node, types)]

    @property
    def neuron_names(self) -> list[str]:
        return self.names(*NEURON_TYPES)

    def require_fed(self) -> None:
        """Refuse an Input node with incoming edges and any other node without one (a simulator's need)."""
        for name, node in self.graph.nodes.items():
            if isinstance(node, nir.Input) and self.preds[name]:
                raise UserError(f"Input node {name!r} has incoming edges; inputs can only feed other nodes")
            if not isinstance(node, nir.Input) and not self.preds[name]:
                raise UserError(f"node {name!r} ({type(node).__name__}) has no incoming edge; connect it or "
                                "remove it")

    def require_neuron_in_cycles(self, where: str = "NIR graph") -> None:
        """Every cycle must pass through a neuron node (its state carries step t-1), so with the edges that
        leave neuron nodes removed the graph must be acyclic."""
        succ = {n: [] if isinstance(self.graph.nodes[n], NEURON_TYPES) else d for n, d in self.succ.items()}
        for component in strongly_connected(list(self.graph.nodes), succ):
            if _cyclic(component, succ):
                raise UserError(f"{where}: cycle through {sorted(component)} contains no neuron node, so a "
                                "step would depend on itself; route the loop through a LIF/CubaLIF node")

    def is_cyclic(self, component: list[str]) -> bool:
        return _cyclic(component, self.succ)

    def _rule(self, name: str, shapes: dict[str, Shape | None]) -> tuple[int | None, Shape | None]:
        """The table's shape rule of node ``name`` applied to its first input of known shape."""
        kind = self.kind(name)
        known = [shapes[s] for s in self.preds[name] if shapes.get(s) is not None]
        return kind.shape(self.graph.nodes[name], known[0] if known else None) if kind else (None, None)

    @cached_property
    def shapes(self) -> dict[str, Shape | None]:
        """Each node's output shape, propagated from the Input nodes by the table's rules (None where unknown)."""
        out: dict[str, Shape | None] = {}
        for _ in range(len(self.graph.nodes) + 1):
            changed = False
            for name in self.graph.nodes:
                shape = self._rule(name, out)[1]
                if shape is not None and out.get(name) != shape:
                    out[name], changed = shape, True
            if not changed:
                break
        return out

    def takes(self, name: str) -> int | None:
        """How many values node ``name`` takes from each incoming edge (None: any number)."""
        return self._rule(name, self.shapes)[0]

    def unit_shapes(self) -> dict[str, Shape]:
        """Per-sample shapes of the Input nodes (their input_type) and neuron nodes (their parameters' shape)."""
        shapes: dict[str, Shape] = {}
        for name, node in self.graph.nodes.items():
            if isinstance(node, nir.Input):
                shape = node.input_type.get("input") if isinstance(node.input_type, dict) else None
                if shape is None:
                    raise UserError(f"Input node {name!r} has no input_type; give it its input shape "
                                    "(e.g. np.array([1, 32, 32]))")
                shapes[name] = tuple(int(v) for v in np.atleast_1d(shape))
            elif isinstance(node, NEURON_TYPES):
                shapes[name] = neuron_shape(node)
        return shapes

    def neurons(self, dt: float) -> dict[str, DiscreteNeuron]:
        """Every neuron node's per-step parameters at step ``dt`` (``nir_semantics.discretize``)."""
        return {n: discretize(self.graph.nodes[n], dt, n) for n in self.neuron_names}


def check_graph(graph: nir.NIRGraph | CheckedGraph) -> CheckedGraph:
    """The structure of a flat ``graph`` (a CheckedGraph is returned as it is); a nested graph or an edge
    naming a missing node is a UserError."""
    if isinstance(graph, CheckedGraph):
        return graph
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            raise UserError(f"node {name!r} is a nested NIRGraph; inline it with converters.nir_io.flatten_graph "
                            "(read_graph does)")
    preds: dict[str, list[str]] = {n: [] for n in graph.nodes}
    succ: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for src, dst in graph.edges:
        for end in (src, dst):
            if end not in graph.nodes:
                raise UserError(f"edge ({src!r}, {dst!r}) names a node {end!r} that the graph does not have; "
                                "fix the graph's edges")
        preds[dst].append(src)
        succ[src].append(dst)
    return CheckedGraph(graph, preds, succ, strongly_connected(list(graph.nodes), succ))
