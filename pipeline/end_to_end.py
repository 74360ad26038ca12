"""train-and-convert: train (-> fixed-point fine-tuning) -> export to NIR -> inverse-effectiveness sweep -> Lava
float and fixed -> energy report, in one run directory.

How the deployed network weights its modalities (``fusion_gain``): gains (1, 1); static gains chosen by the
reliability rule on the validation split under the declared deployment ``condition`` (``converters.fusion_gain``),
under which the Lava stages then test; or the on-chip gate trained with the network (``dynamic``). The sweep
(RUN_DIR/sweep_test.json) is the deployed network's accuracy over audio SNR x image noise, the report's curve.

Fixed point (docs/lava.md, "Fixed point") deploys by default the float network with its weight exponents
calibrated on training data, the better path in docs/benchmarks.md; with ``qat_epochs`` the float network is
also fine-tuned that many epochs through its exact fixed-point forward into RUN_DIR/qat, Lava runs both on
the test split, and the one deployed is chosen on the validation split (``fixed_choice``, recorded in
RUN_DIR/fixed_choice.json). The fixed-vs-float drop is the Lava float accuracy of the float network minus the
Lava fixed-point accuracy of the network deployed.

Each stage records a key in RUN_DIR/stages.json: the hash of its own settings and of the stage before it.
Re-running skips every stage whose key and outputs are in place and redoes the first one that is missing
or stale, and everything after it. Training follows the one resume rule (``continue_config``): an
interrupted training resumes from its last checkpoint, and a changed option that would alter its results
is refused. The fine-tuning is derived from the float network: when its key changes it restarts.
RUN_DIR/summary.json gathers the headline numbers; it holds no timings, so the same config and seed give
the same bytes (timings live in stages.json).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hardware_targets.report import condition_text, deployed_fusion, energy_summary
from iemf_neuro.data.corruption import Corruption
from iemf_neuro.errors import UserError
from iemf_neuro.provenance import config_hash, git_revision, package_versions, write_json_atomic
from iemf_neuro.training.config import ConfigChanges, quant_aware_config
from iemf_neuro.training.trainer import train

from .energy import energy_report
from .evaluate import sweep_run
from .export import export_for_condition
from .fixed_choice import CHOICE_FILE, choose_fixed_point, deployed_dir
from .simulate import SimulationRequest, prediction, simulate_run
from .train import requested_config

DEFAULT_TARGETS = ("loihi1", "loihi2", "truenorth", "ann-gpu")
FUSION_GAINS = ("unity", "reliability", "dynamic")  # how the deployed network weights its modalities
DYNAMIC_GATE = "model.gate=full"  # --fusion-gain dynamic trains the on-chip gate (docs/gate.md)
CONDITION_KEYS = ("audio_snr_db", "image_noise_std", "image_occlusion")  # what --fusion-gain's condition may set
IE_AUDIO_SNRS_DB = (None, 10.0, 0.0, -5.0)  # the report's inverse-effectiveness curve (None: clean audio)
IE_IMAGE_NOISE_STDS = (0.0, 0.5, 0.9)


@dataclass(frozen=True)
class Stage:
    name: str
    settings: dict[str, Any]  # what this stage's result depends on, besides the stage before it
    outputs: tuple[str, ...]  # files in RUN_DIR that must exist for the stage to count as done
    action: Callable[[], None]
    restart: tuple[str, ...] = ()  # folders in RUN_DIR removed before the stage runs under a new key


@dataclass(frozen=True)
class PipelineOptions:
    targets: tuple[str, ...] = DEFAULT_TARGETS  # hardware targets of the energy report
    qat_epochs: int = 0  # fixed-point fine-tuning epochs (0: deploy the calibrated float network)
    limit: int | None = None  # simulate only the first N test samples in Lava
    timeout_s: float = 1800.0  # Lava watchdog per simulation
    progress: bool = True
    fusion_gain: str = "unity"  # unity | reliability (static gains for ``condition``) | dynamic (on-chip gate)
    condition: dict[str, Any] = field(default_factory=dict)  # declared deployment condition (Corruption fields)


def check_condition(condition: dict[str, Any]) -> None:
    """A deployment condition holds only the fields the Lava stages degrade the test split by, with valid values."""
    unknown = sorted(set(condition) - set(CONDITION_KEYS))
    if unknown:
        raise UserError(f"unknown deployment condition keys {unknown}; use {', '.join(CONDITION_KEYS)}")
    Corruption(**condition)


def gate_changes(changes: ConfigChanges, fusion_gain: str) -> ConfigChanges:
    """``dynamic`` trains the on-chip gate: ``model.gate=full`` unless the command line chose a kind."""
    if fusion_gain != "dynamic":
        return changes
    gates = [o for o in changes.overrides if o.startswith("model.gate=")]
    if gates and gates[-1] == "model.gate=none":
        raise UserError("--fusion-gain dynamic trains the on-chip gate, which --set model.gate=none turns off; "
                        "drop one of them")
    return changes if gates else replace(changes, overrides=(*changes.overrides, DYNAMIC_GATE))


def stage_keys(stages: list[Stage]) -> dict[str, str]:
    """Chained keys: a stage is stale when its settings or any earlier stage's settings change."""
    keys, previous = {}, ""
    for stage in stages:
        previous = keys[stage.name] = config_hash({"settings": stage.settings, "previous": previous})
    return keys


