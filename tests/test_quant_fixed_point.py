"""Loihi fixed point: the quantisation-aware forward and the plan's integers equal Lava's fixed_pt models spike for
spike; calibration clips outlier weights when that agrees better with float; QAT trains, records and refuses, and
distils from the frozen float network it starts from."""

from __future__ import annotations

import json
from dataclasses import replace

import nir
import numpy as np
import pytest
import torch

from converters.model_to_nir import export_model
from converters.nir_to_lava import plan_graph
from converters.quantize import Calibration, quantize_plan, simulate_fixed
from hardware_targets.lava_sim import simulate_graph
from pipeline.cli import main
from iemf_neuro.errors import UserError
from iemf_neuro.models import BranchConfig, build_model, encode_inputs, get_model_config
from iemf_neuro.models.fixed_point import FixedPointSpec, network_spec
from iemf_neuro.models.reference import fixed_point_reference
from iemf_neuro.training import trainer
from iemf_neuro.training.checkpoint import (checkpoint_paths, load_checkpoint, load_run, model_from_checkpoint,
                                            save_checkpoint)
from iemf_neuro.training.config import QAT_DISTILL_WEIGHT, get_run_config, quant_aware_config

QUICK = ["--set", "dataset=synthetic", "--set", "synthetic_size=64", "--set", "batch_size=32", "--set",
         "model.time_steps=4", "--quiet"]


def small_net(seed: int = 0):
    """A small cnn (audio) + mlp (visual) net whose layers all spike, with a non-power-of-two fusion gain."""
    torch.manual_seed(seed)
    cfg = get_model_config("avdigits-cnn", audio=BranchConfig("cnn", (1, 8, 8), (4, 6)),
                           visual=BranchConfig("mlp", (16,), (12,)), fusion_dim=16, time_steps=5)
    net = build_model(cfg).eval()
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() > 1:
                p.mul_(3.0)
        net.fusion.gain.copy_(torch.tensor([1.3, 0.7]))
    net.quant_aware = True
    gen = torch.Generator().manual_seed(seed)
    x_a, x_v = encode_inputs(cfg, torch.rand(6, 64, generator=gen), torch.rand(6, 16, generator=gen))
    return cfg, net, x_a, x_v


def batch_major(x_a, x_v):
    return {"audio": x_a.transpose(0, 1).double().numpy(), "visual": x_v.transpose(0, 1).double().numpy()}


def test_quant_aware_forward_equals_lava_fixed_point_spike_for_spike():
    cfg, net, x_a, x_v = small_net()
    forward = {k: v.transpose(0, 1).numpy() for k, v in fixed_point_reference(net, x_a, x_v).items()}
    graph = export_model(net, cfg)
    assert FixedPointSpec.from_dict(json.loads(graph.metadata["iemf_neuro"])["fixed_point"]) == network_spec(net)
    inputs = batch_major(x_a, x_v)
    run = simulate_graph(graph, inputs, "fixed", progress=False)
    plan = plan_graph(graph)
    quant = quantize_plan(plan, inputs)
    assert quant.method == "trained"
    ours = simulate_fixed(plan, quant, inputs)
    for layer, spikes in forward.items():
        assert spikes.sum() > 0, f"{layer} never spikes: the comparison would be vacuous"
        np.testing.assert_array_equal(run.spikes[layer], spikes.astype(np.uint8), err_msg=layer)
        np.testing.assert_array_equal(ours[layer], spikes, err_msg=layer)


def outlier_graph(rng):
    """input -> LIF (one outlier weight) -> LIF -> LI: the range exponent spends 3 bits on the outlier."""
    w1 = rng.normal(0, 0.15, (24, 16))
    w1[0, 0] = 4.0
    lif = lambda n: nir.LIF(tau=np.full(n, 8.0), r=np.full(n, 8.0), v_leak=np.zeros(n),  # noqa: E731
                            v_threshold=np.ones(n), v_reset=np.zeros(n))
    return nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([16])}),
        "w1": nir.Affine(weight=w1, bias=rng.normal(0, 0.05, 24)), "l1": lif(24),
        "w2": nir.Linear(weight=rng.normal(0, 0.4, (12, 24))), "l2": lif(12),
        "w3": nir.Linear(weight=rng.normal(0, 0.4, (3, 12))),
        "li": nir.LI(tau=np.full(3, 2.0), r=np.full(3, 2.0), v_leak=np.zeros(3)),
        "out": nir.Output(output_type={"output": np.array([3])}),
    }, edges=[("in", "w1"), ("w1", "l1"), ("l1", "w2"), ("w2", "l2"), ("l2", "w3"), ("w3", "li"), ("li", "out")],
        metadata={"dt": 1.0})


