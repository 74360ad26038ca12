"""The inverse-effectiveness sweep file that ``iemf-neuro evaluate --sweep`` writes, read back and drawn.

    {"split": "test",
     "cells": [{"audio_snr_db", "image_noise_std", "accuracy", "audio_accuracy", "visual_accuracy",
                "best_unimodal_accuracy", "multisensory_gain", "n"}, ...],   one per corruption cell
     "fit": {"slope", "intercept", "pearson_r"},   multisensory_gain ~ best_unimodal_accuracy
     "provenance": {...}}

Training plots it beside the run and the hardware report embeds the same figure, so both read it here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from iemf_neuro.errors import UserError

CELL_KEYS = ("audio_accuracy", "visual_accuracy", "best_unimodal_accuracy", "multisensory_gain")
FIT_KEYS = ("slope", "intercept", "pearson_r")


def _numbers(record: Any, keys: tuple[str, ...]) -> bool:
    return isinstance(record, dict) and all(
        isinstance(record.get(k), (int, float)) and math.isfinite(record[k]) for k in keys)


def read_sweep(path: str | Path) -> dict[str, Any]:
    """The sweep's split, cells and fit; a UserError saying what is wrong when the file is not a sweep."""
    fix = "re-run 'iemf-neuro evaluate RUN_DIR --sweep'"
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read the sweep file {path} ({exc}); {fix}") from exc
    cells = data.get("cells") if isinstance(data, dict) else None
    if not isinstance(data.get("split") if isinstance(data, dict) else None, str) or not isinstance(cells, list) \
            or not cells or not all(_numbers(c, CELL_KEYS) for c in cells) or not _numbers(data.get("fit"), FIT_KEYS):
        raise UserError(f"{path} is not a sweep file (expected {{split, cells, fit}} with numeric "
                        f"{', '.join(CELL_KEYS)} per cell); {fix}")
    return {"split": data["split"], "cells": cells, "fit": data["fit"]}


def draw_sweep(fig, ax, cells: list[dict[str, Any]], fit: dict[str, float]) -> None:
    """Multisensory gain against the stronger unimodal accuracy, one point per corruption cell, and the fit."""
    x = [c["best_unimodal_accuracy"] for c in cells]
    y = [c["multisensory_gain"] for c in cells]
    sc = ax.scatter(x, y, c=[c["audio_accuracy"] - c["visual_accuracy"] for c in cells], cmap="coolwarm",
                    vmin=-1, vmax=1)
    fig.colorbar(sc, ax=ax, label="audio - visual accuracy")
    xs = [min(x), max(x)]
    ax.plot(xs, [fit["intercept"] + fit["slope"] * v for v in xs], color="black",
            label=f"fit: slope {fit['slope']:.2f}, r {fit['pearson_r']:.2f}")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set(xlabel="stronger unimodal accuracy", ylabel="multisensory gain (fused - best unimodal)",
           title="inverse effectiveness")
    ax.legend()
