"""The IEMF and OGM-GE rules: coefficients on hand-made scores, and which gradients they touch."""

import math

import pytest
import torch
from cases import grads_after_step

from iemf_neuro.training.iemf import fusion_parameters, iemf_coefficient, true_class_score
from iemf_neuro.training.ogm import encoder_parameters, ogm_coefficients


def test_true_class_score_sums_true_class_probabilities():
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(4.0), 0.0]])
    assert true_class_score(logits, torch.tensor([1, 1])).item() == pytest.approx(0.75 + 0.2)


@pytest.mark.parametrize("a, v, av, gain, expected", [
    (10.0, 20.0, 15.0, 1.0, 1.0),                          # ratio 1 -> 1 + tanh(0)
    (5.0, 5.0, 20.0, 1.0, 1 + math.tanh(0.75)),            # weak heads -> faster fusion learning
    (30.0, 30.0, 10.0, 1.0, 1 + math.tanh(-2.0)),          # strong heads -> slower
    (5.0, 5.0, 20.0, 2.0, 2 * (1 + math.tanh(0.75))),      # optional gain
])
def test_iemf_coefficient_on_hand_made_scores(a, v, av, gain, expected):
    coeff = iemf_coefficient(torch.tensor(a), torch.tensor(v), torch.tensor(av), gain=gain)
    assert coeff.item() == pytest.approx(expected, rel=1e-6)


def test_ogm_coefficients_slow_the_dominant_modality():
    k_a, k_v = ogm_coefficients(torch.tensor(10.0), torch.tensor(20.0), alpha=0.8)
    assert (k_a.item(), k_v.item()) == pytest.approx((1.0, 1 - math.tanh(0.8 * 2.0)))
    k_a, k_v = ogm_coefficients(torch.tensor(40.0), torch.tensor(10.0), alpha=0.8)
    assert (k_a.item(), k_v.item()) == pytest.approx((1 - math.tanh(0.8 * 4.0), 1.0), abs=1e-6)


def test_iemf_changes_only_fusion_gradients_by_coeff_plus_seeded_noise():
    net, plain, _ = grads_after_step("aux-heads")
    _, iemf, stats = grads_after_step("iemf")
    fusion_ids = {id(p) for p in fusion_parameters(net)}
    fusion_names = [n for n, p in net.named_parameters() if id(p) in fusion_ids]
    assert set(fusion_names) == {"fusion.proj.audio.weight", "fusion.proj.visual.weight", "fusion.bias"}
    for name in plain:
        if name not in fusion_names:
            assert torch.equal(plain[name], iemf[name]), name
    coeff = stats["iemf_coeff"]
    assert coeff.item() != pytest.approx(1.0)
    noise_gen = torch.Generator().manual_seed(9)
    for name in ["fusion.proj.audio.weight", "fusion.proj.visual.weight", "fusion.bias"]:
        g = plain[name]
        expected = g * coeff + torch.randn(g.shape, generator=noise_gen) * (g.std() + 1e-8)
        assert not torch.equal(iemf[name], g)
        torch.testing.assert_close(iemf[name], expected)


def test_ogm_changes_only_encoder_weights():
    net, plain, _ = grads_after_step("plain")
    _, ogm, stats = grads_after_step("ogm-ge")
    encoder_ids = {id(p) for m in ("audio", "visual") for p in encoder_parameters(net, m)}
    changed = {n for n, p in net.named_parameters() if not torch.equal(plain[n], ogm[n])}
    assert changed == {n for n, p in net.named_parameters() if id(p) in encoder_ids}
    assert min(stats["ogm_k_audio"].item(), stats["ogm_k_visual"].item()) < 1.0


def test_plain_heads_are_probes_that_leave_encoders_alone():
    net, plain, _ = grads_after_step("plain")
    _, aux, _ = grads_after_step("aux-heads")
    assert torch.equal(plain["aux_heads.audio.0.weight"], aux["aux_heads.audio.0.weight"])
    assert not torch.equal(plain["branches.audio.blocks.0.synapse.1.weight"],
                           aux["branches.audio.blocks.0.synapse.1.weight"])
