"""CREMA-D / Kinetics-Sounds loaders on a tiny tree written by the test itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import wavfile

from iemf_neuro.data import load_cremad, load_kinetics_sounds
from iemf_neuro.data.av_clips import log_stft
from iemf_neuro.errors import UserError


def _clip(root: Path, audio_dir: str, clip_id: str, seconds: float, rate: int, frames: int, color: int) -> None:
    (root / audio_dir).mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    wavfile.write(root / audio_dir / f"{clip_id}.wav", rate, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    folder = root / "Image-01-FPS" / clip_id
    folder.mkdir(parents=True)
    for k in range(frames):
        pixels = np.full((48, 64, 3), (color + 40 * k) % 256, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"frame_{k:04d}.{'png' if k % 2 else 'jpg'}")


@pytest.fixture
def cremad(tmp_path: Path) -> Path:
    _clip(tmp_path, "AudioWAV", "1001_DFA_ANG_XX", 2.2, 16000, 3, 10)
    _clip(tmp_path, "AudioWAV", "1002_IEO_HAP_HI", 0.4, 44100, 1, 200)
    (tmp_path / "train.csv").write_text("1001_DFA_ANG_XX,ANG\n1002_IEO_HAP_HI,HAP\n")
    (tmp_path / "test.csv").write_text("1002_IEO_HAP_HI,HAP\n")
    return tmp_path


def test_cremad_samples_have_the_reference_shapes(cremad):
    ds = load_cremad(cremad, "train")
    assert len(ds) == 2 and ds.class_names == ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"]
    audio, frame, label = ds[0]
    assert audio.shape == (1, 257, 188) and audio.dtype == torch.float32
    assert frame.shape == (3, 224, 224) and frame.dtype == torch.float32
    assert int(label) == 5 and int(ds[1][2]) == 1
    # the 440 Hz tone peaks in its STFT bin (22050 / 512 Hz per bin), far above the log floor
    assert int(audio[0, :, 50].argmax()) == round(440 / (22050 / 512))
    # eval picks the middle frame (index 1 of 3: grey 50) and normalises with ImageNet statistics
    expected = (50 / 255 - 0.485) / 0.229
    assert abs(float(frame[0].mean()) - expected) < 0.05


def test_short_clips_are_tiled_to_three_seconds():
    wave = np.linspace(-0.5, 0.5, 10_000)
    spec = log_stft(wave)
    assert spec.shape == (257, 188)
    assert np.isfinite(spec).all() and spec[:, -3:].max() > np.log(1e-7) + 5  # no silent tail


def test_augmented_samples_keep_shapes(cremad):
    torch.manual_seed(0)
    audio, frame, _ = load_cremad(cremad, "train", augment=True)[0]
    assert audio.shape == (1, 257, 188) and frame.shape == (3, 224, 224)


def test_kinetics_sounds_reads_its_class_list(tmp_path):
    _clip(tmp_path, "audio", "abc_000010_000020", 1.5, 22050, 2, 90)
    (tmp_path / "classes.txt").write_text("playing piano\nchopping wood\n")
    (tmp_path / "val.csv").write_text("abc_000010_000020,chopping wood\n")
    ds = load_kinetics_sounds(tmp_path, "val")
    assert ds.class_names == ["playing piano", "chopping wood"] and int(ds[0][2]) == 1


def test_missing_pieces_are_user_errors_naming_the_path(cremad, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_cremad(tmp_path / "nowhere", "train")
    with pytest.raises(UserError, match="choose one of train, test"):
        load_cremad(cremad, "val")
    (cremad / "AudioWAV" / "1002_IEO_HAP_HI.wav").unlink()
    with pytest.raises(UserError, match="1002_IEO_HAP_HI.wav is missing"):
        load_cremad(cremad, "test")
    (cremad / "test.csv").write_text("1001_DFA_ANG_XX,ANGRY\n")
    with pytest.raises(UserError, match="line 1"):
        load_cremad(cremad, "test")
    (cremad / "test.csv").unlink()
    with pytest.raises(UserError, match="test.csv is missing"):
        load_cremad(cremad, "test")
    for f in (cremad / "Image-01-FPS" / "1001_DFA_ANG_XX").iterdir():
        f.unlink()
    with pytest.raises(UserError, match="no frames in"):
        load_cremad(cremad, "train")
    with pytest.raises(UserError, match="classes.txt is missing"):
        load_kinetics_sounds(cremad, "train")
