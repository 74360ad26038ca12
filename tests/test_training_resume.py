"""Run directories: resume equals uninterrupted training, NaN stops cleanly, checkpoints load safely."""

import json

import pytest
import torch

from iemf_neuro.errors import UserError
from iemf_neuro.training import trainer
from iemf_neuro.training.checkpoint import FORMAT, checkpoint_paths, load_checkpoint, load_run
from iemf_neuro.training.config import get_run_config

# Rate encoding + OGM-GE + IEMF: every generator (data order, encoding, gradient noise) takes part.
SETTINGS = ["dataset=synthetic", "synthetic_size=256", "batch_size=32", "model.encoding=rate",
            "model.time_steps=4"]


def _config(epochs=3):
    return get_run_config("avdigits-mlp", method="ogm-ge+iemf", epochs=epochs, overrides=SETTINGS)


def test_resumed_run_ends_bit_identical_to_uninterrupted(tmp_path, monkeypatch):
    full = trainer.train(tmp_path / "full", _config(), progress=False)

    original, calls = trainer.evaluate, []

    def interrupt_in_epoch_2(*args, **kwargs):  # validation of epochs 0 and 1 pass; epoch 2's is cut short
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "evaluate", interrupt_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(tmp_path / "cut", _config(), progress=False)
    monkeypatch.setattr(trainer, "evaluate", original)
    assert load_checkpoint(checkpoint_paths(tmp_path / "cut")["last"])["epoch"] == 1
    resumed = trainer.train(tmp_path / "cut", _config(), resume=True, progress=False)

    a = load_checkpoint(checkpoint_paths(tmp_path / "full")["last"])
    b = load_checkpoint(checkpoint_paths(tmp_path / "cut")["last"])
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert resumed.test == full.test
    assert [r["val_accuracy"] for r in resumed.history] == [r["val_accuracy"] for r in full.history]
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1, 2]


def test_run_directory_layout_and_load_run(tmp_path):
    result = trainer.train(tmp_path / "run", _config(epochs=2), progress=False)
    run = tmp_path / "run"
    for name in ("config.json", "metrics.jsonl", "test_metrics.json", "plots/training.png",
                 "plots/firing_rates.png", "checkpoints/best.pt", "checkpoints/last.pt"):
        assert (run / name).is_file(), name
    record = json.loads((run / "config.json").read_text())
    assert record["provenance"]["seed"] == 0 and "torch" in record["provenance"]["versions"]
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert {"val_accuracy", "val_audio_accuracy", "val_visual_accuracy", "train_loss", "train_iemf_coeff",
            "firing_rates"} <= set(row)
    assert set(row["firing_rates"]) == {"audio.0", "visual.0", "fusion", "output"}
    loaded = load_run(run)
    assert not loaded.model.training and loaded.epoch == result.best_epoch
    assert loaded.model_config.encoding == "rate" and loaded.train_config.method == "ogm-ge+iemf"
    best = load_checkpoint(checkpoint_paths(run)["best"])
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, best["model"][key])


def test_fresh_run_refuses_existing_dir_and_resume_needs_a_run(tmp_path):
    trainer.train(tmp_path / "run", _config(epochs=1), progress=False)
    with pytest.raises(UserError, match="--resume"):
        trainer.train(tmp_path / "run", _config(epochs=1), progress=False)
    with pytest.raises(UserError, match="nothing to resume"):
        trainer.train(tmp_path / "other", _config(epochs=1), resume=True, progress=False)
    changed = get_run_config("avdigits-mlp", method="plain", epochs=1, overrides=SETTINGS)
    with pytest.raises(UserError, match="train.method='ogm-ge\\+iemf'; resuming continues it"):
        trainer.train(tmp_path / "run", changed, resume=True, progress=False)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    trainer.train(run, _config(epochs=1), progress=False)
    before = load_checkpoint(checkpoint_paths(run)["last"])
    real = trainer.compute_loss
    monkeypatch.setattr(trainer, "compute_loss",
                        lambda out, labels, ls: tuple(x * float("nan") for x in real(out, labels, ls)))
    with pytest.raises(UserError, match="NaN"):
        trainer.train(run, _config(epochs=2), resume=True, progress=False)
    after = load_checkpoint(checkpoint_paths(run)["last"])
    assert after["epoch"] == 0
    for key in before["model"]:
        assert torch.equal(before["model"][key], after["model"][key])


def test_bad_checkpoints_raise_user_errors(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        load_run(tmp_path)
    run = tmp_path / "run"
    trainer.train(run, _config(epochs=1), progress=False)
    best = checkpoint_paths(run)["best"]
    payload = torch.load(best, weights_only=True)
    torch.save({**payload, "version": 99}, best)
    with pytest.raises(UserError, match="newer"):
        load_run(run)
    torch.save({"weights": torch.zeros(2)}, best)
    with pytest.raises(UserError, match="not an iemf-neuro checkpoint"):
        load_run(run)
    best.write_bytes(b"garbage")
    with pytest.raises(UserError, match="not a readable"):
        load_run(run)
    other = get_run_config("avdigits-mlp", overrides=["model.fusion_dim=32"]).to_dict()
    torch.save({**payload, "format": FORMAT, "run_config": json.dumps(other)}, best)
    with pytest.raises(UserError, match="does not match"):
        load_run(run)
