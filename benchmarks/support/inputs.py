"""A trained run's split encoded as the CLI encodes it: what a benchmark feeds the simulators."""

from __future__ import annotations

import numpy as np

from pipeline.simulate import calibration_inputs, encoded_split


def encoded(run, split: str, calibration: bool = False) -> dict[str, np.ndarray]:
    """The split encoded with the run's seed, with its ``labels``; ``calibration``: the training samples the
    CLI calibrates fixed point on (no labels)."""
    if calibration:
        return calibration_inputs(run)
    inputs, labels = encoded_split(run, split)
    return {**inputs, "labels": labels}
