"""Energy per inference under a target's cost constants; dynamic and static kept on separate lines.

Neuromorphic targets, per sample n (summed over time steps and layers)::

    E_synops  = ACs * e_synop + MACs * e_graded_synop          (MACs: ops from graded, non-binary sources)
    E_updates = active * e_update_active + inactive * e_update_inactive
    E_spikes  = spikes * e_spike                               (one message per emitted spike, within a tile)
    E_static  = static_power * chips * t_inference[n]
    E         = E_synops + E_updates + E_spikes + E_static

The ANN reference (``ann-gpu``) runs the same layers once, densely, without spikes::

    E_macs = sum over layers of synapses * e_mac               (arithmetic only)

Every figure is reported as mean +- std over the evaluated samples (population std).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .counting import GraphCounts
from .mapping import Latency, Mapping, latency
from .targets import Constant, Target

DYNAMIC = ("synaptic_ops", "neuron_updates", "spikes")
ANN = ("macs",)


@dataclass
class Stat:
    mean: float  # over samples
    std: float  # population std over samples

    @classmethod
    def of(cls, values: np.ndarray) -> "Stat":
        values = np.asarray(values, dtype=np.float64)
        return cls(float(values.mean()), float(values.std()))


@dataclass
class EnergyReport:
    """One target's energy, latency and resources for one run's counts."""

    target: str  # target name
    title: str  # human name of the target
    model: str  # neuromorphic | ann
    description: str  # what the target models and what it leaves out
    kinds: list[str]  # kinds of the constants used: printed beside every figure
    constants: dict[str, Constant]  # every constant with value, kind and citation
    counts_source: str  # where the spike counts came from
    samples: int  # N
    time_steps: int  # T
    components: dict[str, Stat]  # component -> energy per inference (J)
    per_layer: dict[str, dict[str, Stat]]  # layer -> dynamic component -> J
    per_branch: dict[str, dict[str, Stat]]  # branch -> dynamic component -> J
    dynamic: Stat  # sum of dynamic components (J)
    static: Stat  # static power x time (J)
    total: Stat  # dynamic + static (J)
    latency_step_s: Stat | None  # time per step; None where not modelled
    latency_inference_s: Stat | None  # time per inference; None where not modelled
    cores_used: int | None
    chips_needed: int | None
    fits_one_chip: bool | None
    notes: list[str] = field(default_factory=list)


def _layer_dynamic(counts: GraphCounts, name: str, target: Target) -> dict[str, np.ndarray]:
    layer, v = counts.layers[name], target.value
    if target.model == "ann":
        return {"macs": np.full(counts.samples, layer.synapses * v("e_mac_j"))}
    return {"synaptic_ops": (layer.acs.sum(1) * v("e_synop_j") + layer.macs.sum(1) * v("e_graded_synop_j")),
            "neuron_updates": (layer.active.sum(1) * v("e_update_active_j")
                               + layer.inactive.sum(1) * v("e_update_inactive_j")),
            "spikes": layer.spikes.sum(1) * v("e_spike_j")}


def _stats(parts: dict[str, np.ndarray]) -> dict[str, Stat]:
    return {k: Stat.of(a) for k, a in parts.items()}


def estimate(counts: GraphCounts, mapping: Mapping, target: Target) -> EnergyReport:
    """Energy per inference for ``counts`` on ``target`` placed as ``mapping``."""
    per_layer_arrays = {n: _layer_dynamic(counts, n, target) for n in counts.layers}
    names = ANN if target.model == "ann" else DYNAMIC
    branch_arrays = {b: {c: sum(per_layer_arrays[n][c] for n in counts.branch_layers(b)) for c in names}
                     for b in counts.branches}
    dynamic = sum(sum(parts.values()) for parts in per_layer_arrays.values())
    timing: Latency | None = latency(counts, mapping, target)
    notes = list(counts.notes)
    if timing is None:
        static = np.zeros(counts.samples)
        notes.append("latency and static power are not modelled for this target")
    else:
        static = target.value("static_power_w") * mapping.chips_needed * timing.inference_s
    components = {c: sum(per_layer_arrays[n][c] for n in counts.layers) for c in names}
    if target.model == "neuromorphic":
        components["static"] = static
    if mapping.violations:
        notes.extend(f"does not fit: {v}" for v in mapping.violations)
    return EnergyReport(
        target=target.name, title=target.title, model=target.model, description=target.description,
        kinds=target.kinds(), constants=dict(target.constants), counts_source=counts.source,
        samples=counts.samples, time_steps=counts.time_steps, components=_stats(components),
        per_layer={n: _stats(p) for n, p in per_layer_arrays.items()},
        per_branch={b: _stats(p) for b, p in branch_arrays.items()},
        dynamic=Stat.of(dynamic), static=Stat.of(static), total=Stat.of(dynamic + static),
        latency_step_s=None if timing is None else Stat.of(timing.step_s.mean(axis=1)),
        latency_inference_s=None if timing is None else Stat.of(timing.inference_s),
        cores_used=mapping.cores_used if mapping.applicable else None, chips_needed=mapping.chips_needed,
        fits_one_chip=mapping.fits_one_chip, notes=notes)