def run_stages(run_dir: Path, stages: list[Stage], log: Callable[[str], None]) -> dict[str, Any]:
    record_path = run_dir / "stages.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    keys, redo = stage_keys(stages), False
    for stage in stages:
        same_key = record.get(stage.name, {}).get("key") == keys[stage.name]
        if same_key and not redo and all((run_dir / out).is_file() for out in stage.outputs):
            log(f"[{stage.name}] up to date, skipped")
            continue
        redo = True
        log(f"[{stage.name}] running")
        if not same_key:
            for folder in stage.restart:
                shutil.rmtree(run_dir / folder, ignore_errors=True)
        tic = time.perf_counter()
        stage.action()
        record[stage.name] = {"key": keys[stage.name], "wall_s": round(time.perf_counter() - tic, 3)}
        write_json_atomic(record_path, record)
    return record


def fixed_point_summary(run_dir: Path, fixed_dir: Path) -> dict[str, Any]:
    """The deployed fixed-point network against the float one on the same test samples: accuracies, the drop
    in points, the share of samples with the same prediction, and the spikes that differ from its reference
    (a quantisation-aware network's own fixed-point forward: 0, else the float forward)."""
    sim_float, sim_fixed = (json.loads(p.read_text()) for p in (run_dir / "sim_float.json",
                                                                fixed_dir / "sim_fixed.json"))
    pred = {k: prediction(np.load(p)) for k, p in (("float", run_dir / "sim_float.npz"),
                                                   ("fixed", fixed_dir / "sim_fixed.npz"))}
    choice = run_dir / CHOICE_FILE
    return {"path": "quantisation-aware" if fixed_dir != run_dir else "calibrated",
            "choice": json.loads(choice.read_text()) if choice.is_file() else None,
            "accuracy_float": sim_float["accuracy"]["lava"], "accuracy_fixed": sim_fixed["accuracy"]["lava"],
            "drop_points": round(100 * (sim_float["accuracy"]["lava"] - sim_fixed["accuracy"]["lava"]), 4),
            "prediction_agreement": float(np.mean(pred["float"] == pred["fixed"])),
            "spike_mismatches_vs_reference": sum(sim_fixed["mismatches"].values()), "reference": sim_fixed["reference"]}


def fusion_summary(run_dir: Path, condition: dict[str, Any]) -> dict[str, Any]:
    """How the deployed network weights its modalities (``deployed_fusion``: gains, how they were chosen, the
    on-chip gate) and the deployment ``condition`` the test accuracies were measured under."""
    return {**deployed_fusion(run_dir), "condition": condition, "condition_text": condition_text(condition)}


def summarise(run_dir: Path, fixed_dir: Path) -> dict[str, Any]:
    """summary.json: the headline numbers of every stage, without timings."""
    def load(name: str) -> dict[str, Any]:
        return json.loads((run_dir / name).read_text())

    test, sim_float, energy = (load(n) for n in ("test_metrics.json", "sim_float.json", "energy.json"))
    sim_fixed = json.loads((fixed_dir / "sim_fixed.json").read_text())
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
        "fusion": fusion_summary(run_dir, sim_float["corruption"]),
        "energy_verdict": energy["verdict"],
        "energy": {name: energy_summary(t) for name, t in energy["targets"].items()},
        "config": test["provenance"]["config"],
        "seed": test["provenance"]["seed"],
        "versions": package_versions(),
        "git_revision": git_revision(),
    }
    write_json_atomic(run_dir / "summary.json", summary)
    return summary


