"""Train a run directory: start from a named config, or continue the recorded one."""

from __future__ import annotations

from pathlib import Path

from iemf_neuro.errors import UserError
from iemf_neuro.training.checkpoint import recorded_config
from iemf_neuro.training.config import ConfigChanges, RunConfig, get_run_config
from iemf_neuro.training.trainer import TrainResult, train

DEFAULT_CONFIG = "avdigits-mlp"


def requested_config(run_dir: Path, changes: ConfigChanges, resume: bool | None) -> tuple[RunConfig, bool]:
    """The config to train and whether it continues the recorded run. ``resume``: True must continue, False must
    start fresh, None continues when there is something to continue (train-and-convert). On a resume the
    changes apply to the recorded config, and ``continue_config`` refuses any that would alter its results."""
    recorded = recorded_config(run_dir)
    if recorded is None:
        if resume:
            raise UserError(f"nothing to resume in {run_dir} (no checkpoints/last.pt); drop --resume to start it")
        return new_config(changes), False
    if resume is False:
        raise UserError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    requested = changes.apply(recorded)
    if changes.name is not None:  # any other name than the recorded one is refused by continue_config
        requested = RunConfig(changes.name, requested.model, requested.train)
    return requested, True


def train_run(run_dir: str | Path, changes: ConfigChanges, resume: bool | None = False, device: str = "cpu",
              progress: bool = True) -> TrainResult:
    """Train ``run_dir`` (checkpoints, metrics, plots, test_metrics.json; see docs/architecture.md)."""
    run_dir = Path(run_dir)
    config, resuming = requested_config(run_dir, changes, resume)
    return train(run_dir, config, resume=resuming, device=device, progress=progress)


def new_config(changes: ConfigChanges) -> RunConfig:
    """The config of a new run: the named one (default avdigits-mlp) with the changes applied."""
    return get_run_config(changes.name or DEFAULT_CONFIG, changes.method, changes.epochs, changes.seed,
                          list(changes.overrides))


def default_run_dir(changes: ConfigChanges) -> Path:
    """runs/CONFIG-METHOD-sSEED of a new run with these changes."""
    config = new_config(changes)
    return Path("runs") / f"{config.name}-{config.train.method}-s{config.train.seed}"
