"""`iemf-neuro simulate`: simulate a trained run (its own dataset, checked against snnTorch) or any NIR graph
in Lava.

    iemf-neuro simulate RUN_DIR --precision float|fixed [--split test] [--limit N] [--audio-snr-db DB]
                        [--image-noise-std S] [--image-occlusion F] [--seed S]
                        -> RUN_DIR/sim_<precision>[_<split>].json, .npz
    iemf-neuro simulate GRAPH.nir --inputs X.npz --steps T [--dt DT] [--precision ...] --out OUT.npz

Both forms take ``--build loihi2-ready`` (only processes Loihi 2 runs on chip; results then go to
sim_<precision>_loihi2-ready.*) and ``--allow-host`` (keep what has no on-chip form on host processes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from iemf_neuro.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate", help="simulate a run or a NIR graph in Lava",
        description="Simulate a trained run directory over its dataset (accuracy, per-layer spike counts and "
                    "mismatches against snnTorch), or any supported NIR graph on arrays from an .npz.")
    parser.add_argument("target", type=Path, metavar="RUN_DIR|GRAPH.nir", help="run directory or .nir file")
    parser.add_argument("--precision", choices=("float", "fixed"), default="float",
                        help="float64 Lava models or bit-accurate Loihi fixed point (default float)")
    parser.add_argument("--split", default="test", help="run form: train, val or test (default test)")
    parser.add_argument("--limit", type=int, default=None, help="run form: first N samples only")
    parser.add_argument("--audio-snr-db", type=float, default=None, help="run form: audio white-noise SNR")
    parser.add_argument("--image-noise-std", type=float, default=0.0, help="run form: image pixel noise std")
    parser.add_argument("--image-occlusion", type=float, default=0.0, help="run form: occluded image fraction")
    parser.add_argument("--seed", type=int, default=None, help="run form: corruption/encoding seed "
                                                                "(default: the run's seed)")
    parser.add_argument("--inputs", type=Path, default=None, help="graph form: .npz, one [N, T, *shape] "
                                                                  "array per Input node")
    parser.add_argument("--steps", type=int, default=None, help="graph form: time steps T of the inputs")
    parser.add_argument("--dt", type=float, default=None, help="graph form: override the graph's dt")
    parser.add_argument("--out", type=Path, default=None, help="graph form: output .npz")
    parser.add_argument("--build", choices=("simulation", "loihi2-ready"), default="simulation",
                        help="Lava network: the simulation build, or only processes Loihi 2 runs on chip")
    parser.add_argument("--allow-host", action="store_true",
                        help="loihi2-ready: keep parts without an on-chip form on host processes instead of refusing")
    parser.add_argument("--timeout", type=float, default=None, help="watchdog: stop Lava after this many s")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.target.is_dir():
        return simulate_run(args)
    if args.target.suffix == ".nir" or args.target.is_file():
        return simulate_file(args)
    raise UserError(f"{args.target} is neither a run directory nor a .nir file; pass one of them")


def simulate_file(args: argparse.Namespace) -> int:
    from pipeline.simulate import simulate_file as run_file

    if args.inputs is None or args.steps is None or args.out is None:
        raise UserError("simulating a .nir file needs --inputs X.npz, --steps T and --out OUT.npz")
    result = run_file(args.target, args.inputs, args.steps, args.out, args.precision, dt=args.dt,
                      timeout_s=args.timeout, progress=not args.no_progress, build=args.build,
                      allow_host=args.allow_host)
    counts = {name: int(s.sum()) for name, s in result.spikes.items()}
    samples = len(next(iter(result.outputs.values())))
    print(f"simulated {args.target.name} in Lava ({args.precision}): {samples} samples, "
          f"{result.samples_per_s:.1f} samples/s; spikes {counts}; wrote {args.out}")
    print(deployment_line(result.deployment))
    return 0


def simulate_run(args: argparse.Namespace) -> int:
    from pipeline.simulate import SimulationRequest, simulate_run as run_simulation

    request = SimulationRequest(args.precision, args.split, args.limit, args.audio_snr_db, args.image_noise_std,
                                args.seed, args.timeout, build=args.build, allow_host=args.allow_host,
                                image_occlusion=args.image_occlusion)
    summary = run_simulation(args.target, request, progress=not args.no_progress)
    acc, stem = summary["accuracy"], args.target / request.stem
    print(f"Lava {args.precision} on {args.split} ({summary['samples']} samples): accuracy {acc['lava']:.4f} "
          f"(snnTorch {acc['snntorch']:.4f}); spike mismatches per layer {summary['mismatches']}; "
          f"{summary['timing']['samples_per_s']:.1f} samples/s; wrote {stem}.json and {stem}.npz")
    print(deployment_line(summary["deployment"]))
    return 0


def deployment_line(deployment: dict) -> str:
    if deployment["build"] == "simulation":
        return "build: simulation (host helper processes; --build loihi2-ready for an on-chip build)"
    host = deployment["host"]
    return (f"build: loihi2-ready, {len(deployment['on_chip'])} processes on chip, "
            + (f"{len(host)} on the host: " + "; ".join(f"{k} ({v})" for k, v in host.items()) if host
               else "none on the host"))
