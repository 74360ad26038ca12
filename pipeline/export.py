"""Export a trained run to NIR, with fusion gains given, or chosen for a declared deployment condition on the
run's own validation data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from converters.fusion_gain import FusionGains, calibrate_gains, power_of_two_search
from converters.model_to_nir import export_model, write_graph
from iemf_neuro.errors import UserError
from iemf_neuro.training.checkpoint import LoadedRun, load_run
from iemf_neuro.training.data import load_dataset

GAIN_RULES = ("unity", "reliability", "power-of-two")  # how static gains are chosen (docs/nir.md, "Fusion gains")


def deployment_gains(run: LoadedRun, rule: str, condition: dict[str, Any], split: str = "val",
                     mantissa_bits: int = 3) -> FusionGains | None:
    """Gains by ``rule`` on ``split`` of the run's dataset degraded by ``condition`` (None for unity)."""
    if rule not in GAIN_RULES:
        raise UserError(f"unknown fusion-gain rule {rule!r}; choose one of {', '.join(GAIN_RULES)}")
    if rule == "unity":
        return None
    if split == "test":
        raise UserError("fusion gains are chosen on training or validation data, never on test; pass --calibration-"
                        "split val")
    data = load_dataset(run.config, split, corruption=condition)
    record = {**condition, "split": split}
    seed = run.train_config.seed
    if rule == "power-of-two":
        return power_of_two_search(run.model, run.model_config, data, seed=seed, condition=record)
    clean = load_dataset(run.config, split, corruption={})
    return calibrate_gains(run.model, run.model_config, data, clean, mantissa_bits, seed=seed, condition=record)


def export_run(run: str | Path | LoadedRun, out_path: str | Path | None = None,
               gains: dict[str, float] | None = None, metadata: dict[str, Any] | None = None) -> Path:
    """Export a run's best model to ``out_path`` (default RUN_DIR/model.nir), recording which run and epoch."""
    if not isinstance(run, LoadedRun):
        run = load_run(run)
    record = {"run": {"run_dir": str(run.run_dir), "epoch": run.epoch, "provenance": run.provenance},
              **(metadata or {})}
    graph = export_model(run.model, run.model_config, gains, record)
    return write_graph(graph, out_path if out_path is not None else Path(run.run_dir) / "model.nir")


def export_for_condition(run_dir: str | Path, out_path: str | Path | None, rule: str, condition: dict[str, Any],
                         split: str = "val", mantissa_bits: int = 3) -> tuple[Path, FusionGains | None]:
    """Export with ``deployment_gains``, how they were chosen recorded in the graph's metadata."""
    run = load_run(run_dir)
    chosen = deployment_gains(run, rule, condition, split, mantissa_bits)
    if chosen is None:
        return export_run(run, out_path), None
    return export_run(run, out_path, chosen.gains, {"fusion_calibration": chosen}), chosen
