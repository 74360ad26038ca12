"""Corruption transforms on hand-made inputs, and their validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from iemf_neuro.data import AudioPinkNoise, AudioWhiteNoise, Corruption, ImageGaussianNoise, ImageOcclusion
from iemf_neuro.data.corruption import corrupt_images, sample_rng
from iemf_neuro.errors import UserError


@pytest.mark.parametrize("kwargs", [
    {"audio_snr_db": math.inf}, {"audio_snr_db": math.nan}, {"image_noise_std": -0.1},
    {"image_noise_std": math.nan}, {"image_occlusion": -0.01}, {"image_occlusion": 1.01}])
def test_out_of_range_levels_are_user_errors(kwargs):
    with pytest.raises(UserError):
        Corruption(**kwargs)


def test_default_is_the_identity_and_corruptions_are_hashable():
    assert Corruption().is_identity and not Corruption(image_occlusion=0.1).is_identity
    assert len({Corruption(0.0), Corruption(0.0), Corruption(1.0)}) == 2


@pytest.mark.parametrize("fraction, expected", [(0.0, 0), (0.25, 16), (1.0, 64), (0.5, 30), (0.1, 6)])
def test_occlusion_blanks_one_rectangle_of_about_the_requested_area(fraction, expected):
    image = np.ones((8, 8), dtype=np.float32)
    out = ImageOcclusion(fraction)(image, np.random.default_rng(0))
    blank = np.argwhere(out == 0)
    assert len(blank) == expected
    if expected:
        (top, left), (bottom, right) = blank.min(axis=0), blank.max(axis=0)
        assert (bottom - top + 1) * (right - left + 1) == expected  # a filled rectangle
    assert np.all(image == 1)  # input untouched


def test_occlusion_position_varies_with_the_sample_rng():
    positions = {tuple(np.argwhere(ImageOcclusion(0.25)(np.ones((8, 8)), sample_rng(0, "train", i, 2)) == 0)[0])
                 for i in range(50)}
    assert len(positions) > 10


def test_image_noise_has_the_requested_std_and_is_clipped():
    image = np.full((200, 200), 0.5, dtype=np.float32)
    out = ImageGaussianNoise(0.1)(image, np.random.default_rng(1))
    assert abs(float(np.std(out)) - 0.1) < 0.005  # 5 sigma from 0.5, clipping is negligible here
    wide = ImageGaussianNoise(2.0)(image, np.random.default_rng(1))
    assert wide.min() == 0.0 and wide.max() == 1.0


@pytest.mark.parametrize("kind", [AudioWhiteNoise, AudioPinkNoise])
def test_audio_noise_snr_is_exact_over_the_window(kind):
    wave = (0.3 * np.sin(np.arange(8000) / 3.0)).astype(np.float32)
    noise = kind(3.0)(wave, np.random.default_rng(2)).astype(np.float64) - wave
    measured = 10 * np.log10(np.mean(wave.astype(np.float64) ** 2) / np.mean(noise ** 2))
    assert abs(measured - 3.0) < 1e-3


def test_pink_noise_is_one_over_f_and_white_is_flat():
    def slope(kind):  # log-log slope of the averaged power spectrum, 50 Hz .. 4 kHz at 8 kHz sampling
        power = np.mean([np.abs(np.fft.rfft(kind(0.0)(np.ones(8000, np.float32), np.random.default_rng(i)) - 1))
                         ** 2 for i in range(20)], axis=0)
        k = np.arange(50, 4001)
        return np.polyfit(np.log(k), np.log(power[k]), 1)[0]

    assert abs(slope(AudioPinkNoise) + 1.0) < 0.1 and abs(slope(AudioWhiteNoise)) < 0.1


def test_unknown_audio_noise_is_a_one_line_user_error():
    with pytest.raises(UserError, match="white, pink") as info:
        Corruption(audio_snr_db=0.0, audio_noise="brown")
    assert "\n" not in str(info.value)


def test_image_corruption_of_a_sample_does_not_depend_on_the_others():
    images = np.random.default_rng(0).random((6, 8, 8)).astype(np.float32)
    c = [Corruption(image_noise_std=0.3, image_occlusion=0.2)] * 6
    full = corrupt_images(images, c, seed=5, split="val")
    assert np.array_equal(full[:3], corrupt_images(images[:3], c[:3], seed=5, split="val"))
    assert not np.array_equal(full, corrupt_images(images, c, seed=5, split="test"))
