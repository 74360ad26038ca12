"""`iemf-neuro simulate`: simulate a trained run (AV-Digits, checked against snnTorch) or any NIR graph in Lava.

    iemf-neuro simulate RUN_DIR --precision float|fixed [--split test] [--limit N] [--audio-snr-db DB]
                        [--image-noise-std S] [--seed S]     -> RUN_DIR/sim_<precision>.json and .npz
    iemf-neuro simulate GRAPH.nir --inputs X.npz --steps T [--dt DT] [--precision ...] --out OUT.npz
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

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


def read_graph(path: Path):
    import nir

    if not path.is_file():
        raise UserError(f"{path} does not exist; pass a .nir file written by nir.write")
    try:
        return nir.read(str(path))
    except Exception as exc:  # noqa: BLE001 - any parse failure of a foreign file is the user's input
        raise UserError(f"{path} is not a readable NIR file ({type(exc).__name__}: {exc}); re-export it") from exc


def read_inputs(path: Path, steps: int) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise UserError(f"{path} does not exist; pass --inputs X.npz with one array per Input node")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path} is not a readable .npz ({type(exc).__name__}); write it with numpy.savez") from exc
    for name, x in data.items():
        if x.ndim < 2 or x.shape[1] != steps:
            raise UserError(f"input {name!r} in {path} has shape {x.shape}, but --steps is {steps}; arrays must "
                            "be [N, T, *shape] with T = --steps")
    return data


def simulate_file(args: argparse.Namespace) -> int:
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


def snn_spikes(model, x_audio, x_visual) -> dict[str, np.ndarray]:
    """snnTorch in float64, every layer's spikes batch-major [N, T, ...] uint8."""
    import copy

    import torch

    net = copy.deepcopy(model).double().eval()
    for neuron in net.neurons().values():  # snnTorch's spike functions return float32 whatever the input
        neuron.spike_grad = lambda x: (x > 0).to(x.dtype)
    with torch.no_grad():
        out = net(x_audio.double(), x_visual.double(), record=True)
    return {k: v.transpose(0, 1).numpy().astype(np.uint8) for k, v in out.spikes.items()}


def compare(lava: dict[str, np.ndarray], snn: dict[str, np.ndarray]) -> tuple[dict[str, int], np.ndarray]:
    """Mismatched spike entries per layer, and per sample summed over layers."""
    per_layer, per_sample = {}, None
    for name, ref in snn.items():
        diff = (lava[name] != ref).reshape(ref.shape[0], -1).sum(axis=1)
        per_layer[name] = int(diff.sum())
        per_sample = diff if per_sample is None else per_sample + diff
    return per_layer, per_sample


def simulate_run(args: argparse.Namespace) -> int:
    import torch

    from converters.model_to_nir import export_model
    from hardware_targets.lava_sim import simulate_graph
    from iemf_neuro.data.corruption import Corruption
    from iemf_neuro.models import encode_inputs
    from iemf_neuro.provenance import atomic_path, provenance, write_json_atomic
    from iemf_neuro.training.checkpoint import load_run
    from iemf_neuro.training.config import RunConfig
    from iemf_neuro.training.data import load_dataset

    run = load_run(args.target)
    cfg = run.model_config
    config = RunConfig(cfg.name, cfg, run.train_config)
    seed = run.train_config.seed if args.seed is None else args.seed
    corruption = {"audio_snr_db": args.audio_snr_db, "image_noise_std": args.image_noise_std}
    Corruption(**corruption)
    data = load_dataset(config, args.split, corruption)
    n = len(data.labels) if args.limit is None else min(args.limit, len(data.labels))
    if n < 1:
        raise UserError(f"--limit {args.limit} selects no samples; pass a positive limit")
    nir_path = args.target / "model.nir"
    graph = read_graph(nir_path) if nir_path.is_file() else export_model(run.model, cfg)
    x_a, x_v = encode_inputs(cfg, data.audio[:n], data.image[:n], torch.Generator().manual_seed(seed))
    labels = data.labels[:n].numpy()
    snn = snn_spikes(run.model, x_a, x_v)
    inputs = {"audio": x_a.transpose(0, 1).double().numpy(), "visual": x_v.transpose(0, 1).double().numpy()}
    result = simulate_graph(graph, inputs, args.precision, timeout_s=args.timeout, progress=not args.no_progress)
    per_layer, per_sample = compare(result.spikes, snn)
    lava_pred = result.spikes["output"].sum(axis=1).argmax(axis=1)
    snn_pred = snn["output"].sum(axis=1).argmax(axis=1)
    summary: dict[str, Any] = {
        "precision": args.precision, "split": args.split, "samples": n, "corruption": corruption, "seed": seed,
        "accuracy": {"lava": float((lava_pred == labels).mean()), "snntorch": float((snn_pred == labels).mean())},
        "prediction_agreement": float((lava_pred == snn_pred).mean()),
        "spike_counts": {"lava": {k: int(v.sum()) for k, v in result.spikes.items()},
                         "snntorch": {k: int(v.sum()) for k, v in snn.items()}},
        "mismatches": per_layer, "mismatches_per_sample": per_sample.tolist(),
        "spike_agreement": {k: 1.0 - per_layer[k] / snn[k].size for k in per_layer},
        "quantization": result.quantization, "lava_steps": result.steps, "latency_steps": result.latency,
        "samples_per_s": result.samples_per_s, "wall_s": result.wall_s,
        "provenance": provenance(config, seed),
    }
    stem = args.target / f"sim_{args.precision}"
    with atomic_path(stem.with_suffix(".npz")) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **result.spikes)
    write_json_atomic(stem.with_suffix(".json"), summary)
    acc = summary["accuracy"]
    print(f"Lava {args.precision} on {args.split} ({n} samples): accuracy {acc['lava']:.4f} (snnTorch "
          f"{acc['snntorch']:.4f}); spike mismatches per layer {per_layer}; {result.samples_per_s:.1f} samples/s; "
          f"wrote {stem}.json and {stem}.npz")
    return 0
