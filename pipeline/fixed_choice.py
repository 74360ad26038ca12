"""Which network to deploy in fixed point once quantisation-aware fine-tuning has run: the fine-tuned one, or
the float network with its exponents calibrated (the default path).

Both are scored on the validation split, never on test data, by what the fine-tuning itself maximises: the
share of samples on which the fixed-point network predicts what the float network predicts, then accuracy.
The fine-tuned network is deployed only when it scores strictly higher: on 300 validation samples a tie is
noise. Its score is the best of its epochs on these same samples (the fine-tuning chose best.pt on them), so
it is optimistic where the calibrated network's is not; breaking ties towards the calibrated one, whose worst
case measured is the smaller alone (docs/benchmarks.md, "Fixed point"), leans back.
Both fixed-point forwards are bit-exact to Lava's ``fixed_pt`` models, so no Lava run is needed to choose.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iemf_neuro.errors import UserError
from iemf_neuro.provenance import provenance, write_json_atomic
from iemf_neuro.training.checkpoint import load_run

from .simulate import (SimulationRequest, calibration_inputs, encoded_split, fixed_point_prediction, prediction,
                       run_model_graph, snn_spikes, torch_inputs)

CHOICE_FILE = "fixed_choice.json"
CALIBRATED, QUANT_AWARE = "calibrated", "quantisation-aware"


@dataclass(frozen=True)
class Candidate:
    run_dir: str  # relative to the float run: "." or, from train-and-convert, "qat"
    accuracy: float
    agreement: float  # share of samples predicted as the float network predicts them


def fixed_choice(float_dir: Path, qat_dir: Path, split: str = "val") -> dict[str, Any]:
    """Both candidates scored on ``split`` and the one to deploy (the record ``choose_fixed_point`` writes)."""
    float_run, qat_run = load_run(float_dir), load_run(qat_dir)
    clean = SimulationRequest().corruption  # what the deployed network is calibrated and tested on
    inputs, labels = encoded_split(float_run, split, corruption=clean)
    x = torch_inputs(inputs)
    float_pred = prediction(snn_spikes(float_run.model, *x))
    preds = {CALIBRATED: fixed_point_prediction(run_model_graph(float_dir, float_run), inputs,
                                                calibration_inputs(float_run, corruption=clean)),
             QUANT_AWARE: prediction(snn_spikes(qat_run.model, *x, fixed=True))}
    dirs = {CALIBRATED: ".", QUANT_AWARE: os.path.relpath(qat_dir, float_dir)}
    candidates = {k: Candidate(dirs[k], float(np.mean(p == labels)), float(np.mean(p == float_pred)))
                  for k, p in preds.items()}

    def key(name: str) -> tuple[float, float]:
        return candidates[name].agreement, candidates[name].accuracy

    chosen = QUANT_AWARE if key(QUANT_AWARE) > key(CALIBRATED) else CALIBRATED
    return {"split": split, "samples": len(labels), "chosen": chosen, "deployed": dirs[chosen],
            "candidates": {k: asdict(c) for k, c in candidates.items()},
            "provenance": provenance({"float_run": str(float_dir), "qat_run": str(qat_dir), "split": split},
                                     float_run.train_config.seed)}


def choose_fixed_point(float_dir: Path, qat_dir: Path) -> dict[str, Any]:
    """``fixed_choice`` on the validation split, written to FLOAT_DIR/fixed_choice.json."""
    record = fixed_choice(float_dir, qat_dir)
    write_json_atomic(float_dir / CHOICE_FILE, record)
    return record


def deployed_dir(run_dir: Path) -> Path:
    """The run whose fixed-point network is deployed: the choice's, else RUN_DIR itself (calibrated)."""
    choice = run_dir / CHOICE_FILE
    if not choice.is_file():
        return run_dir
    try:
        return run_dir / json.loads(choice.read_text())["deployed"]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{choice} is unreadable ({type(exc).__name__}); delete it and re-run train-and-convert "
                        "with --qat-epochs") from exc