def train_and_convert(out: Path, changes: ConfigChanges, options: PipelineOptions = PipelineOptions(),
                      log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every stage into ``out`` (skipping those already done); returns summary.json's contents."""
    if options.limit is not None and options.limit < 1:
        raise UserError(f"--limit {options.limit} must be >= 1")
    if options.qat_epochs < 0:
        raise UserError(f"--qat-epochs {options.qat_epochs} must be >= 0 (0: deploy the float network, calibrated)")
    if options.fusion_gain not in FUSION_GAINS:
        raise UserError(f"unknown --fusion-gain {options.fusion_gain!r}; choose one of {', '.join(FUSION_GAINS)}")
    if options.fusion_gain == "reliability" and options.qat_epochs:
        raise UserError("--fusion-gain reliability folds gains after training, which a network fine-tuned in fixed "
                        "point with gains (1, 1) does not hold; drop --qat-epochs or use --fusion-gain dynamic")
    check_condition(options.condition)
    config, resuming = requested_config(out, gate_changes(changes, options.fusion_gain), None)
    qat_dir = out / "qat"
    static_rule = "reliability" if options.fusion_gain == "reliability" else "unity"

    def simulate(run_dir: Path, precision: str) -> Callable[[], None]:
        request = SimulationRequest(precision, "test", options.limit, timeout_s=options.timeout_s,
                                    **options.condition)
        return lambda: simulate_run(run_dir, request, progress=options.progress)

    def ie_sweep() -> None:
        sweep_run(out, "test", list(IE_AUDIO_SNRS_DB), list(IE_IMAGE_NOISE_STDS), progress=options.progress)

    sim = {"split": "test", "limit": options.limit, "condition": options.condition}
    stages = [
        Stage("train", config.to_dict(), ("test_metrics.json", "checkpoints/best.pt"),
              lambda: train(out, config, resume=resuming, progress=options.progress)),
        Stage("export", {"fusion_gain": static_rule, "condition": options.condition}, ("model.nir",),
              lambda: export_for_condition(out, None, static_rule, options.condition)),
        Stage("sweep", {"audio_snr_db": IE_AUDIO_SNRS_DB, "image_noise_std": IE_IMAGE_NOISE_STDS},
              ("sweep_test.json",), ie_sweep),
        Stage("lava-float", {**sim, "precision": "float"}, ("sim_float.json", "sim_float.npz"),
              simulate(out, "float")),
        Stage("lava-fixed", {**sim, "precision": "fixed"}, ("sim_fixed.json", "sim_fixed.npz"), simulate(out, "fixed")),
    ]
    if options.qat_epochs:  # after the float network's stages, which a changed fine-tuning recipe leaves alone
        qat = quant_aware_config(config, str(out / "checkpoints" / "best.pt"), options.qat_epochs)
        stages += [
            Stage("qat", qat.to_dict()["train"], ("qat/test_metrics.json", "qat/checkpoints/best.pt"),
                  lambda: train(qat_dir, qat, resume=(qat_dir / "checkpoints" / "last.pt").is_file(),
                                progress=options.progress), restart=("qat",)),
            Stage("export-qat", {}, ("qat/model.nir",), lambda: export_for_condition(qat_dir, None, "unity", {})),
            Stage("lava-fixed-qat", {**sim, "precision": "fixed"}, ("qat/sim_fixed.json", "qat/sim_fixed.npz"),
                  simulate(qat_dir, "fixed")),
            Stage("fixed-choice", {"split": "val"}, (CHOICE_FILE,), lambda: choose_fixed_point(out, qat_dir))]
    elif (out / CHOICE_FILE).is_file():  # an earlier run with fine-tuning: its choice no longer applies
        (out / CHOICE_FILE).unlink()
    stages += [
        Stage("energy", {"targets": list(options.targets)}, ("energy.json", "report.html"),
              lambda: energy_report(out, list(options.targets))),
    ]
    out.mkdir(parents=True, exist_ok=True)
    run_stages(out, stages, log)
    return summarise(out, deployed_dir(out))
