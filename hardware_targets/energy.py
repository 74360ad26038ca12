"""Energy per inference at three like-for-like levels, each a range over the constants' low/high ends.

Levels (the same three for every target, the ANN included):

* **operations**: what the hardware does, no constants: synaptic ops, neuron updates and spikes of the
  spiking network; MACs, pooling adds and weight reads of the equivalent ANN (counted from its own graph).
* **core**: dynamic energy of the compute cores only::

      neuromorphic  E_core = ACs e_synop + MACs e_graded_synop + active e_update_active
                             + inactive e_update_inactive + spikes x messages_per_spike x e_spike
                    (messages_per_spike: destination cores a layer's spike goes to, from the mapping)
      ANN           E_core = MACs e_mac + adds e_add + weights e_weight_read

* **system**: what a wall socket sees for one inference, idle power included over the latency::

      neuromorphic  E_sys = E_core + static_power x chips x t_inference       (t from mapping.latency)
      ANN           E_sys = (idle + dynamic platform power) x t,  t = overhead + MACs x s_per_mac

Only per-op energies and times, powers and platform times take a range (structural limits and storage
formats do not, so the mapping is the same at every end), and every figure is non-decreasing in each of them:
the low (high) end of a figure is the model evaluated with every ranged constant at its low (high) end. A constant's *swing* is the change of a figure when that constant
alone moves from low to high; the largest swings are the constants that dominate it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .counting import GraphCounts
from .mapping import Mapping, latency
from .targets import Constant, Target

CORE = {"neuromorphic": ("synaptic_ops", "neuron_updates", "spikes"), "ann": ("macs", "adds", "weight_reads")}


@dataclass
class Stat:
    mean: float  # over samples
    std: float  # population std over samples

    @classmethod
    def of(cls, values: np.ndarray) -> "Stat":
        values = np.asarray(values, dtype=np.float64)
        return cls(float(values.mean()), float(values.std()))


@dataclass
class Range:
    """A figure at the low, nominal and high ends of its constants (mean over samples)."""

    low: float
    nominal: float
    high: float


@dataclass
class EnergyReport:
    """One target's operations, energy at the core and system levels, latency and resources."""

    target: str  # target name
    title: str  # human name of the target
    model: str  # neuromorphic | ann
    description: str  # what the target models and what it leaves out
    kinds: list[str]  # kinds of the constants used: printed beside every figure
    constants: dict[str, Constant]  # every constant with value, range, kind and citation
    counts_source: str  # where the spike counts came from
    samples: int  # N
    time_steps: int  # T
    fits: bool  # False: a per-core limit is broken; no headline figure then
    violations: list[str]  # which limit, where, by how much
    operations: dict[str, Stat]  # operation -> count per inference
    # Every field below up to latency_range is None when the network does not fit: no figure at all then.
    components: dict[str, Stat] | None  # energy component -> J per inference, nominal (core, then system extras)
    per_layer: dict[str, dict[str, Stat]] | None  # layer -> core component -> J
    per_branch: dict[str, dict[str, Stat]] | None  # branch -> core component -> J
    core: Stat | None  # core dynamic energy, nominal (J)
    system: Stat | None  # system energy, nominal (J)
    core_range: Range | None  # J
    system_range: Range | None  # J
    dominant: dict[str, list[tuple[str, float]]]  # level -> (constant, share of the summed swings), largest first
    latency_step_s: Stat | None  # time per step; None for the ANN
    latency_inference_s: Stat | None  # time per inference
    latency_range: Range | None  # s
    cores_used: int | None
    chips_needed: int | None
    cores_per_layer: dict[str, int]
    measured: dict[str, float] = field(default_factory=dict)  # e.g. NVML joules per inference by batch size
    notes: list[str] = field(default_factory=list)


@dataclass
class _Eval:
    per_layer: dict[str, dict[str, np.ndarray]]  # layer -> core component -> [N] J
    extras: dict[str, np.ndarray]  # system-only components -> [N] J
    t_inference: np.ndarray  # [N] s
    t_step: np.ndarray | None  # [N] mean step time, s (None for the ANN: no steps)
    platform: bool  # True: the extras are a whole platform's measured powers, its arithmetic included

    def core(self) -> np.ndarray:
        return sum(sum(parts.values()) for parts in self.per_layer.values())

    def system(self) -> np.ndarray:
        extra = sum(self.extras.values())
        return extra if self.platform else self.core() + extra


