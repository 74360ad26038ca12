"""`iemf-neuro train` / `evaluate` end to end, and the inverse-effectiveness sweep."""

import json

import pytest

from pipeline.cli import main
from iemf_neuro.training.evaluate import linear_fit

QUICK = ["--set", "batch_size=64", "--set", "max_batches=3", "--set", "model.time_steps=4", "--quiet"]


def test_train_then_evaluate_and_resume(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--epochs", "1", "--method", "aux-heads", *QUICK]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert main(["train", "--out", str(run), "--epochs", "2", "--resume", "--quiet"]) == 0
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    assert main(["evaluate", str(run)]) == 0
    record = json.loads((run / "eval_test.json").read_text())
    assert record["n"] == 300 and 0 <= record["accuracy"] <= 1 and "provenance" in record

    assert main(["evaluate", str(run), "--sweep", "--audio-snrs", "clean", "20", "--image-noise", "0", "1"]) == 0
    sweep = json.loads((run / "sweep_test.json").read_text())
    assert [(c["audio_snr_db"], c["image_noise_std"]) for c in sweep["cells"]] == [
        (None, 0.0), (None, 1.0), (20.0, 0.0), (20.0, 1.0)]
    for c in sweep["cells"]:
        assert c["best_unimodal_accuracy"] == max(c["audio_accuracy"], c["visual_accuracy"])
        assert c["multisensory_gain"] == pytest.approx(c["accuracy"] - c["best_unimodal_accuracy"])
    clean, noisy_image = sweep["cells"][0], sweep["cells"][1]
    assert noisy_image["visual_accuracy"] < clean["visual_accuracy"]
    assert (run / "plots" / "inverse_effectiveness_test.png").is_file()


def test_resume_continues_the_recorded_config_and_refuses_changes_by_key(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--epochs", "1", "--method", "aux-heads", *QUICK]) == 0
    refused = {("--seed", "3"): "train.seed=0", ("--set", "lr=0.5"): "train.lr=", ("--method", "iemf"): "train.method",
               ("--set", "model.time_steps=8"): "model.time_steps=4", ("--config", "avdigits-cnn"): "avdigits-cnn"}
    capsys.readouterr()
    for option, key in refused.items():
        assert main(["train", "--out", str(run), "--resume", "--quiet", *option]) == 2, option
        err = capsys.readouterr().err
        assert key in err and len(err.strip().splitlines()) == 1, err
    assert main(["train", "--out", str(run), "--resume", "--quiet", "--method", "aux-heads", *QUICK]) == 0
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2", "--quiet"]) == 0
    record = json.loads((run / "config.json").read_text())
    assert record["train"]["epochs"] == 2 and record["epoch_changes"] == [{"after_epoch": 1, "from": 1, "to": 2}]
    assert main(["train", "--out", str(run), "--resume", "--epochs", "1", "--quiet"]) == 2
    assert "below the 2 epochs already trained" in capsys.readouterr().err


def test_cli_errors_exit_2(tmp_path, capsys):
    assert main(["train", "--config", "nope", "--out", str(tmp_path / "x")]) == 2
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "no config.json" in capsys.readouterr().err
    synthetic = tmp_path / "syn"
    assert main(["train", "--out", str(synthetic), "--epochs", "1", "--set", "dataset=synthetic", *QUICK]) == 0
    assert main(["evaluate", str(synthetic), "--sweep"]) == 2
    assert "without --sweep" in capsys.readouterr().err


def test_later_stages_use_the_dataset_the_run_was_trained_on(tmp_path, capsys):
    """A run trained on the synthetic set is exported, evaluated and counted on that set, not on AV-Digits."""
    run = tmp_path / "syn"
    assert main(["train", "--out", str(run), "--epochs", "1", "--set", "dataset=synthetic",
                 "--set", "synthetic_size=64", *QUICK]) == 0
    assert main(["export", str(run)]) == 0 and main(["evaluate", str(run)]) == 0
    assert json.loads((run / "eval_test.json").read_text())["n"] == 16
    capsys.readouterr()
    assert main(["energy", str(run), "--target", "loihi2"]) == 0, capsys.readouterr().err
    energy = json.loads((run / "energy.json").read_text())
    assert "run's test split" in capsys.readouterr().out and energy["samples"] == 16


def test_linear_fit_on_hand_made_points():
    fit = linear_fit([0.2, 0.5, 0.8], [0.3, 0.15, 0.0])
    assert fit["slope"] == pytest.approx(-0.5) and fit["intercept"] == pytest.approx(0.4)
    assert fit["pearson_r"] == pytest.approx(-1.0)
