"""`iemf-neuro energy`: energy, latency and resource reports per hardware target.

Counts come from RUN_DIR/sim_float.npz (a Lava float simulation; or the file given with --spikes) when
present, else from the NIR reference executor on the AV-Digits test split. The npz format: one array per
NIR node name, neuron nodes uint8 spikes [N, T, *shape], Input nodes the input trains fed [N, T, *shape].
"""

from __future__ import annotations

import argparse
from pathlib import Path

from iemf_neuro.errors import UserError

DEFAULT_TARGETS = ("loihi2",)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "energy", help="energy, latency and resource reports per hardware target",
        description="Count spikes and synaptic ops of RUN_DIR/model.nir and report energy per inference, "
                    "latency and cores per hardware target (energy.json, report.md, report.html in RUN_DIR).")
    parser.add_argument("run_dir", type=Path, help="run directory holding model.nir")
    parser.add_argument("--target", action="append", default=[],
                        help="built-in target: loihi1, loihi2, truenorth, ann-gpu (repeatable; default loihi2)")
    parser.add_argument("--target-file", action="append", default=[], type=Path,
                        help="a TOML/YAML target file adding or overriding a target (repeatable)")
    parser.add_argument("--compare", type=Path, help="another run directory (e.g. the `plain` baseline) to "
                                                     "report side by side")
    parser.add_argument("--spikes", type=Path, help="npz of spikes and inputs per node (default RUN_DIR/sim_float.npz)")
    parser.add_argument("--samples", type=int, default=None, help="count only the first N test samples")
    parser.add_argument("--out", type=Path, help="where to write the reports (default RUN_DIR)")
    parser.set_defaults(func=run)


def load_graph(run_dir: Path):
    from converters.nir_io import read_graph

    path = run_dir / "model.nir"
    if not path.is_file():
        raise UserError(f"{path} does not exist; run `iemf-neuro export {run_dir}` first")
    return read_graph(path)


def load_npz(path: Path, graph, samples: int | None) -> tuple[dict, dict]:
    """Split an npz into (inputs, spikes) by the graph's node kinds; other keys are ignored."""
    import nir
    import numpy as np

    from hardware_targets.counting import NEURON_TYPES

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


def executor_run(run_dir: Path, graph, samples: int | None) -> tuple[dict, dict]:
    """Inputs and spikes of the reference executor on the AV-Digits test split, encoded with the run's seed
    (what `iemf-neuro simulate RUN_DIR` uses by default, so rate-encoded counts agree with it)."""
    import torch

    from converters.nir_executor import run_graph
    from iemf_neuro.data import load_split
    from iemf_neuro.models import encode_inputs
    from iemf_neuro.training.checkpoint import load_run

    loaded = load_run(run_dir)
    split = load_split("test")
    n = len(split) if samples is None else min(samples, len(split))
    generator = torch.Generator().manual_seed(loaded.train_config.seed)
    audio, visual = encode_inputs(loaded.model_config, split.audio[:n], split.image[:n], generator)
    inputs = {"audio": audio.transpose(0, 1).contiguous().numpy(),  # own memory, not a view of the split
              "visual": visual.transpose(0, 1).contiguous().numpy()}
    result = run_graph(graph, inputs)
    return inputs, {k: v.numpy().astype("uint8") for k, v in result.spikes.items()}


def counts_for(run_dir: Path, spikes_path: Path | None, samples: int | None):
    from hardware_targets.counting import count_graph

    graph = load_graph(run_dir)
    path = spikes_path or run_dir / "sim_float.npz"
    if path.is_file():
        inputs, spikes = load_npz(path, graph, samples)
        source = f"Lava simulation ({path.name})"
    elif spikes_path is not None:
        raise UserError(f"--spikes {spikes_path} does not exist; pass an npz written by `iemf-neuro simulate`")
    else:
        inputs, spikes = executor_run(run_dir, graph, samples)
        source = "NIR reference executor on the AV-Digits test split"
    return graph, count_graph(graph, inputs, spikes, source=source), spikes


def reports_for(graph, counts, targets):
    """Mapping and energy per target; the ANN target also gets an NVML-measured figure where CUDA is present."""
    import nir

    from hardware_targets.counting import node_shapes
    from hardware_targets.energy import estimate, measure_ann_gpu
    from hardware_targets.mapping import map_graph

    mappings = {t.name: map_graph(graph, t, counts) for t in targets}
    reports = {t.name: estimate(counts, mappings[t.name], t) for t in targets}
    for report in reports.values():
        if report.model == "ann":
            inputs = {n: s for n, s in node_shapes(graph).items() if isinstance(graph.nodes[n], nir.Input)}
            report.measured, note = measure_ann_gpu(graph, inputs)
            report.notes.append(note)
    return reports, mappings


def run(args: argparse.Namespace) -> int:
    from hardware_targets.report import table, verdict, write_reports
    from hardware_targets.targets import load_target
    from iemf_neuro.provenance import provenance

    if args.samples is not None and args.samples < 1:
        raise UserError(f"--samples {args.samples} must be >= 1")
    names = args.target or ([] if args.target_file else list(DEFAULT_TARGETS))
    targets = {t.name: t for t in [load_target(n) for n in names] + [load_target(p) for p in args.target_file]}
    graph, counts, spikes = counts_for(args.run_dir, args.spikes, args.samples)
    reports, mappings = reports_for(graph, counts, list(targets.values()))
    compare = None
    if args.compare is not None:
        other_graph, other_counts, _ = counts_for(args.compare, None, args.samples)
        compare, _ = reports_for(other_graph, other_counts, list(targets.values()))
    config = {"run_dir": str(args.run_dir), "targets": sorted(targets), "compare": args.compare,
              "samples": args.samples, "counts_source": counts.source}
    paths = write_reports(args.out or args.run_dir, reports, counts, mappings, spikes=spikes, compare=compare,
                          labels=(args.run_dir.name, args.compare.name if args.compare else "other"),
                          run_dir=args.run_dir, provenance=provenance(config))
    print(f"counts from {counts.source} ({counts.samples} samples)")
    print(table(reports))
    print(verdict(reports))
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0