def _evaluate(counts: GraphCounts, mapping: Mapping, target: Target) -> _Eval:
    v, n = target.value, counts.samples
    if target.model == "ann":
        per_layer = {name: {"macs": np.full(n, a.macs * v("e_mac_j")), "adds": np.full(n, a.adds * v("e_add_j")),
                            "weight_reads": np.full(n, a.weights * v("e_weight_read_j"))}
                     for name, a in counts.ann.items()}
        t = np.full(n, v("platform_overhead_s") + sum(a.macs for a in counts.ann.values()) * v("platform_s_per_mac"))
        extras = {"platform_dynamic": v("platform_dynamic_power_w") * t,
                  "platform_idle": v("platform_idle_power_w") * t}
        return _Eval(per_layer, extras, t, None, platform=True)
    per_layer = {}
    for name, layer in counts.layers.items():
        per_layer[name] = {
            "synaptic_ops": layer.acs.sum(1) * v("e_synop_j") + layer.macs.sum(1) * v("e_graded_synop_j"),
            "neuron_updates": layer.active.sum(1) * v("e_update_active_j")
                              + layer.inactive.sum(1) * v("e_update_inactive_j"),
            "spikes": layer.spikes.sum(1) * mapping.layers[name].messages_per_spike * v("e_spike_j")}
    timing = latency(counts, mapping, target)
    static = v("static_power_w") * mapping.chips_needed * timing.inference_s
    return _Eval(per_layer, {"static": static}, timing.inference_s, timing.step_s.mean(axis=1), platform=False)


def operations(counts: GraphCounts, target: Target) -> dict[str, Stat]:
    """Level (a): counts per inference, no constants."""
    if target.model == "ann":
        totals = {k: sum(getattr(a, k) for a in counts.ann.values()) for k in ("macs", "adds", "weights")}
        return {k: Stat(float(t), 0.0) for k, t in totals.items()}
    return {"synaptic_ops": Stat.of(counts.per_sample("synops")),
            "neuron_updates": Stat.of(counts.per_sample("active") + counts.per_sample("inactive")),
            "spikes": Stat.of(counts.per_sample("spikes"))}


def _dominant(counts: GraphCounts, mapping: Mapping, target: Target) -> dict[str, list[tuple[str, float]]]:
    swings: dict[str, dict[str, float]] = {"core": {}, "system": {}}
    for key in target.ranged():
        lo, hi = (_evaluate(counts, mapping, target.at(end, only=key)) for end in ("low", "high"))
        swings["core"][key] = float(hi.core().mean() - lo.core().mean())
        swings["system"][key] = float(hi.system().mean() - lo.system().mean())
    out = {}
    for level, s in swings.items():
        total = sum(s.values())
        ranked = sorted(((k, w / total) for k, w in s.items() if w > 0), key=lambda kv: -kv[1]) if total else []
        out[level] = ranked[:3]
    return out


def _range(low: np.ndarray, nominal: np.ndarray, high: np.ndarray) -> Range:
    return Range(float(low.mean()), float(nominal.mean()), float(high.mean()))


def _figures(counts: GraphCounts, mapping: Mapping, target: Target) -> dict:
    """The EnergyReport fields that carry a figure (energy, ranges, components, latency), nominal and ranged."""
    nominal = _evaluate(counts, mapping, target)
    low, high = (_evaluate(counts, mapping, target.at(end)) for end in ("low", "high"))
    names = CORE[target.model]
    components = {c: Stat.of(sum(parts[c] for parts in nominal.per_layer.values())) for c in names}
    components.update({c: Stat.of(a) for c, a in nominal.extras.items()})
    return dict(
        components=components,
        per_layer={n: {c: Stat.of(a) for c, a in parts.items()} for n, parts in nominal.per_layer.items()},
        per_branch={b: {c: Stat.of(sum(nominal.per_layer[n][c] for n in counts.branch_layers(b)
                                       if n in nominal.per_layer)) for c in names} for b in counts.branches},
        core=Stat.of(nominal.core()), system=Stat.of(nominal.system()),
        core_range=_range(low.core(), nominal.core(), high.core()),
        system_range=_range(low.system(), nominal.system(), high.system()),
        dominant=_dominant(counts, mapping, target),
        latency_step_s=None if nominal.t_step is None else Stat.of(nominal.t_step),
        latency_inference_s=Stat.of(nominal.t_inference),
        latency_range=_range(low.t_inference, nominal.t_inference, high.t_inference))


NO_FIGURES = dict(components=None, per_layer=None, per_branch=None, core=None, system=None, core_range=None,
                  system_range=None, dominant={}, latency_step_s=None, latency_inference_s=None, latency_range=None)


def estimate(counts: GraphCounts, mapping: Mapping, target: Target) -> EnergyReport:
    """Operations, core and system energy (nominal and range), latency and resources on ``target``. A network
    that does not fit gets its operations and resources only: every energy and latency field is None, and the
    report and summary.json read that (there is no figure to print)."""
    fits = bool(mapping.fits) if mapping.applicable else True
    notes = list(counts.notes)
    if not mapping.applicable:
        notes.append("the ANN has no cores: latency and idle power come from the published platform model")
    return EnergyReport(
        target=target.name, title=target.title, model=target.model, description=target.description,
        kinds=target.kinds(), constants=dict(target.constants), counts_source=counts.source,
        samples=counts.samples, time_steps=counts.time_steps, fits=fits, violations=list(mapping.violations),
        operations=operations(counts, target), **(_figures(counts, mapping, target) if fits else NO_FIGURES),
        cores_used=mapping.cores_used if mapping.applicable else None,
        chips_needed=mapping.chips_needed if mapping.applicable else None,
        cores_per_layer={n: p.cores for n, p in mapping.layers.items()}, notes=notes)


