"""`iemf-neuro simulate`: simulate a trained run (AV-Digits, checked against snnTorch) or any NIR graph in Lava.

    iemf-neuro simulate RUN_DIR --precision float|fixed [--split test] [--limit N] [--audio-snr-db DB]
                        [--image-noise-std S] [--seed S]     -> RUN_DIR/sim_<precision>.json and .npz
    iemf-neuro simulate GRAPH.nir --inputs X.npz --steps T [--dt DT] [--precision ...] --out OUT.npz
"""

from __future__ import annotations

import argparse
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from iemf_neuro.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate", help="simulate a run or a NIR graph in Lava",
        description="Simulate a trained run directory over AV-Digits (accuracy, per-layer spike counts and "
                    "mismatches against snnTorch), or any supported NIR graph on arrays from an .npz.")
    parser.add_argument("target", type=Path, metavar="RUN_DIR|GRAPH.nir", help="run directory or .nir file")
    parser.add_argument("--precision", choices=("float", "fixed"), default="float",
                        help="float64 Lava models or bit-accurate Loihi fixed point (default float)")
    parser.add_argument("--split", default="test", help="run form: train, val or test (default test)")
    parser.add_argument("--limit", type=int, default=None, help="run form: first N samples only")
    parser.add_argument("--audio-snr-db", type=float, default=None, help="run form: audio white-noise SNR")
    parser.add_argument("--image-noise-std", type=float, default=0.0, help="run form: image pixel noise std")
    parser.add_argument("--seed", type=int, default=None, help="run form: corruption/encoding seed "
                                                                "(default: the run's seed)")
    parser.add_argument("--inputs", type=Path, default=None, help="graph form: .npz, one [N, T, *shape] "
                                                                  "array per Input node")
    parser.add_argument("--steps", type=int, default=None, help="graph form: time steps T of the inputs")
    parser.add_argument("--dt", type=float, default=None, help="graph form: override the graph's dt")
    parser.add_argument("--out", type=Path, default=None, help="graph form: output .npz")
    parser.add_argument("--timeout", type=float, default=None, help="watchdog: stop Lava after this many s")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.target.is_dir():
        return simulate_run(args)
    if args.target.suffix == ".nir" or args.target.is_file():
        return simulate_file(args)
    raise UserError(f"{args.target} is neither a run directory nor a .nir file; pass one of them")


def npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Each member's (shape, dtype) from its .npy header, without reading its data."""
    headers = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            with archive.open(member) as fh:
                version = np.lib.format.read_magic(fh)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read(fh)
            headers[member.removesuffix(".npy")] = (shape, dtype)
    return headers


def physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def read_inputs(path: Path, steps: int) -> dict[str, np.ndarray]:
    """Headers first: wrong shapes and arrays larger than memory are refused before anything is read."""
    if not path.is_file():
        raise UserError(f"{path} does not exist; pass --inputs X.npz with one array per Input node")
    try:
        headers = npz_headers(path)
        for name, (shape, _) in headers.items():
            if len(shape) < 2 or shape[1] != steps:
                raise UserError(f"input {name!r} in {path} has shape {shape}, but --steps is {steps}; arrays "
                                "must be [N, T, *shape] with T = --steps")
        need = sum(math.prod(shape) * dtype.itemsize for shape, dtype in headers.values())
        memory = physical_memory()
        if need > memory:
            raise UserError(f"{path} declares {need / 2**30:.1f} GiB of inputs, more than this machine's "
                            f"{memory / 2**30:.1f} GiB of memory; simulate fewer samples per file")
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path} is not a readable .npz ({type(exc).__name__}); write it with numpy.savez") from exc


def simulate_file(args: argparse.Namespace) -> int:
    from converters.nir_io import read_graph
    from hardware_targets.lava_sim import simulate_graph
    from iemf_neuro.provenance import atomic_path, provenance

    if args.inputs is None or args.steps is None or args.out is None:
        raise UserError("simulating a .nir file needs --inputs X.npz, --steps T and --out OUT.npz")
    graph = read_graph(args.target)
    inputs = read_inputs(args.inputs, args.steps)
    result = simulate_graph(graph, inputs, args.precision, dt=args.dt, timeout_s=args.timeout,
                            progress=not args.no_progress)
    counts = {name: int(s.sum()) for name, s in result.spikes.items()}
    meta = {"graph": str(args.target), "precision": args.precision, "steps": result.steps,
            "latency": result.latency, "spike_counts": counts, "quantization": result.quantization,
            "provenance": provenance({"graph": str(args.target), "precision": args.precision, "dt": args.dt})}
    arrays = {**result.outputs, **{f"count/{n}": s.sum(axis=(1, 2) if s.ndim > 2 else 1)
                                   for n, s in result.spikes.items()},
              "meta": np.array(json.dumps(meta, default=str))}
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    print(f"simulated {args.target.name} in Lava ({args.precision}): {len(next(iter(inputs.values())))} samples, "
          f"{result.samples_per_s:.1f} samples/s; spikes {counts}; wrote {args.out}")
    return 0


def simulate_run(args: argparse.Namespace) -> int:
    from hardware_targets.run_simulation import SimulationRequest, simulate_run as run_simulation

    request = SimulationRequest(args.precision, args.split, args.limit, args.audio_snr_db, args.image_noise_std,
                                args.seed, args.timeout)
    summary = run_simulation(args.target, request, progress=not args.no_progress)
    acc, stem = summary["accuracy"], args.target / f"sim_{args.precision}"
    print(f"Lava {args.precision} on {args.split} ({summary['samples']} samples): accuracy {acc['lava']:.4f} "
          f"(snnTorch {acc['snntorch']:.4f}); spike mismatches per layer {summary['mismatches']}; "
          f"{summary['timing']['samples_per_s']:.1f} samples/s; wrote {stem}.json and {stem}.npz")
    return 0
