"""Checkpoints and run directories.

A checkpoint is a dict of tensors and JSON-able values only, so it loads with
``torch.load(weights_only=True)``; configs are stored as JSON strings. ``last.pt`` also holds the optimizer,
every RNG state and the metrics history, so that a resumed run ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iemf_neuro.errors import UserError
from iemf_neuro.models import IEMFNet, ModelConfig, build_model
from iemf_neuro.provenance import atomic_path

from .config import RunConfig, TrainConfig, run_config_from_dict

FORMAT = "iemf-neuro-checkpoint"
VERSION = 1


def checkpoint_paths(run_dir: str | Path) -> dict[str, Path]:
    ckpt = Path(run_dir) / "checkpoints"
    return {"last": ckpt / "last.pt", "best": ckpt / "best.pt"}


def rng_state() -> dict[str, Any]:
    """torch, numpy and Python RNG states as tensors / plain values."""
    np_state = np.random.get_state()
    py_version, py_keys, py_gauss = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                       "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
             "python": {"version": py_version, "keys": list(py_keys), "gauss": py_gauss}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["keys"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, model: IEMFNet, config: RunConfig, epoch: int,
                    extra: dict[str, Any] | None = None) -> None:
    """Write atomically: the weights (float32, on CPU), both configs as JSON, the epoch, and ``extra``."""
    state = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype)
             for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "version": VERSION, "run_config": json.dumps(config.to_dict()),
               "epoch": int(epoch), "model": state, **(extra or {})}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and validate a checkpoint; anything foreign, newer or unreadable raises UserError with the fix."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; train first with `iemf-neuro train --out "
                        f"{path.parent.parent}`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise UserError(f"{path} is not a readable iemf-neuro checkpoint ({type(exc).__name__}); "
                        "re-train or point at a run directory written by `iemf-neuro train`") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path} is not an iemf-neuro checkpoint; point at a run directory written by "
                        "`iemf-neuro train`")
    if int(payload.get("version", -1)) > VERSION:
        raise UserError(f"{path} was written by a newer iemf-neuro (checkpoint version {payload['version']} > "
                        f"{VERSION}); upgrade iemf-neuro to read it")
    payload["run_config"] = run_config_from_dict(json.loads(payload["run_config"]))
    return payload


PROBE_KEYS = ("fused_head.weight", "fused_head.bias")  # the fused readout probe's weights (never exported)


def load_weights(model: IEMFNet, state: dict[str, torch.Tensor], path: Path | str = "checkpoint") -> bool:
    """Load ``state`` into ``model``; False when it predates the fused readout probe.

    Such a checkpoint lacks ``fused_head.*``: the probe, which only IEMF's coefficient reads, keeps its seeded
    initialisation and the deployed network loads unchanged. Any other mismatch raises UserError.
    """
    missing = [k for k in PROBE_KEYS if k not in state]
    current = model.state_dict()
    try:
        model.load_state_dict({**state, **{k: current[k] for k in missing}})
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{path} does not match its model config ({first}); re-train the run") from exc
    return not missing


def model_from_checkpoint(payload: dict[str, Any], path: Path | str = "checkpoint") -> IEMFNet:
    model = build_model(payload["run_config"].model)
    load_weights(model, payload["model"], path)
    model.quant_aware = payload["run_config"].train.quant_aware
    return model.float().eval()


def recorded_config(run_dir: str | Path) -> RunConfig | None:
    """The config a run directory's training continues (its last checkpoint's); None before its first epoch."""
    last = checkpoint_paths(run_dir)["last"]
    return load_checkpoint(last)["run_config"] if last.is_file() else None


@dataclass
class LoadedRun:
    run_dir: Path  # the run directory
    config: RunConfig  # what it was built and trained with
    model: IEMFNet  # best.pt weights, eval mode, float32, on CPU
    provenance: dict  # config.json's provenance record
    epoch: int  # the epoch best.pt was saved after (0-based)

    @property
    def model_config(self) -> ModelConfig:
        return self.config.model

    @property
    def train_config(self) -> TrainConfig:
        return self.config.train


def load_run(run_dir: str | Path) -> LoadedRun:
    """The trained model of a run directory (best on validation) with its configs and provenance."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise UserError(f"{run_dir} has no config.json; pass a run directory written by `iemf-neuro train`")
    try:
        record = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{config_path} is not valid JSON ({exc.msg}); re-train the run") from exc
    path = checkpoint_paths(run_dir)["best"]
    payload = load_checkpoint(path)
    return LoadedRun(run_dir=run_dir, config=payload["run_config"], model=model_from_checkpoint(payload, path),
                     provenance=record.get("provenance", {}), epoch=int(payload["epoch"]))
