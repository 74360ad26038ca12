"""Evaluate a trained run on a split of its dataset, or over the inverse-effectiveness sweep."""

from __future__ import annotations

from pathlib import Path

from converters.nir_io import read_graph
from iemf_neuro.provenance import provenance, write_json_atomic
from iemf_neuro.training.checkpoint import load_run
from iemf_neuro.training.evaluate import (DEFAULT_AUDIO_SNRS_DB, DEFAULT_IMAGE_NOISE_STDS, EvalMetrics, SweepResult,
                                          evaluate_split, inverse_effectiveness_sweep, save_sweep)

from .simulate import deployed_gains


def evaluate_run(run_dir: Path, split: str = "test", device: str = "cpu") -> tuple[EvalMetrics, Path]:
    """best.pt's accuracies on ``split`` -> RUN_DIR/eval_<split>.json."""
    run = load_run(run_dir)
    metrics = evaluate_split(run.model, run.config, split, device)
    path = run_dir / f"eval_{split}.json"
    write_json_atomic(path, {**metrics.__dict__, "provenance": provenance(run.config, run.train_config.seed)})
    return metrics, path


def sweep_run(run_dir: Path, split: str = "test", audio_snrs_db: list[float | None] | None = None,
              image_noise_stds: list[float] | None = None, device: str = "cpu",
              progress: bool = True) -> tuple[SweepResult, Path, Path]:
    """Accuracy over audio SNR x image noise -> RUN_DIR/sweep_<split>.json and its plot; with RUN_DIR/model.nir
    the network runs with the fusion gains exported there (the deployed network's curve)."""
    run = load_run(run_dir)
    if (Path(run_dir) / "model.nir").is_file():
        deployed_gains(run.model, read_graph(Path(run_dir) / "model.nir"))
    result = inverse_effectiveness_sweep(run.model, run.config, split, audio_snrs_db or DEFAULT_AUDIO_SNRS_DB,
                                         image_noise_stds or DEFAULT_IMAGE_NOISE_STDS, device, progress)
    json_path, png_path = save_sweep(result, run_dir, provenance(run.config, run.train_config.seed))
    return result, json_path, png_path
