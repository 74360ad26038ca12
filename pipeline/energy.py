"""Count spikes and synaptic operations of a run's graph and estimate energy, latency and resources per target.

Counts come from a Lava float simulation's npz (RUN_DIR/sim_float.npz, or a file given) when present, else
from the NIR reference executor on the test split of the run's own dataset, encoded with the run's seed (what
`simulate RUN_DIR` uses by default, so rate-encoded counts agree with it). The npz format: one array per NIR
node name, neuron nodes uint8 spikes [N, T, *shape], Input nodes the input trains fed [N, T, *shape].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nir
import numpy as np

from converters.loihi2_ready import ready_plan
from converters.nir_executor import run_graph
from converters.nir_io import read_graph
from converters.nir_to_lava import plan_graph
from hardware_targets.counting import NEURON_TYPES, GraphCounts, count_graph, node_shapes
from hardware_targets.energy import EnergyReport, estimate, measure_ann_gpu
from hardware_targets.mapping import Mapping, map_graph
from hardware_targets.report import table, verdict, write_reports
from hardware_targets.targets import Target, load_target
from iemf_neuro.errors import UserError
from iemf_neuro.provenance import provenance
from iemf_neuro.training.checkpoint import load_run

from .fixed_choice import deployed_dir
from .simulate import encoded_split


@dataclass
class RunCounts:
    graph: nir.NIRGraph
    counts: GraphCounts
    spikes: dict[str, np.ndarray]  # neuron node -> [N, T, *shape]


@dataclass
class EnergyResult:
    reports: dict[str, EnergyReport]  # per target
    counts: GraphCounts
    paths: dict[str, Path]  # energy.json, report.md, report.html
    table: str  # the per-target table, as printed
    verdict: str  # the report's first line


def load_graph(run_dir: Path) -> nir.NIRGraph:
    path = run_dir / "model.nir"
    if not path.is_file():
        raise UserError(f"{path} does not exist; run `iemf-neuro export {run_dir}` first")
    return read_graph(path)


def load_npz(path: Path, graph: nir.NIRGraph, samples: int | None) -> tuple[dict, dict]:
    """Split an npz into (inputs, spikes) by the graph's node kinds; other keys are ignored."""
    try:
        with np.load(path) as data:
            arrays = {k: data[k][:samples] for k in data.files if k in graph.nodes}
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable npz ({exc}); re-run `iemf-neuro simulate`") from exc
    inputs = {k: a for k, a in arrays.items() if isinstance(graph.nodes[k], nir.Input)}
    spikes = {k: a for k, a in arrays.items() if isinstance(graph.nodes[k], NEURON_TYPES)}
    missing = [n for n, node in graph.nodes.items() if isinstance(node, nir.Input) and n not in inputs]
    if missing:
        raise UserError(f"{path} lacks the input trains {missing}; save them under the Input node names "
                        "(see docs/energy.md) or delete the file to count with the reference executor")
    return inputs, spikes


def executor_run(run_dir: Path, graph: nir.NIRGraph, samples: int | None) -> tuple[dict, dict]:
    """Inputs and spikes of the reference executor on the clean test split of the run's dataset."""
    inputs, _ = encoded_split(load_run(run_dir), "test", samples, {})
    result = run_graph(graph, inputs)
    return inputs, {k: v.numpy().astype("uint8") for k, v in result.spikes.items()}


def run_counts(run_dir: Path, spikes_path: Path | None = None, samples: int | None = None) -> RunCounts:
    graph = load_graph(run_dir)
    path = spikes_path or run_dir / "sim_float.npz"
    if path.is_file():
        inputs, spikes = load_npz(path, graph, samples)
        source = f"Lava simulation ({path.name})"
    elif spikes_path is not None:
        raise UserError(f"--spikes {spikes_path} does not exist; pass an npz written by `iemf-neuro simulate`")
    else:
        inputs, spikes = executor_run(run_dir, graph, samples)
        source = "NIR reference executor on the run's test split"
    return RunCounts(graph, count_graph(graph, inputs, spikes, source=source), spikes)


def deployability(graph: nir.NIRGraph) -> dict[str, Any]:
    """Which processes of the hardware-ready Loihi 2 build run on chip and which stay on the host (and why);
    ``unavailable`` says why not when Lava cannot simulate the graph at all."""
    try:
        return ready_plan(plan_graph(graph), allow_host=True).summary()
    except UserError as exc:
        return {"build": "loihi2-ready", "unavailable": str(exc)}


def target_reports(run: RunCounts, targets: list[Target]) -> tuple[dict[str, EnergyReport], dict[str, Mapping]]:
    """Mapping and energy per target; the ANN target also gets an NVML-measured figure where CUDA is present."""
    mappings = {t.name: map_graph(run.graph, t, run.counts) for t in targets}
    reports = {t.name: estimate(run.counts, mappings[t.name], t) for t in targets}
    for report in reports.values():
        if report.model == "ann":
            inputs = {n: s for n, s in node_shapes(run.graph).items() if isinstance(run.graph.nodes[n], nir.Input)}
            report.measured, note = measure_ann_gpu(run.graph, inputs)
            report.notes.append(note)
    return reports, mappings


def energy_report(run_dir: Path, targets: list[str | Path], out_dir: Path | None = None,
                  spikes_path: Path | None = None, samples: int | None = None,
                  compare: Path | None = None) -> EnergyResult:
    """energy.json, report.md and report.html for ``run_dir`` on ``targets`` (built-in names or target files;
    a later one replaces an earlier one of the same name), beside another run's figures with ``compare``."""
    chosen = list({t.name: t for t in map(load_target, targets)}.values())
    run = run_counts(run_dir, spikes_path, samples)
    reports, mappings = target_reports(run, chosen)
    other = None if compare is None else target_reports(run_counts(compare, None, samples), chosen)[0]
    config: dict[str, Any] = {"run_dir": str(run_dir), "targets": sorted(t.name for t in chosen),
                              "compare": compare, "samples": samples, "counts_source": run.counts.source}
    paths = write_reports(out_dir or run_dir, reports, run.counts, mappings, spikes=run.spikes, compare=other,
                          labels=(run_dir.name, compare.name if compare else "other"), run_dir=run_dir,
                          provenance=provenance(config), deployment=deployability(run.graph),
                          fixed_dir=deployed_dir(run_dir))
    return EnergyResult(reports, run.counts, paths, table(reports), verdict(reports))
