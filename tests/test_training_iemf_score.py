"""IEMF's fused score (the fused readout probe), the coefficient's range, the control, and old checkpoints."""

import math
from dataclasses import replace

import pytest
import torch
from cases import grads_after_step

from iemf_neuro.errors import UserError
from iemf_neuro.models import NetOutput
from iemf_neuro.training import trainer
from iemf_neuro.training.checkpoint import PROBE_KEYS, checkpoint_paths, load_run
from iemf_neuro.training.config import get_run_config
from iemf_neuro.training.iemf import iemf_coefficient, iemf_scores, true_class_score
from iemf_neuro.training.trainer import build_net

CLASSES, T = 6, 4  # cremad-resnet18's output: counts in [0, 4] over 6 classes
LABELS = torch.arange(CLASSES).repeat(4)


def _confident(p_true: float) -> torch.Tensor:
    """Logits giving probability ``p_true`` to the true class of every sample of LABELS."""
    logit = math.log(p_true * (CLASSES - 1) / (1 - p_true))
    return torch.nn.functional.one_hot(LABELS, CLASSES).float() * logit


def _output(heads: float, fused: float, counts: torch.Tensor) -> NetOutput:
    return NetOutput(counts=counts, aux_logits={"audio": _confident(heads), "visual": _confident(heads)},
                     fused_logits=_confident(fused))


def _coeff_from_counts(out: NetOutput) -> float:
    """The score the fused readout replaced: softmax of the output spike counts."""
    a, v, _ = iemf_scores(out, LABELS)
    return iemf_coefficient(a, v, true_class_score(out.counts, LABELS)).item()


def test_fitted_batch_whose_heads_and_fused_readout_agree_gets_coeff_gain():
    out = _output(0.99, 0.99, counts=T * torch.nn.functional.one_hot(LABELS, CLASSES).float())
    assert iemf_coefficient(*iemf_scores(out, LABELS)).item() == pytest.approx(1 + math.tanh(0.0), abs=1e-6)
    assert iemf_coefficient(*iemf_scores(out, LABELS), gain=2.0).item() == pytest.approx(2.0, abs=1e-6)
    # counts saturate at T: p(y) <= e^4 / (e^4 + 5) = 0.92, so even a perfect output slowed the fusion layer
    assert _coeff_from_counts(out) == pytest.approx(1 + math.tanh(1 - 0.99 / (math.e ** 4 / (math.e ** 4 + 5))),
                                                    rel=1e-5)
    assert _coeff_from_counts(out) < 0.93


def test_silent_output_no_longer_stops_fusion_learning_while_the_fused_readout_has_evidence():
    out = _output(0.9, 0.9, counts=torch.zeros(len(LABELS), CLASSES))
    assert iemf_coefficient(*iemf_scores(out, LABELS)).item() == pytest.approx(1.0, abs=1e-6)
    assert _coeff_from_counts(out) == pytest.approx(1 + math.tanh(1 - 0.9 * CLASSES), rel=1e-4)  # about 3e-4
    weaker_fusion = iemf_coefficient(*iemf_scores(_output(0.9, 0.5, out.counts), LABELS)).item()
    assert weaker_fusion == pytest.approx(1 + math.tanh(1 - 0.9 / 0.5), rel=1e-5)


@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_coefficient_limits_and_range(gain):
    def coeff(ratio):
        return iemf_coefficient(torch.tensor(ratio, dtype=torch.float64), torch.tensor(ratio, dtype=torch.float64),
                                torch.tensor(1.0, dtype=torch.float64), gain=gain).item()

    assert coeff(0.0) == pytest.approx(gain * (1 + math.tanh(1.0)))  # heads know nothing: the maximum
    assert coeff(1.0) == pytest.approx(gain)  # heads as good as the fusion
    assert coeff(40.0) == pytest.approx(0.0, abs=1e-12)  # fusion far behind the heads: tends to 0
    ratios = [0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 4.0, 10.0]
    values = [coeff(r) for r in ratios]
    assert all(a > b for a, b in zip(values, values[1:]))  # strictly decreasing in the ratio
    assert all(0 < v <= gain * (1 + math.tanh(1.0)) for v in values)


def test_control_differs_from_iemf_only_by_the_coefficient():
    t = get_run_config("avdigits-mlp", method="iemf-control").train
    assert t.uses_aux_loss and t.iemf_control and t.iemf_active(0) and not t.ogm_active(0)
    net, iemf, stats = grads_after_step("iemf")
    _, control, control_stats = grads_after_step("iemf-control")
    _, aux, _ = grads_after_step("aux-heads")
    coeff = stats["iemf_coeff"]
    assert control_stats["iemf_coeff"] == coeff and coeff.item() != pytest.approx(1.0)
    fusion = {"fusion.proj.audio.weight", "fusion.proj.visual.weight", "fusion.bias"}
    for name in iemf:
        if name in fusion:  # same noise draw: grad_iemf - grad_control = (coeff - 1) grad
            torch.testing.assert_close(iemf[name] - control[name], (coeff - 1) * aux[name])
            assert not torch.equal(control[name], aux[name])
        else:
            assert torch.equal(iemf[name], control[name]), name


def test_fused_readout_is_a_probe_that_survives_a_silent_output():
    net = build_net(get_run_config("avdigits-mlp"))
    torch.nn.init.constant_(net.output.synapse[0].bias, -100.0)
    out = net(torch.rand(10, 8, 32, 32), torch.rand(10, 8, 8, 8))
    assert out.counts.sum() == 0 and out.fused_logits.std(dim=0).sum() > 0  # evidence beyond a silent output
    torch.nn.functional.cross_entropy(out.fused_logits, torch.arange(8)).backward()
    trained = {n for n, p in net.named_parameters() if p.grad is not None}
    assert trained == {"fused_head.weight", "fused_head.bias"}  # it measures the fusion layer, never trains it


def test_old_checkpoint_without_the_probe_loads_and_refuses_resume(tmp_path):
    config = get_run_config("avdigits-mlp", method="iemf", epochs=1,
                            overrides=["dataset=synthetic", "synthetic_size=64", "batch_size=32"])
    trainer.train(tmp_path / "run", config, progress=False)
    for path in checkpoint_paths(tmp_path / "run").values():
        payload = torch.load(path, weights_only=True)
        for key in PROBE_KEYS:
            del payload["model"][key]
        torch.save(payload, path)
    run = load_run(tmp_path / "run")
    assert run.model(torch.rand(10, 2, 32, 32), torch.rand(10, 2, 8, 8)).fused_logits.shape == (2, 10)
    with pytest.raises(UserError, match="before the fused readout probe .* cannot be resumed") as err:
        trainer.train(tmp_path / "run", replace(config, train=replace(config.train, epochs=2)), resume=True,
                      progress=False)
    assert "\n" not in str(err.value)
