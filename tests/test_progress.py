"""Progress in a log: one line per finished stage, never carriage-return frames."""

import subprocess
import sys

from iemf_neuro.progress import progress


def test_a_stage_prints_one_line_when_it_ends_outside_a_terminal(capsys):
    assert list(progress(range(3), desc="reading", unit="wav")) == [0, 1, 2]
    with progress(total=5, desc="epoch 1/2", unit="batch") as bar:
        bar.update(2)
        bar.set_postfix(loss="0.5")
        bar.update(3)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and len(lines) == 2
    assert lines[0].startswith("reading: 3/3 wav in ") and lines[1].startswith("epoch 1/2: 5/5 batch in ")
    assert lines[1].endswith("(loss=0.5)")


def test_disabled_or_summary_free_stages_print_nothing(capsys):
    for options in ({"enabled": False}, {"summary": False}):
        bar = progress(total=2, desc="quiet", **options)
        bar.update(2)
        bar.close()
        bar.close()
    assert capsys.readouterr().err == ""


def test_training_log_has_one_line_per_epoch_and_no_bar_frames(tmp_path):
    """A real `train` with its output piped, as in CI: epoch lines only."""
    cmd = [sys.executable, "-m", "pipeline.cli", "train", "--out", str(tmp_path / "run"), "--epochs", "2",
           "--set", "max_batches=2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "\r" not in proc.stdout + proc.stderr
    assert [line.split(":")[0] for line in proc.stdout.splitlines() if line.startswith("epoch")] == \
        ["epoch 1/2", "epoch 2/2"]
