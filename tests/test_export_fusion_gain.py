"""Fusion-gain calibration: the inverse-effectiveness rule, snapping to mantissa * 2**exp, determinism."""

import math

import pytest
import torch

from converters.fusion_gain import calibrate_gains, evidence, gains_from_evidence, snap_gain
from converters.model_to_nir import split_gain
from iemf_neuro.errors import UserError
from iemf_neuro.models import build_model, get_model_config
from iemf_neuro.training.data import SyntheticAV


def test_equal_evidence_gives_unit_gains():
    assert gains_from_evidence(0.4, 0.4, 0.8) == pytest.approx({"audio": 1.0, "visual": 1.0})


def test_weaker_modality_gets_the_larger_gain():
    g = gains_from_evidence(0.1, 0.45, 0.64)
    assert g["audio"] > 1.0 > g["visual"]
    assert g["audio"] * g["visual"] == pytest.approx(1.0)
    h_a, h_v = 1 + math.tanh(1 - 0.1 / 0.64), 1 + math.tanh(1 - 0.45 / 0.64)
    assert g["audio"] == pytest.approx(h_a / math.sqrt(h_a * h_v))
    with pytest.raises(UserError, match="no probability"):
        gains_from_evidence(0.1, 0.1, 0.0)


@pytest.mark.parametrize("bits", [0, 1, 3, 6])
@pytest.mark.parametrize("gain", [0.3, 0.77, 1.0, 1.2, 1.99, 7.5])
def test_snap_gain_is_mantissa_times_power_of_two(bits, gain):
    snapped = snap_gain(gain, bits)
    mantissa, exponent = split_gain(snapped)
    assert mantissa * 2 ** bits == int(mantissa * 2 ** bits)
    assert abs(snapped - gain) <= 2.0 ** (exponent - bits - 1) * 2 + 1e-12
    if bits == 0:
        assert mantissa == 1.0


def test_calibration_is_consistent_and_deterministic():
    torch.manual_seed(0)
    cfg = get_model_config("avdigits-mlp")
    model = build_model(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0)
    data = SyntheticAV.make(cfg, 64, seed=1)
    fg = calibrate_gains(model, cfg, data, mantissa_bits=2, batch_size=32)
    assert fg == calibrate_gains(model, cfg, data, mantissa_bits=2, batch_size=32)
    assert fg.n_samples == 64 and all(0.0 <= e <= 1.0 for e in fg.evidence.values())
    assert fg.raw == pytest.approx(gains_from_evidence(fg.evidence["audio"], fg.evidence["visual"], fg.evidence["av"]))
    assert fg.gains == {m: snap_gain(g, 2) for m, g in fg.raw.items()}
    audio, image, labels = (torch.as_tensor(a) for a in (data.audio, data.image, data.labels))
    assert fg.evidence["audio"] == evidence(model, cfg, audio, image, labels, (1.0, 0.0), 32)
    assert torch.equal(model.fusion.gain, torch.ones(2))  # calibration never touches the model


def test_calibration_refuses_bad_input():
    cfg = get_model_config("avdigits-mlp", fusion="film")
    with pytest.raises(UserError, match="concat or sum"):
        calibrate_gains(build_model(cfg), cfg, SyntheticAV.make(cfg, 4, seed=0))
    cfg = get_model_config("avdigits-mlp")
    with pytest.raises(UserError, match=".audio/.image/.labels"):
        calibrate_gains(build_model(cfg), cfg, [1, 2, 3])
