"""`iemf-neuro train-and-convert`: the whole pipeline into one run directory (see ``pipeline.end_to_end``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .export import add_condition_arguments, condition_of


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-and-convert", help="train -> export -> Lava float/fixed -> energy report",
        description="Run the whole pipeline into one run directory: train an IEMF SNN, export it to NIR, "
                    "simulate it in Lava (float and bit-accurate fixed point) against snnTorch, and report "
                    "energy, latency and chip resources per target. Finished stages are skipped on re-runs; "
                    "an interrupted training resumes with its recorded config.")
    parser.add_argument("--config", default=None, help="named run config (default avdigits-mlp)")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="run directory (default runs/demo)")
    parser.add_argument("--method", default=None,
                        help="plain | aux-heads | iemf (default) | iemf-control | ogm-ge | ogm-ge+iemf")
    parser.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key (see `iemf-neuro train --help`)")
    parser.add_argument("--target", action="append", default=[],
                        help="hardware target (repeatable; default: loihi1, loihi2, truenorth and ann-gpu)")
    parser.add_argument("--qat-epochs", type=int, default=0,
                        help="fine-tune this many epochs through the fixed-point forward and deploy that network "
                             "(default 0: deploy the float network, its exponents calibrated on training data, "
                             "the better path measured in docs/benchmarks.md)")
    parser.add_argument("--fusion-gain", default="unity", choices=("unity", "reliability", "dynamic"),
                        help="how the deployed network weights its modalities: unity gains (default), static gains "
                             "from each modality's validation reliability under the deployment condition below, or "
                             "the on-chip gate trained with the network (docs/nir.md, 'Fusion gains')")
    add_condition_arguments(parser)
    parser.add_argument("--limit", type=int, default=None, help="simulate only the first N test samples in Lava")
    parser.add_argument("--timeout", type=float, default=1800.0, help="Lava watchdog per simulation, seconds")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.end_to_end import DEFAULT_TARGETS, PipelineOptions, train_and_convert
    from pipeline.train import ConfigChanges

    changes = ConfigChanges(args.config, args.method, args.epochs, args.seed, tuple(args.overrides))
    options = PipelineOptions(tuple(args.target) or DEFAULT_TARGETS, args.qat_epochs, args.limit, args.timeout,
                              progress=not args.quiet, fusion_gain=args.fusion_gain, condition=condition_of(args))
    summary = train_and_convert(args.out, changes, options)
    fp, fusion = summary["fixed_point"], summary["fusion"]
    print(f"test split, {fusion['condition_text']}: snnTorch {summary['accuracy_snntorch_float64']:.4f}; Lava float "
          f"{summary['accuracy_lava_float']:.4f} ({summary['spike_mismatches_float']} spike mismatches); Lava fixed "
          f"{summary['accuracy_lava_fixed']:.4f} ({fp['path']}: drop {fp['drop_points']:.2f} points, same prediction "
          f"on {100 * fp['prediction_agreement']:.1f} % of samples)")
    print(f"fusion gains audio {fusion['gains']['audio']:g}, visual {fusion['gains']['visual']:g} "
          f"({args.fusion_gain}; on-chip gate {fusion['gate']})")
    print(summary["energy_verdict"])
    print(f"wrote {args.out / 'summary.json'} and {args.out / 'report.html'}")
    return 0