def test_calibration_clips_outliers_and_the_plan_integers_equal_lava():
    rng = np.random.default_rng(4)
    graph = outlier_graph(rng)
    inputs = {"in": rng.uniform(0, 1, (6, 10, 16))}
    calibration = {"in": rng.uniform(0, 1, (32, 10, 16))}
    plan = plan_graph(graph)
    by_range = quantize_plan(plan, inputs, Calibration.from_graph(graph, calibration))
    assert by_range.method == "calibrated"
    range_exp = quantize_plan(plan, inputs).projections[0].weight_exp
    first = by_range.projections[0]
    assert first.weight_exp < range_exp and first.clipped > 0, "calibration kept the outlier's exponent"
    plain = quantize_plan(plan, calibration)
    ref = Calibration.from_graph(graph, calibration).spikes["l1"]
    agree_range = np.mean(simulate_fixed(plan, plain, calibration)["l1"] == ref)
    assert by_range.layers["l1"].spike_agreement > agree_range
    ours = simulate_fixed(plan, by_range, inputs)
    run = simulate_graph(graph, inputs, "fixed", progress=False, calibration=calibration)
    for layer in ("l1", "l2"):
        assert ours[layer].sum() > 0
        np.testing.assert_array_equal(run.spikes[layer], ours[layer].astype(np.uint8), err_msg=layer)
    scale = 64 * run.quantization["li"]["lam"]
    np.testing.assert_array_equal(run.voltages["li"] * scale, ours["li"])


def test_straight_through_gradients_reach_every_weight():
    cfg, net, x_a, x_v = small_net(1)
    net.train()
    out = net(x_a, x_v)
    (out.counts.sum() + sum(v.sum() for v in out.aux_logits.values())).backward()
    for name, p in net.named_parameters():
        if name.startswith(("branches", "fusion.proj", "output")) and p.dim() > 1:
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_quant_aware_training_is_recorded_and_fine_tunes(tmp_path, capsys):
    float_run, qat_run = tmp_path / "float", tmp_path / "qat"
    assert main(["train", "--out", str(float_run), "--epochs", "1", *QUICK]) == 0
    best = float_run / "checkpoints" / "best.pt"
    assert main(["train", "--out", str(qat_run), "--epochs", "1", "--set", "quant_aware=true",
                 "--set", f"init_from={best}", *QUICK]) == 0
    assert json.loads((qat_run / "config.json").read_text())["train"]["quant_aware"] is True
    run = load_run(qat_run)
    assert run.model.quant_aware
    start = load_run(float_run).model.state_dict()
    moved = [k for k, v in run.model.state_dict().items() if not torch.equal(v, start[k])]
    assert moved, "fine-tuning did not change any weight"
    assert main(["train", "--config", "avdigits-cnn", "--out", str(tmp_path / "cnn"), "--epochs", "1",
                 "--set", "quant_aware=true", "--set", f"init_from={best}", *QUICK]) == 2
    assert "not this run's" in capsys.readouterr().err


