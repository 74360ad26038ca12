"""Deployed fusion gains through the pipeline: Lava and its snnTorch reference run the gains the graph folded,
the report names them, and train-and-convert refuses options it cannot honour before it trains."""

import json

import numpy as np
import pytest
import torch

from hardware_targets.report import fusion_note
from iemf_neuro.data import load_split
from iemf_neuro.errors import UserError
from iemf_neuro.models import build_model, get_model_config
from iemf_neuro.training import RunConfig
from iemf_neuro.training.checkpoint import checkpoint_paths, save_checkpoint
from iemf_neuro.training.data import load_dataset
from pipeline.end_to_end import DYNAMIC_GATE, PipelineOptions, gate_changes, train_and_convert
from pipeline.export import export_for_condition, export_run
from pipeline.simulate import SimulationRequest, simulate_run
from pipeline.train import ConfigChanges


def make_run(tmp_path):
    torch.manual_seed(0)
    cfg = get_model_config("avdigits-mlp", time_steps=4)
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    run_dir = tmp_path / "run"
    save_checkpoint(checkpoint_paths(run_dir)["best"], model, RunConfig(cfg.name, cfg), epoch=1)
    (run_dir / "config.json").write_text(json.dumps({"provenance": {"git_revision": "test"}}))
    return run_dir


def test_lava_and_its_reference_run_the_folded_gains(tmp_path):
    run_dir = make_run(tmp_path)
    request = SimulationRequest("float", "test", limit=6, timeout_s=120)
    export_run(run_dir)
    simulate_run(run_dir, request, progress=False)
    unity_fusion = np.load(run_dir / "sim_float.npz")["fusion"].sum()
    export_run(run_dir, gains={"audio": 4.0, "visual": 0.25})
    summary = simulate_run(run_dir, request, progress=False)
    assert sum(summary["mismatches"].values()) == 0, summary["mismatches"]
    assert np.load(run_dir / "sim_float.npz")["fusion"].sum() != unity_fusion  # the gains changed the network
    assert "audio 4, visual 0.25" in fusion_note(run_dir)


def test_report_names_the_rule_and_the_condition(tmp_path):
    run_dir = make_run(tmp_path)
    assert fusion_note(run_dir) is None  # no model.nir yet
    _, chosen = export_for_condition(run_dir, None, "reliability", {"audio_snr_db": 0.0, "image_noise_std": 0.5})
    note = fusion_note(run_dir)
    assert f"audio {chosen.gains['audio']:g}, visual {chosen.gains['visual']:g}" in note
    assert "reliability rule" in note and "audio 0 dB SNR, image noise 0.5" in note and "no on-chip gate" in note
    export_run(run_dir)
    assert "unity: no static weighting" in fusion_note(run_dir)


@pytest.mark.parametrize("options, pattern", [
    (PipelineOptions(fusion_gain="inverse"), "unknown --fusion-gain"),
    (PipelineOptions(fusion_gain="reliability", qat_epochs=2), "drop --qat-epochs"),
    (PipelineOptions(condition={"audio_snr_db": float("nan")}), "finite"),
    (PipelineOptions(condition={"image_occlusion": 2.0}), "fraction"),
    (PipelineOptions(condition={"audio_snr_dB": 0.0}), "unknown deployment condition keys"),
    (PipelineOptions(condition={"audio_noise": "pink"}), "unknown deployment condition keys"),
])
def test_train_and_convert_refuses_before_training(tmp_path, options, pattern):
    with pytest.raises(UserError, match=pattern):
        train_and_convert(tmp_path / "out", ConfigChanges(), options, log=lambda _: None)
    assert not (tmp_path / "out").exists()


def test_gains_are_never_chosen_on_test(tmp_path):
    run_dir = make_run(tmp_path)
    with pytest.raises(UserError, match="never on test"):
        export_for_condition(run_dir, None, "power-of-two", {}, split="test")


def test_dynamic_trains_the_gate_keeping_a_chosen_kind():
    assert gate_changes(ConfigChanges(), "dynamic").overrides == (DYNAMIC_GATE,)
    relative = ConfigChanges(overrides=("model.gate=relative",))
    assert gate_changes(relative, "dynamic") == relative and gate_changes(relative, "unity") == relative
    with pytest.raises(UserError, match="model.gate=none"):
        gate_changes(ConfigChanges(overrides=("model.gate=none",)), "dynamic")


def test_gains_are_chosen_on_clean_or_degraded_data_as_asked():
    config = RunConfig("avdigits-mlp", get_model_config("avdigits-mlp"))
    clean, as_trained = load_dataset(config, "train", corruption={}), load_dataset(config, "train")
    assert torch.equal(clean.audio, load_split("train").audio)  # {} is clean, even for the training split
    assert not torch.equal(as_trained.audio, clean.audio)  # no corruption asked: the split training sees
    assert (as_trained.audio.flatten(1).amax(1) == 0).any()  # modality dropout among them
