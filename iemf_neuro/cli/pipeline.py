"""`iemf-neuro train-and-convert`: train (-> fixed-point fine-tuning) -> export to NIR -> Lava float and fixed ->
energy report, in one run directory.

Fixed point (docs/lava.md, "Fixed point") deploys by default the float network with its weight exponents
calibrated on training data, the better path in docs/benchmarks.md; with ``--qat-epochs N`` the float network
is first fine-tuned N epochs through its exact fixed-point forward into RUN_DIR/qat, and Lava runs that one.
The fixed-vs-float drop is the Lava float accuracy of the float network minus the Lava fixed-point accuracy
of the network deployed.

Each stage records a key in RUN_DIR/stages.json: the hash of its own settings and of the stage before it.
Re-running skips every stage whose key and outputs are in place and redoes the first one that is missing
or stale, and everything after it. An interrupted training resumes from its last checkpoint.
RUN_DIR/summary.json gathers the headline numbers; it holds no timings, so the same config and seed give
the same bytes (timings live in stages.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from iemf_neuro.errors import UserError

DEFAULT_TARGETS = ("loihi1", "loihi2", "truenorth", "ann-gpu")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-and-convert", help="train -> export -> Lava float/fixed -> energy report",
        description="Run the whole pipeline into one run directory: train an IEMF SNN, export it to NIR, "
                    "simulate it in Lava (float and bit-accurate fixed point) against snnTorch, and report "
                    "energy, latency and chip resources per target. Finished stages are skipped on re-runs.")
    parser.add_argument("--config", default="avdigits-mlp", help="named run config (default avdigits-mlp)")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="run directory (default runs/demo)")
    parser.add_argument("--method", default=None, help="plain | aux-heads | iemf (default) | ogm-ge | ogm-ge+iemf")
    parser.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key (see `iemf-neuro train --help`)")
    parser.add_argument("--target", action="append", default=[],
                        help=f"hardware target (repeatable; default {', '.join(DEFAULT_TARGETS)})")
    parser.add_argument("--qat-epochs", type=int, default=0,
                        help="fine-tune this many epochs through the fixed-point forward and deploy that network "
                             "(default 0: deploy the float network, its exponents calibrated on training data, "
                             "the better path measured in docs/benchmarks.md)")
    parser.add_argument("--limit", type=int, default=None, help="simulate only the first N test samples in Lava")
    parser.add_argument("--timeout", type=float, default=1800.0, help="Lava watchdog per simulation, seconds")
    parser.add_argument("--retrain", action="store_true",
                        help="discard a finished or partial training whose config differs from this one")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class Stage:
    name: str
    settings: dict[str, Any]  # what this stage's result depends on, besides the stage before it
    outputs: tuple[str, ...]  # files in RUN_DIR that must exist for the stage to count as done
    action: Callable[[], None]


def stage_keys(stages: list[Stage]) -> dict[str, str]:
    """Chained keys: a stage is stale when its settings or any earlier stage's settings change."""
    from iemf_neuro.provenance import config_hash

    keys, previous = {}, ""
    for stage in stages:
        previous = keys[stage.name] = config_hash({"settings": stage.settings, "previous": previous})
    return keys


def run_stages(run_dir: Path, stages: list[Stage], log: Callable[[str], None]) -> dict[str, Any]:
    from iemf_neuro.provenance import write_json_atomic

    record_path = run_dir / "stages.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    keys, redo = stage_keys(stages), False
    for stage in stages:
        done = record.get(stage.name, {}).get("key") == keys[stage.name]
        done = done and all((run_dir / out).is_file() for out in stage.outputs)
        if done and not redo:
            log(f"[{stage.name}] up to date, skipped")
            continue
        redo = True
        log(f"[{stage.name}] running")
        tic = time.perf_counter()
        stage.action()
        record[stage.name] = {"key": keys[stage.name], "wall_s": round(time.perf_counter() - tic, 3)}
        write_json_atomic(record_path, record)
    return record


