"""Export a trained run to NIR, with fusion gains given or calibrated on the run's own dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from converters.fusion_gain import FusionGains, calibrate_gains
from converters.model_to_nir import export_model, write_graph
from iemf_neuro.training.checkpoint import LoadedRun, load_run
from iemf_neuro.training.data import load_dataset


def calibrated_gains(run: LoadedRun, condition: dict[str, Any], split: str = "val",
                     mantissa_bits: int = 3) -> FusionGains:
    """Fusion gains by inverse effectiveness on ``split`` of the run's dataset degraded by ``condition``."""
    data = load_dataset(run.config, split, corruption=condition)
    return calibrate_gains(run.model, run.model_config, data, mantissa_bits, seed=run.train_config.seed,
                           condition={**condition, "split": split})


def export_run(run: str | Path | LoadedRun, out_path: str | Path | None = None,
               gains: dict[str, float] | None = None, metadata: dict[str, Any] | None = None) -> Path:
    """Export a run's best model to ``out_path`` (default RUN_DIR/model.nir), recording which run and epoch."""
    if not isinstance(run, LoadedRun):
        run = load_run(run)
    record = {"run": {"run_dir": str(run.run_dir), "epoch": run.epoch, "provenance": run.provenance},
              **(metadata or {})}
    graph = export_model(run.model, run.model_config, gains, record)
    return write_graph(graph, out_path if out_path is not None else Path(run.run_dir) / "model.nir")


def export_calibrated(run_dir: str | Path, out_path: str | Path | None, condition: dict[str, Any],
                      split: str = "val", mantissa_bits: int = 3) -> tuple[Path, FusionGains]:
    """Export with gains calibrated by ``calibrated_gains``, the calibration recorded in the graph's metadata."""
    run = load_run(run_dir)
    calibration = calibrated_gains(run, condition, split, mantissa_bits)
    return export_run(run, out_path, calibration.gains, {"fusion_calibration": calibration}), calibration
