"""The trained run a benchmark measures when it is given none: seeded, trained once under runs/, then reused.

A benchmark must rerun from a fresh clone with no arguments, so it cannot assume a developer's run directory.
An interrupted training resumes from its last checkpoint on the next call; a run whose recorded config differs
from the one asked for is trained again. The code is not compared (a training is only bit-for-bit repeatable
with the same code): the message names the git revision a reused run was trained at.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

RUNS = Path(__file__).resolve().parents[2] / "runs"


def cached_training(run_dir: Path, config, what: str) -> Path:
    """Train ``config`` into ``run_dir`` unless an earlier call finished it (resume a partial one); say which."""
    from iemf_neuro.training.checkpoint import checkpoint_paths, recorded_config
    from iemf_neuro.training.trainer import train

    recorded = recorded_config(run_dir)
    if recorded is not None and recorded.to_dict() != config.to_dict():
        print(f"inputs: {run_dir} was trained with another config; training it again", flush=True)
        shutil.rmtree(run_dir)
    if (run_dir / "test_metrics.json").is_file():
        revision = json.loads((run_dir / "config.json").read_text())["provenance"]["git_revision"]
        print(f"inputs: {run_dir} ({what}, trained by an earlier benchmark run at revision {revision})", flush=True)
        return run_dir
    resume = checkpoint_paths(run_dir)["last"].is_file()
    print(f"inputs: {'resuming' if resume else 'training'} {what} into {run_dir} (cached for later benchmark runs)",
          flush=True)
    train(run_dir, config, resume=resume)
    return run_dir


def trained_run(config_name: str = "avdigits-mlp", seed: int = 0, overrides: tuple[str, ...] = ()) -> Path:
    """RUN_DIR of ``config_name`` trained with its defaults, ``seed`` and ``--set`` ``overrides`` (named in the
    directory: ``model.gate=full`` -> bench-avdigits-mlp-gate-full-s0)."""
    from iemf_neuro.training.config import get_run_config

    tag = "".join("-" + re.sub(r"[^A-Za-z0-9.]+", "-", o.partition("=")[0].rpartition(".")[2] + "="
                                + o.partition("=")[2]).strip("-") for o in overrides)
    return cached_training(RUNS / f"bench-{config_name}{tag}-s{seed}",
                           get_run_config(config_name, seed=seed, overrides=list(overrides)),
                           f"{config_name}{' ' + ', '.join(overrides) if overrides else ''}, seed {seed}")


def quant_aware_run(config_name: str = "avdigits-mlp", seed: int = 0, epochs: int | None = None) -> Path:
    """RUN_DIR of ``trained_run(config_name, seed)`` fine-tuned ``epochs`` (default ``QAT_EPOCHS``) epochs
    through its fixed-point forward (``quant_aware_config``), cached beside it like the float run; the name
    carries a hash of the recipe (every training key but the checkpoint and the seed), so a changed recipe
    retrains."""
    from dataclasses import asdict

    from iemf_neuro.provenance import config_hash
    from iemf_neuro.training.checkpoint import checkpoint_paths
    from iemf_neuro.training.config import QAT_EPOCHS, get_run_config, quant_aware_config

    epochs = QAT_EPOCHS if epochs is None else epochs
    parent = trained_run(config_name, seed)
    config = quant_aware_config(get_run_config(config_name, seed=seed), checkpoint_paths(parent)["best"], epochs)
    recipe = config_hash({k: v for k, v in asdict(config.train).items() if k not in ("init_from", "seed")})[:8]
    return cached_training(RUNS / f"bench-{config_name}-s{seed}-qat{epochs}-{recipe}", config,
                           f"{parent.name} fine-tuned in fixed point for {epochs} epochs")
