"""`train-and-convert`: the same config and seed give a byte-identical summary.json; a re-run of a finished
run directory skips every stage; a run SIGKILLed at random points and re-run ends with the same bytes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SEED = 5
KILLS = 3
ARGS = ["--epochs", "2", "--set", "max_batches=3", "--set", "model.time_steps=4", "--limit", "8",
        "--target", "loihi2", "--quiet", "--timeout", "120"]
STAGES = ("train", "export", "lava-float", "lava-fixed", "energy")


def pipeline(out: Path, extra: list[str] = ()) -> subprocess.Popen:
    argv = [sys.executable, "-m", "pipeline.cli", "train-and-convert", "--out", str(out), *ARGS, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def finish(proc: subprocess.Popen) -> str:
    text = proc.communicate(timeout=400)[0].decode()
    assert proc.returncode == 0, text
    return text


@pytest.mark.slow
def test_pipeline_is_deterministic_resumable_and_skips_finished_stages(tmp_path):
    tic = time.monotonic()
    finish(pipeline(tmp_path / "a"))
    wall = time.monotonic() - tic
    summary = (tmp_path / "a" / "summary.json").read_bytes()
    stages = (tmp_path / "a" / "stages.json").read_bytes()

    again = finish(pipeline(tmp_path / "a"))
    assert all(f"[{s}] up to date, skipped" in again for s in STAGES), again
    assert (tmp_path / "a" / "stages.json").read_bytes() == stages
    assert (tmp_path / "a" / "summary.json").read_bytes() == summary

    rng = random.Random(SEED)
    for _ in range(KILLS):
        proc = pipeline(tmp_path / "b")
        time.sleep(rng.uniform(0.1, 0.9) * wall)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    finish(pipeline(tmp_path / "b"))
    assert (tmp_path / "b" / "summary.json").read_bytes() == summary

    changed = pipeline(tmp_path / "a", ["--seed", "6"])
    text = changed.communicate(timeout=400)[0].decode()
    assert changed.returncode == 2 and "train.seed=0" in text and "resuming continues it" in text, text
    stale = finish(pipeline(tmp_path / "a", ["--limit", "4"]))
    assert "[train] up to date, skipped" in stale and "[export] up to date, skipped" in stale
    assert "[lava-float] running" in stale and "[energy] running" in stale