def nvml_joules_per_inference(run_batch: Callable[[], None], batch: int, energy_mj: Callable[[], float],
                              min_seconds: float = 1.0, clock: Callable[[], float] = time.perf_counter) -> float:
    """Measured energy per inference: (counter after - before) / (batches run x batch), running whole batches
    until ``min_seconds`` have passed: NVML's counter (nvmlDeviceGetTotalEnergyConsumption, mJ) updates every
    few tens of ms, so a shorter window reads mostly its quantisation. ``run_batch`` runs one batch and waits
    for the device; the first batch (compilation, allocation) is a warm-up outside the window."""
    run_batch()
    before, start, batches = energy_mj(), clock(), 0
    while batches == 0 or clock() - start < min_seconds:
        run_batch()
        batches += 1
    return (energy_mj() - before) * 1e-3 / (batches * batch)


def nvml_device(torch_index: int, visible: str | None) -> int | str:
    """The NVML device behind torch's CUDA device ``torch_index``: CUDA numbers only the devices listed in
    CUDA_VISIBLE_DEVICES (``visible``), which names them by NVML index (an int; NVML's order is the PCI bus
    order, so set CUDA_DEVICE_ORDER=PCI_BUS_ID on a machine with unlike GPUs) or by UUID (a str)."""
    if not visible:
        return torch_index
    entry = [e.strip() for e in visible.split(",") if e.strip()][torch_index]
    return int(entry) if entry.isdigit() else entry


def measure_ann_gpu(graph, shapes: dict[str, tuple[int, ...]], batches: tuple[int, ...] = (1, 256),
                    min_seconds: float = 1.0) -> tuple[dict[str, float], str]:
    """Measured joules per inference of the equivalent ANN on the current CUDA device, from NVML's energy
    counter, per batch size (``batch_<n>_j``), and a note saying what was measured or why nothing was."""
    import torch

    if not torch.cuda.is_available():
        return {}, "no CUDA device here: no measured GPU figure (the system level is the platform model)"
    try:
        import pynvml
    except ImportError:
        return {}, "pynvml is not installed (pip install nvidia-ml-py): no measured GPU figure"
    pynvml.nvmlInit()
    try:
        device = nvml_device(torch.cuda.current_device(), os.environ.get("CUDA_VISIBLE_DEVICES"))
        handle = (pynvml.nvmlDeviceGetHandleByUUID(device) if isinstance(device, str)
                  else pynvml.nvmlDeviceGetHandleByIndex(device))
        forward = ann_forward(graph)
        out = {}
        for batch in batches:
            x = {n: torch.rand(batch, *s, device="cuda") for n, s in shapes.items()}

            def run_batch():
                with torch.no_grad():
                    forward(x)
                torch.cuda.synchronize()

            out[f"batch_{batch}_j"] = nvml_joules_per_inference(
                run_batch, batch, lambda: float(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)), min_seconds)
        name = pynvml.nvmlDeviceGetName(handle)
    finally:
        pynvml.nvmlShutdown()
    return out, f"measured on {name} (NVML energy counter, >= {min_seconds:g} s per batch size): " + ", ".join(
        f"{k} {v:.3g} J" for k, v in out.items())


def ann_forward(graph) -> Callable[[dict], object]:
    """The equivalent ANN of a NIR graph as a torch function: every neuron node a ReLU of the sum of its
    incoming paths, every other node its torch operation; inputs ``{Input name: [B, *shape]}`` -> outputs."""
    import nir

    from converters.nir_executor import stateless_op

    from .counting import NEURON_TYPES

    pred: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for src, dst in graph.edges:
        pred[dst].append(src)
    order, seen = [], set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for p in pred[name]:
            visit(p)
        order.append(name)

    for name in graph.nodes:
        visit(name)
    built: dict = {}

    def forward(inputs: dict):
        import torch

        values = {}
        for name in order:
            node = graph.nodes[name]
            if isinstance(node, nir.Input):
                values[name] = inputs[name]
                continue
            x = sum(values[p] for p in pred[name])
            if isinstance(node, NEURON_TYPES):
                values[name] = torch.relu(x)
            elif isinstance(node, nir.Output):
                values[name] = x
            else:
                if name not in built:
                    built[name] = stateless_op(node, name, x.dtype, x.device)
                values[name] = built[name](x)
        return {n: values[n] for n, node in graph.nodes.items() if isinstance(node, nir.Output)}

    return forward
