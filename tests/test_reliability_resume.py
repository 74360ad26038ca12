"""Resumable training: `iemf-neuro train` SIGKILLed at random points (start-up, mid-epoch, mid-checkpoint)
and resumed with --resume each time ends with exactly the weights and metrics of an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from iemf_neuro.training.checkpoint import checkpoint_paths, load_checkpoint

EPOCHS = 10
KILLS = 6
SEED = 11
# Rate encoding + OGM-GE + IEMF: every generator (data order, encoding, gradient noise) takes part.
SETTINGS = ["dataset=synthetic", "synthetic_size=256", "batch_size=32", "model.encoding=rate", "model.time_steps=4"]
VOLATILE = {"wall_s", "epoch_s", "provenance"}  # timings and versions; everything else must match exactly


def train(out: Path, resume: bool) -> subprocess.Popen:
    argv = [sys.executable, "-m", "pipeline.cli", "train", "--config", "avdigits-mlp", "--method",
            "ogm-ge+iemf", "--epochs", str(EPOCHS), "--quiet", "--out", str(out)]
    argv += [a for s in SETTINGS for a in ("--set", s)] + (["--resume"] if resume else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    log = open(out.parent / f"{out.name}.log", "ab")
    return subprocess.Popen(argv, stdout=log, stderr=log, env=env)


def epochs_done(run: Path) -> int:
    path = run / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.is_file() else 0


def stable(record):
    if isinstance(record, dict):
        return {k: stable(v) for k, v in record.items() if k not in VOLATILE}
    if isinstance(record, list):
        return [stable(v) for v in record]
    return record


def outcome(run: Path) -> tuple[dict, dict, list, dict]:
    last = load_checkpoint(checkpoint_paths(run)["last"])
    best = load_checkpoint(checkpoint_paths(run)["best"])
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    test = json.loads((run / "test_metrics.json").read_text())
    return last, best, stable(metrics), stable(test)


@pytest.mark.slow
def test_sigkilled_training_resumes_to_identical_weights_and_metrics(tmp_path):
    full = tmp_path / "full"
    assert train(full, resume=False).wait(300) == 0
    rng = random.Random(SEED)
    # The first kill lands during start-up (before any checkpoint); the others once a random number of
    # epochs is done, plus a random fraction of the next epoch (which may fall inside a checkpoint write).
    targets = [0] + sorted(rng.sample(range(1, EPOCHS - 1), KILLS - 1))
    cut = tmp_path / "cut"
    kills, points = 0, []
    for target in targets:
        resume = checkpoint_paths(cut)["last"].exists()
        proc = train(cut, resume)
        while proc.poll() is None and epochs_done(cut) < target:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.5, 1.5) if target == 0 else rng.uniform(0.0, 0.4))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            points.append(epochs_done(cut))
    assert checkpoint_paths(cut)["last"].exists()
    assert train(cut, resume=True).wait(300) == 0
    print(f"{kills} SIGKILLs at epochs done {points}")
    assert kills >= 5

    a_last, a_best, a_metrics, a_test = outcome(full)
    b_last, b_best, b_metrics, b_test = outcome(cut)
    assert a_last["epoch"] == b_last["epoch"] == EPOCHS - 1
    for key in a_last["model"]:
        assert torch.equal(a_last["model"][key], b_last["model"][key]), key
    for key in a_best["model"]:
        assert torch.equal(a_best["model"][key], b_best["model"][key]), key
    assert a_best["epoch"] == b_best["epoch"]
    assert a_metrics == b_metrics
    assert a_test == b_test