def train_stage(args: argparse.Namespace, config, run_dir: Path) -> None:
    from iemf_neuro.training.checkpoint import checkpoint_paths, load_checkpoint
    from iemf_neuro.training.trainer import train

    last = checkpoint_paths(run_dir)["last"]
    resume = last.is_file()
    if resume and load_checkpoint(last)["run_config"] != config:
        if not args.retrain:
            raise UserError(f"{run_dir} holds a training with another config; pass --retrain to discard it "
                            "or choose another --out")
        shutil.rmtree(run_dir / "checkpoints")
        resume = False
    train(run_dir, config, resume=resume, progress=not args.quiet)


def energy_stage(run_dir: Path, targets: list[str]) -> None:
    from hardware_targets.report import write_reports
    from hardware_targets.targets import load_target
    from iemf_neuro.cli.energy import counts_for, reports_for
    from iemf_neuro.provenance import provenance

    graph, counts, spikes = counts_for(run_dir, run_dir / "sim_float.npz", None)
    reports, mappings = reports_for(graph, counts, [load_target(t) for t in targets])
    write_reports(run_dir, reports, counts, mappings, spikes=spikes, run_dir=run_dir,
                  provenance=provenance({"run_dir": str(run_dir), "targets": targets}))


def energy_summary(t: dict[str, Any]) -> dict[str, Any]:
    """One target's three levels with their low/high ends, and whether the network fits (why not, if not)."""
    out: dict[str, Any] = {"fits": t["fits"], "violations": t["violations"], "kinds": t["kinds"],
                           "operations_per_inference": {k: v["mean"] for k, v in t["operations"].items()}}
    for level in ("core", "system"):  # None where energy.estimate gave no figure (the network does not fit)
        out[f"{level}_energy_j"] = t[f"{level}_range"]
    out["latency_s"] = t["latency_range"]
    out["cores"], out["chips"] = t["cores_used"], t["chips_needed"]
    return out


def fixed_point_summary(run_dir: Path, fixed_dir: Path) -> dict[str, Any]:
    """The deployed fixed-point network against the float one on the same test samples: accuracies, the drop
    in points, the share of samples with the same prediction, and the spikes that differ from its reference
    (a quantisation-aware network's own fixed-point forward: 0, else the float forward)."""
    import numpy as np

    sim_float, sim_fixed = (json.loads(p.read_text()) for p in (run_dir / "sim_float.json",
                                                                fixed_dir / "sim_fixed.json"))
    pred = {k: np.load(p)["output"].sum(axis=1).argmax(axis=1) for k, p in (("float", run_dir / "sim_float.npz"),
                                                                             ("fixed", fixed_dir / "sim_fixed.npz"))}
    return {"path": "quantisation-aware" if fixed_dir != run_dir else "calibrated",
            "accuracy_float": sim_float["accuracy"]["lava"], "accuracy_fixed": sim_fixed["accuracy"]["lava"],
            "drop_points": round(100 * (sim_float["accuracy"]["lava"] - sim_fixed["accuracy"]["lava"]), 4),
            "prediction_agreement": float(np.mean(pred["float"] == pred["fixed"])),
            "spike_mismatches_vs_reference": sum(sim_fixed["mismatches"].values()), "reference": sim_fixed["reference"]}


