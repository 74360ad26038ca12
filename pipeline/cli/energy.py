"""`iemf-neuro energy`: energy, latency and resource reports per hardware target (see ``pipeline.energy``)."""

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


def run(args: argparse.Namespace) -> int:
    from pipeline.energy import energy_report

    if args.samples is not None and args.samples < 1:
        raise UserError(f"--samples {args.samples} must be >= 1")
    targets = (args.target or ([] if args.target_file else list(DEFAULT_TARGETS))) + args.target_file
    result = energy_report(args.run_dir, targets, args.out, args.spikes, args.samples, args.compare)
    print(f"counts from {result.counts.source} ({result.counts.samples} samples)")
    print(result.table)
    print(result.verdict)
    print(f"wrote {', '.join(str(p) for p in result.paths.values())}")
    return 0