@pytest.mark.parametrize("overrides, message", [
    (["model.fusion=\"film\""], "concat fusion"),
    (["model.neuron.kind=\"cuba\""], "'lif' neurons"),
    (["init_from=\"/nonexistent/best.pt\""], "does not exist"),
    (["model.encoding=\"rate\""], "direct-encoded"),
    (["bf16=true"], "bf16 autocast would round"),
    (["distill_weight=-0.5", "init_from=\"x.pt\""], "distill_weight=-0.5 must be >= 0"),
    (["distill_weight=1"], "distils from the network init_from loads"),
])
def test_quant_aware_refuses_what_fixed_point_cannot_run(tmp_path, capsys, overrides, message):
    args = ["train", "--out", str(tmp_path / "x"), "--epochs", "1", "--set", "quant_aware=true", *QUICK]
    for item in overrides:
        args += ["--set", item]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_pipeline_runs_both_fixed_point_networks_and_deploys_validations_choice(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train-and-convert", "--out", str(out), "--epochs", "2", "--set", "max_batches=3",
            "--set", "model.time_steps=4", "--limit", "8", "--target", "loihi2", "--quiet", "--timeout", "120"]
    assert main([*args, "--qat-epochs", "1"]) == 0
    choice = json.loads((out / "fixed_choice.json").read_text())
    scores = {k: (c["agreement"], c["accuracy"]) for k, c in choice["candidates"].items()}
    assert choice["split"] == "val" and choice["samples"] > 8  # the whole validation split, not the test limit
    assert choice["chosen"] == ("quantisation-aware" if scores["quantisation-aware"] > scores["calibrated"]
                                else "calibrated")
    fixed = json.loads((out / "summary.json").read_text())["fixed_point"]
    assert fixed["path"] == choice["chosen"] and fixed["choice"] == choice
    deployed = json.loads((out / choice["deployed"] / "sim_fixed.json").read_text())
    assert fixed["accuracy_fixed"] == deployed["accuracy"]["lava"]
    assert fixed["drop_points"] == pytest.approx(100 * (fixed["accuracy_float"] - fixed["accuracy_fixed"]))
    qat = json.loads((out / "qat" / "sim_fixed.json").read_text())  # both candidates ran in Lava on test
    assert qat["reference"] == "fixed-point forward" and sum(qat["mismatches"].values()) == 0
    assert sum(qat["spike_counts"]["lava"].values()) > 0
    assert json.loads((out / "sim_fixed.json").read_text())["reference"] == "snnTorch float64"
    assert (out / "qat" / "model.nir").is_file()  # the fine-tuned network is written, not only run
    assert json.loads((out / "qat" / "config.json").read_text())["train"]["quant_aware"] is True
    assert json.loads((out / "energy.json").read_text())["accuracy"]["Lava fixed point"] == fixed["accuracy_fixed"]
    assert main(["simulate", str(out), "--precision", "fixed", "--split", "val", "--limit", "4", "--no-progress"]) == 0
    assert json.loads((out / "sim_fixed_val.json").read_text())["split"] == "val"  # beside the test results
    assert json.loads((out / "sim_fixed.json").read_text())["split"] == "test"
    capsys.readouterr()
    assert main([*args, "--qat-epochs", "1"]) == 0
    assert "[qat] up to date, skipped" in capsys.readouterr().out
    assert main(args) == 0  # without fine-tuning: the calibrated network, and no stale choice left behind
    assert not (out / "fixed_choice.json").is_file()
    fixed = json.loads((out / "summary.json").read_text())["fixed_point"]
    assert fixed["path"] == "calibrated" and fixed["choice"] is None


def test_a_quant_aware_network_exports_only_with_the_gains_it_was_trained_with():
    cfg, net, _, _ = small_net()
    with pytest.raises(UserError, match="fixed-point scales hold only for those"):
        export_model(net, cfg, gains={"audio": 2.6, "visual": 0.7})


def test_trained_input_scales_hold_for_binary_looking_data():
    """A quantisation-aware network's inputs are graded payloads even when the data happen to be 0/1."""
    cfg, net, x_a, x_v = small_net(1)
    x_v = (x_v > 0.5).to(x_v.dtype)
    forward = {k: v.transpose(0, 1).numpy() for k, v in fixed_point_reference(net, x_a, x_v).items()}
    plan = plan_graph(export_model(net, cfg))
    inputs = batch_major(x_a, x_v)
    ours = simulate_fixed(plan, quantize_plan(plan, inputs), inputs)
    for layer, spikes in forward.items():
        np.testing.assert_array_equal(ours[layer], spikes, err_msg=layer)


def test_calibration_rows_span_the_classes_of_a_label_sorted_split():
    from converters.quantize import calibration_indices
    from iemf_neuro.data import load_split

    labels = load_split("train").labels.numpy()
    rows = calibration_indices(len(labels), seed=3)
    assert len(rows) == 128 and np.all(np.diff(rows) > 0) and len(np.unique(labels[rows])) == 10
    assert np.array_equal(rows, calibration_indices(len(labels), seed=3))


