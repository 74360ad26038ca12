"""Static fusion gains: the reliability rule, snapping to mantissa * 2**exp, the power-of-two search."""

import math

import pytest
import torch

from converters.fusion_gain import (G_MAX, R_MIN, SEARCH_EXPONENTS, branch_spikes, calibrate_gains, fused_counts,
                                    power_of_two_search, reliability, reliability_gains, snap_gain)
from converters.model_to_nir import split_gain
from iemf_neuro.errors import UserError
from iemf_neuro.models import build_model, encode_inputs, get_model_config
from iemf_neuro.training.data import SyntheticAV


def test_reliability_is_information_over_chance():
    assert reliability(math.log(1 / 10), 10) == R_MIN  # chance
    assert reliability(-5.0, 10) == R_MIN  # worse than chance
    assert reliability(0.0, 10) == 1.0  # certain
    assert reliability(0.5 * math.log(1 / 10), 10) == pytest.approx(0.5)


def test_more_reliable_cue_weighted_up_and_weak_pairs_boosted():
    clean = {"audio": 0.8, "visual": 0.8}
    gains, common = reliability_gains(clean, clean)
    assert gains == pytest.approx({"audio": 1.0, "visual": 1.0}) and common == 1.0
    gains, common = reliability_gains({"audio": 0.2, "visual": 0.6}, clean)
    assert gains["visual"] > gains["audio"] and gains["visual"] / gains["audio"] == pytest.approx(3.0)
    assert common == pytest.approx(math.sqrt(1.6 / 0.8)) and sum(gains.values()) / 2 == pytest.approx(common)
    _, common = reliability_gains({"audio": R_MIN, "visual": R_MIN}, {"audio": 1.0, "visual": 1.0})
    assert common == G_MAX  # both at chance: the common gain saturates
    _, common = reliability_gains({"audio": 1.0, "visual": 1.0}, clean)
    assert common == 1.0  # stronger than on clean data: never below 1


@pytest.mark.parametrize("bits", [0, 1, 3, 6])
@pytest.mark.parametrize("gain", [0.3, 0.77, 1.0, 1.2, 1.99, 7.5])
def test_snap_gain_is_mantissa_times_power_of_two(bits, gain):
    snapped = snap_gain(gain, bits)
    mantissa, exponent = split_gain(snapped)
    assert mantissa * 2 ** bits == int(mantissa * 2 ** bits)
    assert abs(snapped - gain) <= 2.0 ** (exponent - bits - 1) * 2 + 1e-12
    if bits == 0:
        assert mantissa == 1.0


def trained_like():
    torch.manual_seed(0)
    cfg = get_model_config("avdigits-mlp")
    model = build_model(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0)
    return cfg, model


def test_fused_counts_equal_the_network_with_those_gains():
    cfg, model = trained_like()
    data = SyntheticAV.make(cfg, 24, seed=1)
    spikes = branch_spikes(model, cfg, data, batch_size=10)
    counts = fused_counts(model, spikes, {"audio": 2.0, "visual": 0.25})
    x_a, x_v = encode_inputs(cfg, torch.as_tensor(data.audio), torch.as_tensor(data.image), torch.Generator())
    model.fusion.gain.copy_(torch.tensor([2.0, 0.25]))
    with torch.no_grad():
        assert torch.equal(counts, model(x_a, x_v).counts)


def test_calibration_is_consistent_and_deterministic():
    cfg, model = trained_like()
    clean, noisy = SyntheticAV.make(cfg, 64, seed=1), SyntheticAV.make(cfg, 64, seed=2)
    noisy.audio[:] = torch.rand(noisy.audio.shape, generator=torch.Generator().manual_seed(3)).numpy()
    fg = calibrate_gains(model, cfg, noisy, clean, mantissa_bits=2, batch_size=32)
    assert fg == calibrate_gains(model, cfg, noisy, clean, mantissa_bits=2, batch_size=32)
    assert fg.rule == "reliability" and fg.n_samples == 64
    r = {m: fg.reliability[m] for m in ("audio", "visual")}
    assert (fg.raw, fg.common_gain) == reliability_gains(r, {m: fg.reliability[f"clean_{m}"] for m in r})
    assert fg.gains == {m: snap_gain(g, 2) for m, g in fg.raw.items()}
    ll = branch_spikes(model, cfg, noisy, 32).head_log_likelihood
    assert r == {m: reliability(v, cfg.num_classes) for m, v in ll.items()}
    assert torch.equal(model.fusion.gain, torch.ones(2))  # calibration never touches the model


def test_power_of_two_search_finds_the_best_pair():
    cfg, model = trained_like()
    data = SyntheticAV.make(cfg, 48, seed=4)
    fg = power_of_two_search(model, cfg, data, batch_size=16)
    spikes = branch_spikes(model, cfg, data, 16)
    accuracy = {(i, j): float((fused_counts(model, spikes, {"audio": 2.0 ** i, "visual": 2.0 ** j}).argmax(-1)
                               == spikes.labels).double().mean())
                for i in SEARCH_EXPONENTS for j in SEARCH_EXPONENTS}
    assert fg.accuracy == max(accuracy.values())
    assert accuracy[tuple(int(math.log2(fg.gains[m])) for m in ("audio", "visual"))] == fg.accuracy
    assert fg.accuracy >= accuracy[(0, 0)]


def test_calibration_refuses_bad_input():
    cfg = get_model_config("avdigits-mlp", fusion="film")
    data = SyntheticAV.make(cfg, 4, seed=0)
    with pytest.raises(UserError, match="concat or sum"):
        calibrate_gains(build_model(cfg), cfg, data, data)
    cfg = get_model_config("avdigits-mlp")
    with pytest.raises(UserError, match=".audio/.image/.labels"):
        power_of_two_search(build_model(cfg), cfg, [1, 2, 3])
