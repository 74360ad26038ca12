"""Place a NIR graph's neurons and synapses on a target's cores, and the latency that placement implies.

Placement: each neuron layer gets its own cores (layers never share a core, as Lava's Loihi compiler does
by default). Neurons go onto a core in order while the core holds at most ``neurons_per_core`` neurons and
``synapses_per_core`` incoming synapses; a neuron's synapses live on its core. Then::

    cores_used  = sum over layers of that layer's cores
    chips       = ceil(cores_used / cores_per_chip)

Latency (Loihi-style, all cores work in parallel, then a barrier)::

    work[layer, t]  = synops * t_synop + active * t_update_active + inactive * t_update_inactive
                      + spikes * t_spike                (the layer's work, split evenly over its cores)
    t_step[t]       = max over layers (work[layer, t] / cores[layer]) + t_barrier(cores_used)
    t_barrier(c)    = t_barrier_1core + (c - 1) * (t_barrier_32cores - t_barrier_1core) / 31
    t_inference     = sum over t of t_step[t]           (= T x mean step time)

A target with ``t_step_s`` (a clocked tick, e.g. TrueNorth's 1 ms) takes t_step = t_step_s instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import nir
import numpy as np

from .counting import GraphCounts, fan_in
from .targets import Target


@dataclass
class LayerPlacement:
    name: str  # neuron node name
    neurons: int  # population size
    synapses: int  # incoming synapses
    max_fan_in: int  # synapses into the busiest neuron
    cores: int  # cores this layer occupies


@dataclass
class Mapping:
    target: str  # target name
    applicable: bool  # False for non-neuromorphic targets (no cores to place on)
    layers: dict[str, LayerPlacement] = field(default_factory=dict)
    cores_used: int = 0
    chips_needed: int | None = None
    fits_one_chip: bool | None = None
    violations: list[str] = field(default_factory=list)  # limits no placement can meet


@dataclass
class Latency:
    step_s: np.ndarray  # [N, T] time per step
    inference_s: np.ndarray  # [N] time per inference
    bottleneck: dict[str, int]  # layer -> number of (sample, step) pairs it was the slowest core


def pack_cores(fanin: np.ndarray, neurons_per_core: int, synapses_per_core: int) -> int:
    """Cores for one layer: fill each core in neuron order up to both limits (one neuron at least per core)."""
    cum = np.concatenate([[0], np.cumsum(fanin)])
    cores, i, n = 0, 0, fanin.size
    while i < n:
        by_synapses = int(np.searchsorted(cum, cum[i] + synapses_per_core, side="right")) - 1
        i = max(i + 1, min(i + neurons_per_core, by_synapses))
        cores += 1
    return cores


def map_graph(graph: nir.NIRGraph, target: Target) -> Mapping:
    """Cores per layer, chips needed and whether the network fits one chip under ``target``'s limits."""
    if target.model != "neuromorphic":
        return Mapping(target=target.name, applicable=False)
    npc, spc = int(target.value("neurons_per_core")), int(target.value("synapses_per_core"))
    limit = target.value("max_fan_in")
    mapping = Mapping(target=target.name, applicable=True)
    for name, fanin in fan_in(graph).items():
        worst = int(fanin.max()) if fanin.size else 0
        if worst > spc:
            mapping.violations.append(f"{name}: a neuron has {worst} synapses, more than a core's {spc}")
        if limit is not None and worst > limit:
            mapping.violations.append(f"{name}: fan-in {worst} exceeds the target's limit of {int(limit)}")
        cores = pack_cores(fanin, npc, spc)
        mapping.layers[name] = LayerPlacement(name, int(fanin.size), int(fanin.sum()), worst, cores)
    mapping.cores_used = sum(p.cores for p in mapping.layers.values())
    mapping.chips_needed = max(1, math.ceil(mapping.cores_used / int(target.value("cores_per_chip"))))
    mapping.fits_one_chip = mapping.chips_needed == 1 and not mapping.violations
    return mapping


def barrier_s(target: Target, cores: int) -> float:
    """Barrier sync time: linear in cores through the published 1-core and 32-core points."""
    t1, t32 = target.value("t_barrier_1core_s"), target.value("t_barrier_32cores_s")
    return t1 + (max(cores, 1) - 1) * (t32 - t1) / 31


def latency(counts: GraphCounts, mapping: Mapping, target: Target) -> Latency | None:
    """Time per step and per inference; None where the target has no latency model (the ANN reference)."""
    if not mapping.applicable:
        return None
    shape = (counts.samples, counts.time_steps)
    if target.value("t_step_s") is not None:
        step = np.full(shape, target.value("t_step_s"))
        return Latency(step, step.sum(axis=1), {})
    v = target.value
    per_core = []
    for name, layer in counts.layers.items():
        work = (layer.synops * v("t_synop_s") + layer.active * v("t_update_active_s")
                + layer.inactive * v("t_update_inactive_s") + layer.spikes * v("t_spike_s"))
        per_core.append(work / mapping.layers[name].cores)
    stacked = np.stack(per_core)
    slowest = stacked.argmax(axis=0)
    names = list(counts.layers)
    bottleneck = {names[i]: int(c) for i, c in zip(*np.unique(slowest, return_counts=True))}
    step = stacked.max(axis=0) + barrier_s(target, mapping.cores_used)
    return Latency(step, step.sum(axis=1), bottleneck)