@pytest.fixture(scope="module")
def float_checkpoint(tmp_path_factory):
    """A float network on synthetic data whose layers all spike, and whose fixed point predicts differently on
    some samples (what QAT starts from and distils from)."""
    config = get_run_config("avdigits-mlp", epochs=1, overrides=["dataset=synthetic", "synthetic_size=64",
                                                                  "batch_size=32", "model.time_steps=4"])
    torch.manual_seed(0)
    net = build_model(config.model)
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() > 1:
                p.mul_(3.0)
    path = tmp_path_factory.mktemp("float") / "best.pt"
    save_checkpoint(path, net, config, 0)
    return path


def test_quant_aware_config_distils_without_gradient_modulation(float_checkpoint):
    base = load_checkpoint(float_checkpoint)["run_config"]
    qat = quant_aware_config(base, str(float_checkpoint))
    assert qat.train.distill_weight == QAT_DISTILL_WEIGHT > 0 and qat.train.quant_aware
    assert qat.train.method == "aux-heads" and qat.train.uses_aux_loss == base.train.uses_aux_loss
    assert quant_aware_config(replace(base, train=replace(base.train, method="ogm-ge")), "x.pt").train.method == "plain"
    assert base.train.distill_weight == 0 and "distill_weight" in base.to_dict()["train"]


def test_distillation_pulls_toward_the_frozen_float_teacher(float_checkpoint):
    config = quant_aware_config(load_checkpoint(float_checkpoint)["run_config"], str(float_checkpoint))
    net = trainer.build_net(config)
    teacher = trainer.distillation_teacher(net, config)
    assert net.quant_aware and not teacher.quant_aware and not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    start = {k: v.clone() for k, v in net.state_dict().items()}
    gen = torch.Generator().manual_seed(3)
    audio, image = torch.rand(16, 32, 32, generator=gen), torch.rand(16, 8, 8, generator=gen)
    labels = torch.randint(0, 10, (16,), generator=gen)
    float_net = model_from_checkpoint(load_checkpoint(float_checkpoint))  # the float network, loaded on its own
    x_a, x_v = encode_inputs(config.model, audio, image)
    with torch.no_grad():
        expected = trainer.distillation_loss(net(x_a, x_v).counts, float_net(x_a, x_v).counts)
    assert expected > 0 and trainer.distillation_loss(expected.new_ones(2, 3), expected.new_ones(2, 3)) == 0
    ctx = trainer.StepContext(net, net, config, torch.optim.Adam(net.parameters(), lr=1e-2),
                              torch.Generator(), torch.Generator(), teacher=teacher)
    stats = trainer.train_step(ctx, audio, image, labels, epoch=0)
    assert float(stats["distill_loss"]) == pytest.approx(float(expected), rel=1e-6)
    assert any(not torch.equal(v, start[k]) for k, v in net.state_dict().items()), "the student did not move"
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, start[k]), f"the teacher moved: {k}"


def test_quant_aware_best_is_chosen_on_validation_agreement_and_may_be_the_start(tmp_path, float_checkpoint):
    """A fine-tuning that cannot change the fixed-point network never beats its start: best.pt stays the start."""
    config = quant_aware_config(load_checkpoint(float_checkpoint)["run_config"], str(float_checkpoint), epochs=1)
    config = replace(config, train=replace(config.train, lr=1e-12))
    result = trainer.train(tmp_path / "qat", config, progress=False)
    metrics = json.loads((tmp_path / "qat" / "test_metrics.json").read_text())
    assert result.best_epoch == metrics["best_epoch"] == -1 and 0 < metrics["best_val_agreement"] <= 1
    assert result.history[0]["val_agreement"] == metrics["best_val_agreement"]
    best = load_checkpoint(checkpoint_paths(tmp_path / "qat")["best"])
    start = load_checkpoint(float_checkpoint)["model"]
    assert best["epoch"] == -1 and all(torch.equal(v, start[k]) for k, v in best["model"].items())
    assert json.loads((tmp_path / "qat" / "config.json").read_text())["train"]["distill_weight"] == QAT_DISTILL_WEIGHT
