"""The trained run a benchmark measures when it is given none: seeded, trained once under runs/, then reused.

A benchmark must rerun from a fresh clone with no arguments, so it cannot assume a developer's run directory.
An interrupted training resumes from its last checkpoint on the next call.
"""

from __future__ import annotations

from pathlib import Path

RUNS = Path(__file__).resolve().parents[2] / "runs"


def trained_run(config_name: str = "avdigits-mlp", seed: int = 0) -> Path:
    """RUN_DIR of ``config_name`` trained with its defaults and ``seed``; says where it came from."""
    from iemf_neuro.training.checkpoint import checkpoint_paths
    from iemf_neuro.training.config import get_run_config
    from iemf_neuro.training.trainer import train

    run_dir = RUNS / f"bench-{config_name}-s{seed}"
    if (run_dir / "test_metrics.json").is_file():
        print(f"inputs: {run_dir} ({config_name}, seed {seed}, trained by an earlier benchmark run)", flush=True)
        return run_dir
    resume = checkpoint_paths(run_dir)["last"].is_file()
    print(f"inputs: {'resuming' if resume else 'training'} {config_name} seed {seed} into {run_dir} "
          "(no run given; cached for later benchmark runs)", flush=True)
    train(run_dir, get_run_config(config_name, seed=seed), resume=resume)
    return run_dir