def summarise(run_dir: Path, fixed_dir: Path) -> dict[str, Any]:
    """summary.json: the headline numbers of every stage, without timings."""
    from iemf_neuro.provenance import package_versions, git_revision, write_json_atomic

    def load(name: str) -> dict[str, Any]:
        return json.loads((run_dir / name).read_text())

    test, sim_float, energy = (load(n) for n in ("test_metrics.json", "sim_float.json", "energy.json"))
    sim_fixed = json.loads((fixed_dir / "sim_fixed.json").read_text())
    targets = energy["targets"]
    summary = {
        "accuracy_snntorch": test["accuracy"],
        "accuracy_snntorch_float64": sim_float["accuracy"]["snntorch"],
        "accuracy_lava_float": sim_float["accuracy"]["lava"],
        "accuracy_lava_fixed": sim_fixed["accuracy"]["lava"],
        "spike_mismatches_float": sum(sim_float["mismatches"].values()),
        "spike_mismatches_float_per_layer": sim_float["mismatches"],
        "spike_agreement_fixed": sim_fixed["float_spike_agreement"],
        "fixed_point": fixed_point_summary(run_dir, fixed_dir),
        "lava_samples": sim_float["samples"],
        "energy_verdict": energy["verdict"],
        "energy": {name: energy_summary(t) for name, t in targets.items()},
        "config": test["provenance"]["config"],
        "seed": test["provenance"]["seed"],
        "versions": package_versions(),
        "git_revision": git_revision(),
    }
    write_json_atomic(run_dir / "summary.json", summary)
    return summary


def run(args: argparse.Namespace) -> int:
    from hardware_targets.run_simulation import SimulationRequest, simulate_run
    from iemf_neuro.training.config import get_run_config, quant_aware_config

    from converters.model_to_nir import export_run

    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit} must be >= 1")
    qat_epochs = args.qat_epochs
    if qat_epochs < 0:
        raise UserError(f"--qat-epochs {qat_epochs} must be >= 0 (0: deploy the float network, calibrated)")
    config = get_run_config(args.config, args.method, args.epochs, args.seed, args.overrides)
    targets = args.target or list(DEFAULT_TARGETS)
    out, progress = args.out, not args.quiet
    fixed_dir = out / "qat" if qat_epochs else out
    exported = dict.fromkeys((out, fixed_dir))  # the float network, and the fine-tuned one Lava runs in fixed point

    def simulate(run_dir: Path, precision: str) -> Callable[[], None]:
        request = SimulationRequest(precision, "test", args.limit, timeout_s=args.timeout)
        return lambda: simulate_run(run_dir, request, progress=progress)

    sim = {"split": "test", "limit": args.limit}
    fixed_outputs = tuple(str((fixed_dir / f).relative_to(out)) for f in ("sim_fixed.json", "sim_fixed.npz"))
    stages = [Stage("train", config.to_dict(), ("test_metrics.json", "checkpoints/best.pt"),
                    lambda: train_stage(args, config, out))]
    if qat_epochs:
        qat = quant_aware_config(config, out / "checkpoints" / "best.pt", qat_epochs)
        stages.append(Stage("qat", {"epochs": qat_epochs}, ("qat/test_metrics.json", "qat/checkpoints/best.pt"),
                            lambda: train_stage(args, qat, fixed_dir)))
    stages += [
        Stage("export", {}, tuple(str((d / "model.nir").relative_to(out)) for d in exported),
              lambda: [export_run(d) for d in exported]),
        Stage("lava-float", {**sim, "precision": "float"}, ("sim_float.json", "sim_float.npz"),
              simulate(out, "float")),
        Stage("lava-fixed", {**sim, "precision": "fixed", "qat_epochs": qat_epochs}, fixed_outputs,
              simulate(fixed_dir, "fixed")),
        Stage("energy", {"targets": targets}, ("energy.json", "report.html"), lambda: energy_stage(out, targets)),
    ]
    out.mkdir(parents=True, exist_ok=True)
    run_stages(out, stages, print)
    summary = summarise(out, fixed_dir)
    fp = summary["fixed_point"]
    print(f"snnTorch accuracy {summary['accuracy_snntorch']:.4f}; Lava float {summary['accuracy_lava_float']:.4f} "
          f"({summary['spike_mismatches_float']} spike mismatches); Lava fixed {summary['accuracy_lava_fixed']:.4f} "
          f"({fp['path']}: drop {fp['drop_points']:.2f} points, same prediction on "
          f"{100 * fp['prediction_agreement']:.1f} % of samples)")
    print(summary["energy_verdict"])
    print(f"wrote {out / 'summary.json'} and {out / 'report.html'}")
    return 0
