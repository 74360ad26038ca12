"""Place a NIR graph's layers on a target's cores under every per-core limit, and the latency that implies.

Each neuron layer gets its own cores (as Lava's and NxTF's compilers do by default). A layer of shape
(C, H, ..., W) is cut into ``groups`` of channels x ``bands`` along its first spatial axis (H) x ``cols``
along its last (W): 2-D tiles, as NxTF cuts a convolution, since only a narrower tile reduces the
``c_in x kernel rows x (tile width + kernel - 1)`` input axons of a conv piece. A flat layer is cut into
``bands`` of consecutive neurons. Every core must hold, for its piece::

    neurons                                              <= neurons_per_core
    input axons = distinct source neurons feeding it     <= max_input_axons
    synaptic memory = sum over incoming paths of
        shared conv kernel:  channels x c_in x taps x conv_weight_bits      (chip shares kernels, conv path)
        otherwise:           synapses x dense_synapse_bits                  (weights at the chip's precision)
      + input axons x axon_header_bits                   <= synaptic_memory_bits
    output axons = sum over its neurons of the destination cores they reach <= max_output_axons

The ``minimal`` partitioner takes the fewest pieces that satisfy the first three (NxTF's goal: every
(groups, bands, cols) in order of groups x bands x cols); sources whose output axons overflow are then split
into at least ``ceil(use / limit)`` times as many pieces. ``power-of-two`` follows Lava's Loihi 2 partitioner
as its printed partitions show: spatial tiles a power of two tall, halved until the piece fits (then half as
wide, then twice the channel groups), "tall" along W (Lava lays a (C, H, W) map out as (W, H, C)), and a flat
layer split ceil(memory / capacity) ways, doubled until it fits, every weight, zeros too, taking synaptic
memory. A limit that one neuron alone breaks (TrueNorth's 256-axon fan-in) cannot be met by splitting: the
network does not fit, and the report says by how much. The finest split made is one position (row, col) of
one channel per core (the middle axes of a 4-D layer stay whole).
Once everything fits, spare cores on the chips already needed go to the layer with the slowest core while
that shortens its time per step by more than the extra barrier time (balancing, on the same work as below).
A spike is one message per destination core it reaches::

    work[layer, t] = synops t_synop + active t_update_active + inactive t_update_inactive
                     + spikes x messages_per_spike x t_spike
    t_step[t]      = max over layers (work[layer, t] / cores[layer]) + t_barrier(tiles used)
    t_barrier(n)   = t_1tile + (n - 1) (t_32tiles - t_1tile) / 31      (Davies 2018: 1 and 32 tiles)
    t_inference    = sum over t of t_step[t];   a target with t_step_s (TrueNorth's tick) uses that instead
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import nir
import numpy as np

from converters.nir_graph import CheckedGraph, check_graph

from .counting import GraphCounts, SynapticPath, synaptic_paths
from .targets import Target

LIMITS = ("neurons", "input axons", "synaptic memory bits", "output axons")


@dataclass(frozen=True)
class Split:
    """How one layer is cut into cores: ``groups`` of channels x ``bands`` along its first spatial axis x
    ``cols`` along its last (2-D tiles, as NxTF cuts a convolution layer). Always the actual number of pieces
    per axis (a power-of-two tiling of 10 rows in tiles of 4 is 3 bands)."""

    bands: int  # pieces along the first cut axis: H (W for a map under Lava's partitioner), a flat layer's neurons
    groups: int  # channel groups (1 for flat layers)
    cols: int = 1  # pieces along the last spatial axis (1 for flat and 2-D layers)

    @property
    def cores(self) -> int:
        return self.bands * self.groups * self.cols


@dataclass
class LayerPlacement:
    name: str  # neuron node name
    neurons: int  # population size
    synapses: int  # incoming synapses
    cores: int  # cores this layer occupies
    split: Split  # how it is cut
    worst: dict[str, float]  # limit -> its use on this layer's fullest core
    messages_per_spike: float = 1.0  # destination cores one of its spikes goes to (mean over its neurons)


@dataclass
class Mapping:
    target: str  # target name
    applicable: bool  # False for non-neuromorphic targets (no cores to place on)
    layers: dict[str, LayerPlacement] = field(default_factory=dict)
    cores_used: int = 0
    tiles_used: int = 0
    chips_needed: int | None = None
    fits: bool | None = None  # False: a per-core limit no split can meet
    violations: list[str] = field(default_factory=list)  # which limit, which layer, by how much


@dataclass
class Latency:
    step_s: np.ndarray  # [N, T] time per step
    inference_s: np.ndarray  # [N] time per inference


def _ranges(n: int, k: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, n, k + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _pow2_ranges(n: int, k: int) -> list[tuple[int, int]]:
    width = _pow2_width(n, k)
    return [(a, min(a + width, n)) for a in range(0, n, width)]


def _outer(per_axis: list[np.ndarray]) -> np.ndarray:
    """The product over axes of per-axis quantities, as an array over the grid of pieces (or of neurons)."""
    out = np.ones((), dtype=np.float64)
    for a in per_axis:
        out = np.multiply.outer(out, np.asarray(a, dtype=np.float64))
    return out


class _Layer:
    """One neuron layer's geometry and incoming paths, with the resource use of every piece of a split.

    Geometry: (channels, rows, middle, cols) with rows the first spatial axis and cols the last (swapped for
    a 3-D map under Lava's partitioner, ``transposed``); a flat layer
    is (1, neurons, 1, 1). Only channels, rows and cols are cut; middle axes (of a 4-D layer) stay whole."""

    def __init__(self, name: str, shape: tuple[int, ...], incoming: list[SynapticPath], target: Target):
        self.name, self.shape, self.incoming, self.target = name, shape, incoming, target
        self.flat = len(shape) < 2
        self.size = int(np.prod(shape))
        self.lengths = (1, self.size, 1) if self.flat else (shape[0], shape[1], shape[-1] if len(shape) > 2 else 1)
        # Lava holds a (C, H, W) map as (W, H, C), and its partitioner tiles the first of those axes first
        self.transposed = target.partitioner == "power-of-two" and len(shape) == 3
        if self.transposed:
            self.lengths = (shape[0], shape[2], shape[1])
        self.mid = 1 if len(shape) < 4 else int(np.prod(shape[2:-1]))
        self.finest = Split(self.lengths[1], self.lengths[0], self.lengths[2])
        self._dense: dict[int, np.ndarray] = {}

    def aligned(self, p: SynapticPath) -> bool:
        """A path whose factors follow this layer's axes (conv, pooling, identity): cut per axis."""
        return not self.flat and len(p.factors) == len(self.shape)

    def _axes(self, p: SynapticPath) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """An aligned path's factors on the cut axes (channels, rows, cols) and on the middle axes."""
        if len(self.shape) == 2:
            return [p.factors[0], p.factors[1], np.ones((1, 1), dtype=bool)], []
        if self.transposed:
            return [p.factors[0], p.factors[2], p.factors[1]], []
        return [p.factors[0], p.factors[1], p.factors[-1]], list(p.factors[2:-1])

    def _matrix(self, p: SynapticPath) -> np.ndarray:
        """The path's mask [target neurons, source neurons] when it is not aligned (dense layers)."""
        if id(p) not in self._dense:
            out = np.ones((1, 1), dtype=bool)
            for f in p.factors:
                out = np.kron(out, f)
            self._dense[id(p)] = out
        return self._dense[id(p)]

    def cuts(self, split: Split, pow2: bool) -> list[list[tuple[int, int]]]:
        """Index ranges of the pieces along channels, rows and cols (power-of-two tiles on spatial axes)."""
        spatial = _pow2_ranges if pow2 and not self.flat else _ranges
        return [_ranges(self.lengths[0], split.groups), spatial(self.lengths[1], split.bands),
                spatial(self.lengths[2], split.cols)]

    def normalise(self, split: Split, pow2: bool) -> Split:
        """``split`` with the number of pieces it actually makes on every axis."""
        groups, bands, cols = (len(c) for c in self.cuts(split, pow2))
        return Split(bands, groups, cols)

    def core_of(self, split: Split, pow2: bool) -> np.ndarray:
        """Core index of every neuron (flat, row-major) under ``split``: pieces ordered (group, band, col)."""
        cuts = self.cuts(split, pow2)
        index = [np.repeat(np.arange(len(c)), [b - a for a, b in c]) for c in cuts]
        core = (index[0][:, None, None] * len(cuts[1]) + index[1][None, :, None]) * len(cuts[2]) + index[2]
        if self.transposed:
            return core.transpose(0, 2, 1).ravel()
        return np.broadcast_to(core[:, :, None, :], (*self.lengths[:2], self.mid, self.lengths[2])).ravel()

    def usage(self, split: Split, pow2: bool) -> dict[str, np.ndarray]:
        """Neurons, input axons and synaptic memory of every piece, as arrays over (groups, bands, cols)."""
        cuts = self.cuts(split, pow2)
        sizes = [np.array([b - a for a, b in c]) for c in cuts]
        neurons = _outer(sizes) * self.mid
        axons, bits = np.zeros(neurons.shape), np.zeros(neurons.shape)
        for p in self.incoming:
            a, b = self._aligned_use(p, cuts, sizes) if self.aligned(p) else self._dense_use(p, split, pow2)
            axons, bits = axons + a, bits + b
        return {"neurons": neurons, "input axons": axons,
                "synaptic memory bits": bits + axons * self.target.value("axon_header_bits")}

    def _aligned_use(self, p: SynapticPath, cuts: list, sizes: list) -> tuple[np.ndarray, np.ndarray]:
        """Per piece: distinct sources reached (product over axes) and synaptic memory. A conv path on a chip
        that shares kernels stores ``channels x c_in x taps`` weights once per core; else one per synapse."""
        v = self.target.value
        axes, mid = self._axes(p)
        axons = _outer([[f[a:b].any(0).sum() for a, b in c] for f, c in zip(axes, cuts)])
        axons *= np.prod([f.any(0).sum() for f in mid])
        if v("conv_weight_bits") > 0 and len(p.nodes) > 0:
            taps = np.prod([f.sum(1).max(initial=0) for f in p.factors])
            return axons, _outer([sizes[0], np.ones(len(cuts[1])), np.ones(len(cuts[2]))]) * taps * v(
                "conv_weight_bits")
        synapses = _outer([[f[a:b].sum() for a, b in c] for f, c in zip(axes, cuts)])
        return axons, synapses * np.prod([f.sum() for f in mid]) * v("dense_synapse_bits")

    def _dense_use(self, p: SynapticPath, split: Split, pow2: bool) -> tuple[np.ndarray, np.ndarray]:
        """Per piece of a path that is not aligned: distinct source columns of its rows, one synapse each."""
        core, m, grid = self.core_of(split, pow2), self._matrix(p), (split.groups, split.bands, split.cols)
        axons = np.array([m[core == i].any(0).sum() for i in range(split.cores)], dtype=np.float64)
        bits = np.bincount(core, weights=m.sum(1), minlength=split.cores) * self.target.value("dense_synapse_bits")
        return axons.reshape(grid), bits.reshape(grid)


def _caps(target: Target) -> dict[str, float]:
    v = target.value
    return {"neurons": v("neurons_per_core"), "input axons": v("max_input_axons"),
            "synaptic memory bits": v("synaptic_memory_bits"), "output axons": v("max_output_axons")}


def _worst(layer: _Layer, split: Split, pow2: bool) -> dict[str, float]:
    return {k: float(u.max()) for k, u in layer.usage(split, pow2).items()}


def _fits(worst: dict[str, float], caps: dict[str, float], ignore: frozenset[str]) -> bool:
    return all(worst[k] <= caps[k] for k in worst if k not in ignore)


def _pow2_width(n: int, bands: int) -> int:
    """The power-of-two tile width that cuts ``n`` into ``bands`` tiles: the smallest one >= ceil(n / bands)."""
    return 1 << (-(-n // bands) - 1).bit_length()


def _halve(n: int, pieces: int) -> int:
    """Pieces of ``n`` in power-of-two tiles half as wide as those of ``pieces`` pieces."""
    return -(-n // max(1, _pow2_width(n, pieces) // 2))


def _next_split(layer: _Layer, split: Split) -> Split | None:
    """Lava's order (power-of-two partitioner): twice as many pieces of a flat layer; for a map, tiles half as
    tall, then half as wide, then twice the channel groups; None when no finer split exists."""
    rows, chans, cols = layer.lengths[1], layer.lengths[0], layer.lengths[2]
    if layer.flat:
        return Split(min(split.bands * 2, rows), 1) if split.bands < rows else None
    if split.bands < rows:
        return Split(_halve(rows, split.bands), split.groups, split.cols)
    if split.cols < cols:
        return Split(split.bands, split.groups, _halve(cols, split.cols))
    if split.groups < chans:
        return Split(split.bands, min(split.groups * 2, chans), split.cols)
    return None


def _pow2_splits(layer: _Layer, caps: dict[str, float]):
    """Every split Lava's partitioner tries, in order: a flat layer ceil(memory / capacity) ways, a map in
    tiles of the largest power of two that fits its height, then `_next_split` until none is left."""
    if layer.flat:
        whole = _worst(layer, Split(1, 1), True)
        need = max(math.ceil(whole[k] / caps[k]) for k in ("neurons", "synaptic memory bits"))
        split = Split(min(layer.lengths[1], max(1, need)), 1)
    else:
        split = layer.normalise(Split(-(-layer.lengths[1] // (1 << layer.lengths[1].bit_length() - 1)), 1), True)
    while split is not None:
        yield split
        split = _next_split(layer, split)


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def _minimal_splits(layer: _Layer, caps: dict[str, float]):
    """Every (groups, bands, cols) in order of pieces (fewest first; then bands before cols before groups),
    from the fewest the neuron limit allows; splits that leave too many neurons on a core are skipped."""
    chans, rows, cols = layer.lengths
    for pieces in range(max(1, math.ceil(layer.size / caps["neurons"])), chans * rows * cols + 1):
        for g in _divisors(pieces):
            for b in sorted(_divisors(pieces // g), reverse=True):
                c = pieces // g // b
                if g <= chans and b <= rows and c <= cols and \
                        -(-chans // g) * -(-rows // b) * -(-cols // c) * layer.mid <= caps["neurons"]:
                    yield Split(b, g, c)


def split_layer(layer: _Layer, target: Target, min_cores: int = 1,
                ignore: frozenset[str] = frozenset()) -> tuple[Split, dict[str, float], bool]:
    """The first split in the partitioner's order with at least ``min_cores`` pieces under which every piece
    meets the per-core limits but output axons (and those in ``ignore``: limits one neuron already breaks,
    which no split can meet); else the finest split. Returns (split, use on the fullest core, fits)."""
    caps, pow2 = _caps(target), target.partitioner == "power-of-two"
    ignore = ignore | {"output axons"}
    finest = _worst(layer, layer.finest, pow2)
    if not _fits(finest, caps, ignore) or min_cores > layer.finest.cores:  # nothing finer to try
        return layer.finest, finest, False
    for split in _pow2_splits(layer, caps) if pow2 else _minimal_splits(layer, caps):
        if split.cores >= min_cores:
            worst = _worst(layer, split, pow2)
            if _fits(worst, caps, ignore):
                return split, worst, True
    return layer.finest, finest, True


def _single_neuron_violations(layer: _Layer, caps: dict[str, float]) -> dict[str, str]:
    """Limits that one neuron alone breaks (its fan-in, its synapses), with what to say: no split meets them."""
    v = layer.target.value
    axons = sum((p.fanin for p in layer.incoming), np.zeros(1)).max(initial=0)
    bits = axons * v("axon_header_bits")
    for p in layer.incoming:
        shared = layer.aligned(p) and v("conv_weight_bits") > 0 and len(p.nodes) > 0
        taps = int(np.prod([f.sum(1).max(initial=0) for f in p.factors]))
        bits += taps * v("conv_weight_bits") if shared else p.fanin.max(initial=0) * v("dense_synapse_bits")
    return {k: f"{layer.name}: one neuron needs {need:,.0f} {k}, a core has {caps[k]:,.0f} "
               f"({need / caps[k]:.2f}x the limit)"
            for k, need in (("input axons", axons), ("synaptic memory bits", bits)) if need > caps[k]}


def _reach(layer: _Layer, p: SynapticPath, split: Split, pow2: bool) -> np.ndarray:
    """Destination cores of ``layer`` (cut by ``split``) that each source neuron of path ``p`` reaches: for
    an aligned path the product over axes of the pieces it reaches on each."""
    if layer.aligned(p):
        axes, mid = layer._axes(p)
        cuts = layer.cuts(split, pow2)
        per_axis = [np.array([f[a:b].any(0) for a, b in c]).sum(0) for f, c in zip(axes, cuts)]
        if layer.transposed:
            per_axis = [per_axis[0], per_axis[2], per_axis[1]]
        ordered = per_axis[:2] + [f.any(0) for f in mid] + (per_axis[2:] if len(layer.shape) > 2 else [])
        return _outer(ordered).ravel().astype(np.int64)
    core = layer.core_of(split, pow2)
    m = layer._matrix(p)
    return np.array([m[core == c].any(0) for c in range(split.cores)]).sum(0)


def _output_axons(layers: dict[str, _Layer], splits: dict[str, Split], paths: list[SynapticPath],
                  pow2: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per source layer: output axons of each of its cores (sum over its neurons of destination cores), and
    per neuron the destination cores it reaches (one spike message each)."""
    reach = {n: np.zeros(l.size, dtype=np.int64) for n, l in layers.items()}
    for p in paths:
        if p.source in layers:
            reach[p.source] += _reach(layers[p.target], p, splits[p.target], pow2)
    cores = {n: np.bincount(layers[n].core_of(splits[n], pow2), weights=r, minlength=splits[n].cores)
             for n, r in reach.items()}
    return cores, reach


def _messages(layers: dict[str, _Layer], reach: dict[str, np.ndarray]) -> dict[str, float]:
    """Messages per spike of each layer: the mean destination cores its neurons reach (at least one)."""
    return {n: max(1.0, float(reach[n].mean())) if layer.size else 1.0 for n, layer in layers.items()}


def _split_for_fan_out(layers: dict[str, _Layer], splits: dict[str, Split], paths: list[SynapticPath],
                       target: Target, broken: dict[str, dict[str, str]]) -> dict[str, Split]:
    """Split every source whose fullest core sends more output axons than a core has into at least
    ``cores x ceil(use / limit)`` pieces; repeated because output axons depend on the destinations' splits."""
    cap, pow2 = _caps(target)["output axons"], target.partitioner == "power-of-two"
    splits = dict(splits)
    for _ in range(32):
        out_axons, _ = _output_axons(layers, splits, paths, pow2)
        over = {n: math.ceil(out_axons[n].max(initial=0) / cap) for n in layers
                if out_axons[n].max(initial=0) > cap and splits[n] != layers[n].finest}
        if not over:
            break
        for n, factor in over.items():
            splits[n] = split_layer(layers[n], target, splits[n].cores * factor, frozenset(broken[n]))[0]
    return splits


def map_graph(graph: nir.NIRGraph | CheckedGraph, target: Target, counts: GraphCounts | None = None,
              bias_driven: frozenset[str] = frozenset()) -> Mapping:
    """Cores per layer and chips under ``target``'s per-core limits; balanced on ``counts`` when given.
    Under Lava's partitioner every weight of a projection takes synaptic memory, zeros too (Lava's Dense and
    Conv store them all); elsewhere only non-zero weights connect. ``bias_driven``: layers whose input the host
    writes into their bias instead of sending it through synapses (lava-dl's PilotNet benchmark): their paths
    from Input nodes take no cores."""
    if target.model != "neuromorphic":
        return Mapping(target=target.name, applicable=False)
    checked = check_graph(graph)
    shapes = checked.unit_shapes()
    inputs = set(checked.names(nir.Input))
    paths = [p for p in synaptic_paths(checked, shapes, keep_zeros=target.partitioner == "power-of-two")
             if not (p.target in bias_driven and p.source in inputs)]
    layers = {n: _Layer(n, shapes[n], [p for p in paths if p.target == n], target) for n in checked.neuron_names}
    caps, pow2 = _caps(target), target.partitioner == "power-of-two"
    broken = {n: _single_neuron_violations(layer, caps) for n, layer in layers.items()}
    splits = {n: split_layer(layer, target, ignore=frozenset(broken[n]))[0] for n, layer in layers.items()}
    splits = _split_for_fan_out(layers, splits, paths, target, broken)
    if counts is not None and target.value("t_step_s") is None and \
            not _violations(layers, splits, paths, target, broken):
        splits = balance(layers, splits, counts, target, paths)
    mapping = Mapping(target=target.name, applicable=True, violations=_violations(layers, splits, paths, target,
                                                                                   broken))
    out_axons, reach = _output_axons(layers, splits, paths, pow2)
    messages = _messages(layers, reach)
    for n, layer in layers.items():
        worst = {**_worst(layer, splits[n], pow2), "output axons": float(out_axons[n].max(initial=0))}
        mapping.layers[n] = LayerPlacement(n, layer.size, sum(int(p.fanout.sum()) for p in layer.incoming),
                                           splits[n].cores, splits[n], worst, messages[n])
    mapping.cores_used = sum(p.cores for p in mapping.layers.values())
    mapping.tiles_used = math.ceil(mapping.cores_used / int(target.value("cores_per_tile")))
    mapping.chips_needed = max(1, math.ceil(mapping.cores_used / int(target.value("cores_per_chip"))))
    mapping.fits = not mapping.violations
    return mapping


def _violations(layers: dict[str, _Layer], splits: dict[str, Split], paths: list[SynapticPath], target: Target,
                broken: dict[str, dict[str, str]]) -> list[str]:
    """Every limit broken: those one neuron breaks, then those a core breaks under the split made."""
    caps, pow2 = _caps(target), target.partitioner == "power-of-two"
    out_axons, _ = _output_axons(layers, splits, paths, pow2)
    found = []
    for n, layer in layers.items():
        worst = {**_worst(layer, splits[n], pow2), "output axons": float(out_axons[n].max(initial=0))}
        finest = splits[n] == layer.finest
        found += list(broken[n].values())
        found += [f"{n}: a core needs {worst[k]:,.0f} {k}, the limit is {caps[k]:,.0f} "
                  f"({worst[k] / caps[k]:.2f}x) split over {splits[n].cores} cores"
                  + (" (the finest split this mapper makes: one position of one channel)" if finest else "")
                  for k in LIMITS if worst[k] > caps[k] and k not in broken[n]]
    return found


def layer_work(counts: GraphCounts, name: str, target: Target, messages_per_spike: float = 1.0) -> np.ndarray:
    """Serial work of one layer per (sample, step) in seconds, before it is shared among its cores."""
    layer, v = counts.layers[name], target.value
    return (layer.synops * v("t_synop_s") + layer.active * v("t_update_active_s")
            + layer.inactive * v("t_update_inactive_s") + layer.spikes * messages_per_spike * v("t_spike_s"))


def _work(counts: GraphCounts, target: Target, messages: dict[str, float]) -> dict[str, float]:
    """Mean serial work per step of every layer (`layer_work`, with its messages per spike)."""
    return {n: float(layer_work(counts, n, target, m).mean()) for n, m in messages.items()}


def balance(layers: dict[str, _Layer], splits: dict[str, Split], counts: GraphCounts, target: Target,
            paths: list[SynapticPath]) -> dict[str, Split]:
    """Split the layer with the slowest core once more (the partitioner's next split that fits) while spare
    cores remain on the chips already needed and that layer's time per step, work / cores (messages per spike
    included, as in `latency`), drops by more than the extra barrier time (a tie with another layer does not
    stop it: that one is split next); every core must still meet its limits (its sources' output axons grow
    with its cores)."""
    cap, pow2 = _caps(target)["output axons"], target.partitioner == "power-of-two"
    per_chip, per_tile = int(target.value("cores_per_chip")), int(target.value("cores_per_tile"))
    splits = dict(splits)
    work = _work(counts, target, _messages(layers, _output_axons(layers, splits, paths, pow2)[1]))
    total = sum(s.cores for s in splits.values())
    capacity = math.ceil(total / per_chip) * per_chip

    while True:
        slowest = max(work, key=lambda n: work[n] / splits[n].cores)
        nxt, _, ok = split_layer(layers[slowest], target, splits[slowest].cores + 1)
        new_total = total - splits[slowest].cores + nxt.cores
        if not ok or nxt.cores <= splits[slowest].cores or new_total > capacity:
            return splits
        trial = {**splits, slowest: nxt}
        out_axons, reach = _output_axons(layers, trial, paths, pow2)
        new_work = _work(counts, target, _messages(layers, reach))
        cost = barrier_s(target, math.ceil(new_total / per_tile)) - barrier_s(target, math.ceil(total / per_tile))
        if work[slowest] / splits[slowest].cores - new_work[slowest] / nxt.cores <= cost or \
                any(out_axons[n].max(initial=0) > cap for n in layers):
            return splits
        splits, work, total = trial, new_work, new_total


def barrier_s(target: Target, tiles: int) -> float:
    """Barrier sync time: linear in tiles through Davies' 1-tile and 32-tile points."""
    t1, t32 = target.value("t_barrier_1tile_s"), target.value("t_barrier_32tiles_s")
    return t1 + (max(tiles, 1) - 1) * (t32 - t1) / 31


def latency(counts: GraphCounts, mapping: Mapping, target: Target) -> Latency | None:
    """Time per step and per inference; None where the target has no cores (the ANN reference)."""
    if not mapping.applicable:
        return None
    shape = (counts.samples, counts.time_steps)
    if target.value("t_step_s") is not None:
        step = np.full(shape, target.value("t_step_s"))
        return Latency(step, step.sum(axis=1))
    stacked = np.stack([layer_work(counts, n, target, mapping.layers[n].messages_per_spike) / mapping.layers[n].cores
                        for n in counts.layers])
    step = stacked.max(axis=0) + barrier_s(target, mapping.tiles_used)
    return Latency(step, step.sum(axis=1))
