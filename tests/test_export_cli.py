"""`iemf-neuro export`: writes RUN_DIR/model.nir; bad input gives one line, exit 2 and no .nir file."""

import json

import nir
import numpy as np
import pytest
import torch

from converters.nir_semantics import graph_metadata
from pipeline.cli import main
from iemf_neuro.models import build_model, get_model_config
from iemf_neuro.training import RunConfig
from iemf_neuro.training.checkpoint import checkpoint_paths, save_checkpoint


def make_run(tmp_path, fusion="concat", poison=False):
    torch.manual_seed(0)
    cfg = get_model_config("avdigits-mlp", fusion=fusion)
    model = build_model(cfg)
    if poison:
        with torch.no_grad():
            model.output.synapse[0].weight[0, 0] = float("inf")
    run_dir = tmp_path / "run"
    save_checkpoint(checkpoint_paths(run_dir)["best"], model, RunConfig(cfg.name, cfg), epoch=3)
    (run_dir / "config.json").write_text(json.dumps({"provenance": {"git_revision": "test"}}))
    return run_dir, model


def fails(capsys, argv, pattern, run_dir):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and pattern in err, err
    assert not any(p.suffix == ".nir" or ".nir." in p.name for p in run_dir.rglob("*"))


def test_export_writes_model_nir(tmp_path, capsys):
    run_dir, model = make_run(tmp_path)
    assert main(["export", str(run_dir), "--fusion-gain", "audio=2,visual=0.5"]) == 0
    graph = nir.read(run_dir / "model.nir", type_check=True)
    meta = graph_metadata(graph)
    assert meta["run"]["epoch"] == 3 and meta["run"]["provenance"] == {"git_revision": "test"}
    assert meta["fusion"]["gains"] == {"audio": 2.0, "visual": 0.5}
    w = model.fusion.proj["visual"].weight.detach().numpy()
    np.testing.assert_array_equal(graph.nodes["fusion.visual"].weight, 0.5 * w)
    assert "wrote" in capsys.readouterr().out


def test_export_reliability_gains_to_custom_path(tmp_path, capsys):
    run_dir, _ = make_run(tmp_path)
    out = tmp_path / "deploy" / "noisy.nir"
    assert main(["export", str(run_dir), "--out", str(out), "--fusion-gain", "reliability", "--audio-snr-db", "0"]) == 0
    meta = graph_metadata(nir.read(out))
    cal = meta["fusion_calibration"]
    assert cal["rule"] == "reliability" and cal["condition"]["audio_snr_db"] == 0.0
    assert cal["gains"] == meta["fusion"]["gains"]
    for proj in meta["fusion"]["projections"].values():
        assert proj["gain"] == proj["mantissa"] * 2.0 ** proj["exponent"] == cal["gains"][proj["modality"]]
        assert proj["mantissa"] * 8 == int(proj["mantissa"] * 8)  # 3 fractional mantissa bits by default
    assert "reliability gains" in capsys.readouterr().out


def test_export_power_of_two_gains(tmp_path, capsys):
    run_dir, _ = make_run(tmp_path)
    assert main(["export", str(run_dir), "--fusion-gain", "power-of-two", "--image-occlusion", "0.5"]) == 0
    meta = graph_metadata(nir.read(run_dir / "model.nir"))
    cal = meta["fusion_calibration"]
    assert cal["rule"] == "power-of-two search" and 0.0 <= cal["accuracy"] <= 1.0
    assert all(p["mantissa"] == 1.0 for p in meta["fusion"]["projections"].values())
    assert "validation accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("gains, pattern", [("audio=0", "> 0"), ("visual=-1", "> 0"), ("audio=abc", "not a number"),
                                             ("audio", "MODALITY=GAIN"), ("speech=1", "unknown modality")])
def test_bad_gains(tmp_path, capsys, gains, pattern):
    run_dir, _ = make_run(tmp_path)
    fails(capsys, ["export", str(run_dir), "--fusion-gain", gains], pattern, run_dir)


def test_not_a_run_and_foreign_checkpoint(tmp_path, capsys):
    fails(capsys, ["export", str(tmp_path)], "config.json", tmp_path)
    run_dir, _ = make_run(tmp_path)
    torch.save({"state_dict": {}}, checkpoint_paths(run_dir)["best"])
    fails(capsys, ["export", str(run_dir)], "not an iemf-neuro checkpoint", run_dir)


def test_unexportable_models(tmp_path, capsys):
    run_dir, _ = make_run(tmp_path, fusion="gated")
    fails(capsys, ["export", str(run_dir)], "concat or sum", run_dir)
    run_dir, _ = make_run(tmp_path / "b", poison=True)
    fails(capsys, ["export", str(run_dir)], "NaN/inf", run_dir)


def test_condition_without_calibration_is_refused(tmp_path, capsys):
    run_dir, _ = make_run(tmp_path)
    fails(capsys, ["export", str(run_dir), "--audio-snr-db", "0"], "--fusion-gain reliability", run_dir)
