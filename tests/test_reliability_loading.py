"""Safe loading: a checkpoint that carries pickled code is refused, and the code never runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from cases import assert_one_line_error, run_cli

from iemf_neuro.errors import UserError
from iemf_neuro.training.checkpoint import FORMAT, VERSION, load_checkpoint, load_run
from iemf_neuro.training.config import get_run_config


class Payload:
    """Unpickling this calls os.system: the classic malicious-pickle shape."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def malicious_run(root: Path, checkpoint: str = "best") -> tuple[Path, Path]:
    """A run directory whose checkpoint looks genuine but carries a payload next to real tensors."""
    run = root / "run"
    (run / "checkpoints").mkdir(parents=True)
    config = get_run_config("avdigits-mlp")
    (run / "config.json").write_text(json.dumps(config.to_dict()))
    marker = root / "pwned"
    torch.save({"format": FORMAT, "version": VERSION, "run_config": json.dumps(config.to_dict()), "epoch": 0,
                "model": {"w": torch.zeros(3)}, "note": Payload(marker)}, run / "checkpoints" / f"{checkpoint}.pt")
    return run, marker


def test_the_payload_is_live(tmp_path):
    """The control: unpickled without weights_only, the payload does run (so the refusal below matters)."""
    run, marker = malicious_run(tmp_path)
    torch.load(run / "checkpoints" / "best.pt", weights_only=False)
    assert marker.exists()


def test_load_run_refuses_pickled_code(tmp_path):
    run, marker = malicious_run(tmp_path)
    with pytest.raises(UserError, match="not a readable iemf-neuro checkpoint") as info:
        load_run(run)
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_export_cli_refuses_pickled_code(tmp_path):
    run, marker = malicious_run(tmp_path)
    assert_one_line_error(*run_cli(["export", str(run)]))
    assert not marker.exists() and not (run / "model.nir").exists()


def test_resume_refuses_pickled_last_checkpoint(tmp_path):
    run, marker = malicious_run(tmp_path, "last")
    with pytest.raises(UserError):
        load_checkpoint(run / "checkpoints" / "last.pt")
    assert_one_line_error(*run_cli(["train", "--out", str(run), "--resume", "--quiet"]))
    assert not marker.exists()


def test_report_html_escapes_run_and_target_names(tmp_path):
    """Run directory names (the report's labels) and target-file names and titles reach the HTML escaped."""
    import nir
    import numpy as np
    from cases import small_graph, small_inputs

    runs = []
    for name in ("<svg onload=alert(1)>", "<script>alert(2)"):
        run = tmp_path / name
        run.mkdir()
        nir.write(run / "model.nir", small_graph())
        rng = np.random.default_rng(len(runs))
        inputs = small_inputs(samples=3)
        spikes = {k: (rng.random((3, 4, *shape)) < 0.3).astype(np.uint8)
                  for k, shape in (("visual.0", (2, 4, 4)), ("fusion", (5,)), ("output", (3,)))}
        np.savez(run / "sim_float.npz", **inputs, **spikes)
        runs.append(run)
    target = tmp_path / "evil.toml"
    target.write_text('base = "loihi2"\nname = "<script>alert(3)</script>"\ntitle = "<svg/onload=alert(4)>"\n')
    code, stderr = run_cli(["energy", str(runs[0]), "--compare", str(runs[1]), "--target-file", str(target)])
    assert code == 0, stderr
    page = (runs[0] / "report.html").read_text()
    assert "<script" not in page.lower() and "<svg" not in page.lower()
    assert "&lt;svg onload=alert(1)&gt;" in page and "&lt;script&gt;alert(3)&lt;/script&gt;" in page


@pytest.mark.parametrize("text", ['{"name": ', "[1, 2]", '"just a string"', "{}", "\x00\xff"])
def test_resume_with_a_damaged_config_json_is_a_user_error(tmp_path, text):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(text)
    assert_one_line_error(*run_cli(["train", "--out", str(run), "--resume", "--quiet"]))
