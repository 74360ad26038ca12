"""A trained run's split encoded as the CLI encodes it: what a benchmark feeds the simulators."""

from __future__ import annotations

import numpy as np
import torch

from converters.quantize import calibration_indices
from iemf_neuro.models import encode_inputs
from iemf_neuro.training.data import load_dataset


def encoded(run, split: str, calibration: bool = False) -> dict[str, np.ndarray]:
    """The split encoded with the run's seed; ``calibration``: the seeded subset the CLI calibrates on."""
    cfg = run.model_config
    data = load_dataset(run.config, split)
    rows = torch.arange(len(data.labels))
    if calibration:
        rows = torch.from_numpy(calibration_indices(len(data.labels), seed=run.train_config.seed))
    x_a, x_v = encode_inputs(cfg, torch.as_tensor(data.audio)[rows], torch.as_tensor(data.image)[rows],
                             torch.Generator().manual_seed(run.train_config.seed))
    return {"audio": x_a.transpose(0, 1).double().numpy(), "visual": x_v.transpose(0, 1).double().numpy(),
            "labels": np.asarray(data.labels)[rows.numpy()]}
