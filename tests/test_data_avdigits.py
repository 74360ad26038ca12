"""AV-Digits as the trainers see it: shapes, ranges, determinism, disjoint splits, measured SNR, speed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from pipeline.cli import main
from iemf_neuro.data import Corruption, TrainingDegradation, load_split, waveforms
from iemf_neuro.data import avdigits, features
from iemf_neuro.data.build import SPLITS
from iemf_neuro.errors import UserError


def test_splits_have_documented_sizes_shapes_and_ranges():
    sizes = {"train": 2400, "val": 300, "test": 300}
    for split in SPLITS:
        ds = load_split(split)
        assert len(ds) == sizes[split]
        assert ds.audio.shape == (sizes[split], 32, 32) and ds.audio.dtype == torch.float32
        assert ds.image.shape == (sizes[split], 8, 8) and ds.image.dtype == torch.float32
        assert ds.labels.dtype == torch.int64
        assert torch.bincount(ds.labels, minlength=10).tolist() == [sizes[split] // 10] * 10
        for x in (ds.audio, ds.image):
            assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        audio, image, label = ds[7]
        assert torch.equal(audio, ds.audio[7]) and torch.equal(image, ds.image[7]) and int(label) == int(ds.labels[7])
        assert ds.class_names == [str(d) for d in range(10)]
    # the features are not degenerate: a spread of values across the [0, 1] scale
    train = load_split("train")
    assert 0.05 < float(train.audio.mean()) < 0.6 and float(train.audio.std()) > 0.1


def test_unknown_split_names_the_valid_ones():
    with pytest.raises(UserError, match="train, val, test"):
        load_split("validation")
    with pytest.raises(UserError, match="seed"):
        load_split("val", Corruption(audio_snr_db=0.0), seed=-1)


def test_same_seed_gives_identical_tensors_and_other_seeds_differ():
    corruption = Corruption(audio_snr_db=5.0, image_noise_std=0.2, image_occlusion=0.25)
    first = load_split("val", corruption, seed=3)
    avdigits._SPLITS.clear()  # recompute from scratch, not from the per-process cache
    again = load_split("val", corruption, seed=3)
    for name in ("audio", "image", "labels"):
        assert torch.equal(getattr(first, name), getattr(again, name))
    other = load_split("val", corruption, seed=4)
    assert not torch.equal(first.audio, other.audio) and not torch.equal(first.image, other.image)
    clean = load_split("val")
    assert not torch.equal(first.audio, clean.audio)
    assert torch.equal(clean.labels, first.labels)


def test_returned_tensors_are_private_copies():
    ds = load_split("test")
    before = ds.audio.clone()
    ds.audio.zero_()
    assert torch.equal(load_split("test").audio, before)


def test_splits_are_disjoint_in_recordings_and_images():
    arrays = avdigits.load_file()
    recordings = {s: set(avdigits.recording_ids(s).tolist()) for s in SPLITS}
    images = {s: set(arrays[f"{s}_image_index"].tolist()) for s in SPLITS}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            assert not recordings[a] & recordings[b], (a, b)
            assert not images[a] & images[b], (a, b)
    assert set(arrays["test_recording"].tolist()) == set(range(0, 5))
    assert set(arrays["val_recording"].tolist()) == set(range(5, 10))
    assert set(arrays["train_recording"].tolist()) == set(range(10, 50))
    assert sum(len(r) for r in recordings.values()) == 3000
    # every paired image is a real load_digits image of the same class, from its own split's image pool
    digits = load_digits()
    for split in SPLITS:
        index = arrays[f"{split}_image_index"]
        assert np.array_equal(digits.target[index], arrays[f"{split}_label"])
        assert np.array_equal(digits.images[index], arrays[f"{split}_image"])
        assert np.all(arrays["digits_split"][index] == SPLITS.index(split))
    test_share = np.bincount(arrays["digits_split"], minlength=3)[2] / len(digits.target)
    assert abs(test_share - 0.2) < 0.01


@pytest.mark.parametrize("snr_db", [-10.0, 0.0, 6.5, 20.0])
def test_measured_snr_is_within_a_tenth_of_a_db(snr_db):
    clean, _ = waveforms("val")
    noisy, _ = waveforms("val", Corruption(audio_snr_db=snr_db), seed=11)
    for x, y in zip(clean.astype(np.float64), noisy.astype(np.float64)):
        assert abs(10 * np.log10(np.mean(x ** 2) / np.mean((y - x) ** 2)) - snr_db) < 0.1
    # the noise is white: no lag-1 correlation
    noise = (noisy - clean).astype(np.float64)
    assert abs(np.mean(noise[:, 1:] * noise[:, :-1]) / np.mean(noise ** 2)) < 0.01


def test_looping_fills_the_window_with_the_recording():
    waves, lengths = waveforms("val")
    clips, _ = avdigits._clips(avdigits.load_file(), "val")
    assert np.all(lengths <= features.WINDOW) and np.mean(lengths) < 0.6 * features.WINDOW  # mostly short clips
    for wave, clip, n in zip(waves, clips, lengths):
        assert np.array_equal(wave * 32768, np.resize(clip, features.WINDOW).astype(np.float32)), n
    # zero samples are only the recordings' own digital silence (6 %), no longer the padding (56 % of the window)
    assert np.mean(waves == 0) < 0.1 and np.mean(1 - lengths / features.WINDOW) > 0.5


def test_white_noise_does_not_shift_the_features():
    """The old zero-padded window turned noise into a DC offset (padding bins 0 -> 0.42 at 20 dB)."""
    clean = load_split("val").audio
    for snr_db in (20.0, 0.0):
        noisy = load_split("val", Corruption(audio_snr_db=snr_db)).audio
        assert abs(float(noisy.mean() - clean.mean())) < 0.05
    low = load_split("val", Corruption(audio_snr_db=-5.0)).audio
    assert float((low - clean).abs().mean()) > 0.05  # the noise still changes the features


def test_pink_noise_keeps_the_snr_exact_and_differs_from_white():
    clean, _ = waveforms("val")
    pink, _ = waveforms("val", Corruption(audio_snr_db=3.0, audio_noise="pink"), seed=2)
    white, _ = waveforms("val", Corruption(audio_snr_db=3.0), seed=2)
    noise = (pink - clean).astype(np.float64)
    assert np.allclose(10 * np.log10(np.mean(clean.astype(np.float64) ** 2, 1) / np.mean(noise ** 2, 1)), 3.0,
                       atol=0.1)
    assert np.mean(noise[:, 1:] * noise[:, :-1]) / np.mean(noise ** 2) > 0.5  # low-frequency heavy, not white
    again, _ = waveforms("val", Corruption(audio_snr_db=3.0, audio_noise="pink"), seed=2)
    assert np.array_equal(pink, again) and not np.array_equal(pink, white)


def test_degradation_is_per_sample_deterministic_and_batch_order_free():
    degradation = TrainingDegradation()
    forward = [degradation.draw(4, "val", i) for i in range(300)]
    assert forward[::-1] == [degradation.draw(4, "val", i) for i in reversed(range(300))]
    first = load_split("val", seed=4, degradation=degradation)
    avdigits._SPLITS.clear()  # recompute from scratch
    again = load_split("val", seed=4, degradation=degradation)
    assert torch.equal(first.audio, again.audio) and torch.equal(first.image, again.image)
    assert not torch.equal(first.audio, load_split("val", seed=5, degradation=degradation).audio)
    # a sample is what its own draw alone gives: the others (and their order) play no part
    i = next(i for i, d in enumerate(forward) if d.corruption.audio_snr_db is not None and not d.drop_audio)
    alone = load_split("val", forward[i].corruption, seed=4)
    assert torch.equal(first.audio[i], alone.audio[i]) and torch.equal(first.image[i], alone.image[i])
    clean = load_split("val")
    untouched = [j for j, d in enumerate(forward) if d.corruption.is_identity]
    assert 0.2 < len(untouched) / 300 < 0.4 and torch.equal(first.audio[untouched], clean.audio[untouched])
    snrs = [d.corruption.audio_snr_db for d in forward if d.corruption.audio_snr_db is not None]
    assert -5.0 <= min(snrs) < 0.0 and 25.0 < max(snrs) <= 30.0


def test_modality_dropout_zeroes_that_modality_only():
    audio_off = load_split("val", degradation=TrainingDegradation(clean_fraction=0.0, audio_dropout=1.0,
                                                                   image_dropout=0.0))
    assert float(audio_off.audio.abs().max()) == 0.0 and bool((audio_off.image.flatten(1).amax(1) > 0).all())
    image_off = load_split("val", degradation=TrainingDegradation(clean_fraction=0.0, audio_dropout=0.0,
                                                                   image_dropout=1.0))
    assert float(image_off.image.abs().max()) == 0.0 and bool((image_off.audio.flatten(1).amax(1) > 0).all())
    mixed = load_split("val", degradation=TrainingDegradation(clean_fraction=0.0, audio_dropout=0.5,
                                                               image_dropout=0.5))
    dropped = (mixed.audio.flatten(1).amax(1) == 0).sum() + (mixed.image.flatten(1).amax(1) == 0).sum()
    assert int(dropped) == 300  # exactly one modality per sample, never both


@pytest.mark.parametrize("kwargs, fix", [
    ({"clean_fraction": 1.5}, "clean_fraction=0.1"), ({"audio_snr_db": (10.0, -5.0)}, "audio_snr_db="),
    ({"image_occlusion": (0.0, 2.0)}, "image_occlusion="), ({"audio_dropout": 0.6, "image_dropout": 0.6}, "lower")])
def test_bad_degradations_are_one_line_user_errors(kwargs, fix):
    with pytest.raises(UserError, match=fix) as info:
        TrainingDegradation(**kwargs)
    assert "\n" not in str(info.value)


def test_corruption_and_degradation_together_is_a_user_error():
    with pytest.raises(UserError, match="not both"):
        load_split("train", Corruption(audio_snr_db=0.0), degradation=TrainingDegradation())


def test_load_split_computes_features_once_and_hands_out_copies(monkeypatch):
    condition = Corruption(image_noise_std=0.1)
    first = load_split("val", condition, seed=3)
    calls = []
    monkeypatch.setattr(features, "log_mel_db", lambda *args, **kwargs: calls.append(args))
    second = load_split("val", condition, seed=3)
    assert not calls and torch.equal(first.audio, second.audio) and torch.equal(first.image, second.image)
    first.audio.zero_()
    assert load_split("val", condition, seed=3).audio.abs().sum() > 0


def test_missing_or_foreign_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="build-avdigits"):
        load_split("train", path=tmp_path / "missing.npz")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.zeros(3))
    with pytest.raises(UserError, match="rebuild"):
        load_split("train", path=foreign)


def test_cli_info_prints_sizes_and_rejects_bad_levels(capsys):
    assert main(["data", "info", "--split", "val", "--image-noise-std", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "val:" in out and "300 samples" in out and "32x32" in out and "8x8" in out
    assert main(["data", "info", "--image-occlusion", "1.5"]) == 2
    assert "[0, 1]" in capsys.readouterr().err
