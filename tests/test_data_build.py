"""The AV-Digits builder: it reproduces the shipped file from FSDD's WAVs, and rejects bad input cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import wavfile
from sklearn.datasets import load_digits

from pipeline.cli import main
from iemf_neuro.data import avdigits, features
from iemf_neuro.data.build import SPLITS, build_arrays, build_avdigits
from iemf_neuro.errors import UserError

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "fsdd"  # 60 FSDD WAVs: george and theo, indices 0/5/10


def _shipped_row(shipped: dict, split: str, speaker: str, digit: int, index: int) -> dict:
    """The shipped file's row for one recording: its labels, image and mu-law codes."""
    names = list(shipped["speakers"])
    match = np.flatnonzero((shipped[f"{split}_speaker"] == names.index(speaker))
                           & (shipped[f"{split}_label"] == digit) & (shipped[f"{split}_recording"] == index))
    assert len(match) == 1, (split, speaker, digit, index)
    row = int(match[0])
    lengths = shipped[f"{split}_audio_length"]
    start = int(lengths[:row].sum())
    return {"audio_length": int(lengths[row]), "audio_ulaw": shipped[f"{split}_audio_ulaw"][start:start + lengths[row]]}


def test_builder_reproduces_the_shipped_audio_of_the_fixture_recordings():
    shipped = avdigits.load_file()
    built = build_arrays(FIXTURE)
    for key in ("file_version", "build_config", "digits_split"):
        assert np.array_equal(built[key], shipped[key]), key
    assert built["speakers"].tolist() == ["george", "theo"]
    digit_targets = load_digits().target
    for split, index in zip(SPLITS, (10, 5, 0)):
        assert built[f"{split}_recording"].tolist() == [index] * 20
        assert built[f"{split}_label"].tolist() == [d for d in range(10) for _ in range(2)]
        codes = np.split(built[f"{split}_audio_ulaw"], np.cumsum(built[f"{split}_audio_length"])[:-1])
        for row, (digit, speaker) in enumerate(zip(built[f"{split}_label"], built[f"{split}_speaker"])):
            expected = _shipped_row(shipped, split, str(built["speakers"][speaker]), int(digit), index)
            assert int(built[f"{split}_audio_length"][row]) == expected["audio_length"]
            assert np.array_equal(codes[row], expected["audio_ulaw"]), (split, row)
        images = built[f"{split}_image_index"]  # paired with an image of the same digit, from the same split
        assert np.array_equal(digit_targets[images], built[f"{split}_label"])
        assert np.all(built["digits_split"][images] == SPLITS.index(split))


def test_fixture_build_is_byte_identical_twice_and_loads(tmp_path):
    first = build_avdigits(FIXTURE, tmp_path / "a" / "avdigits.npz")
    second = build_avdigits(FIXTURE, tmp_path / "b" / "avdigits.npz")
    assert first.read_bytes() == second.read_bytes()
    record = json.loads((tmp_path / "a" / "avdigits.npz.provenance.json").read_text())
    assert record["bytes"] == first.stat().st_size and record["fsdd_dir"] == str(FIXTURE)
    split = avdigits.load_split("test", path=first)
    assert len(split) == 20 and torch.isfinite(split.audio).all() and split.audio.max() > 0


@pytest.mark.slow
def test_full_build_is_bit_identical_to_the_shipped_file(full_fsdd, tmp_path):
    out = build_avdigits(full_fsdd, tmp_path / "avdigits.npz")
    with np.load(out) as built, np.load(avdigits.DEFAULT_PATH) as shipped:
        assert built.files == shipped.files
        for key in shipped.files:
            assert np.array_equal(built[key], shipped[key]), key
    assert out.read_bytes() == avdigits.DEFAULT_PATH.read_bytes()
    assert (tmp_path / "avdigits.npz.provenance.json").is_file()


def test_shipped_file_is_small():
    assert avdigits.DEFAULT_PATH.stat().st_size < 15e6


def test_max_energy_crop_and_looping_fills_the_window():
    pcm = np.zeros(10_000, dtype=np.int16)
    pcm[6000:6500] = 1000
    crop = features.crop_max_energy(pcm, window=1000)
    assert len(crop) == 1000 and int(np.abs(crop).sum()) == 500 * 1000
    short = np.arange(1, 301, dtype=np.int16) * 100
    window = features.loop_to_window([short, crop], window=1000)
    assert window.dtype == np.float32 and np.all(window[0] != 0)  # no padding left
    assert np.array_equal(window[0] * 32768, np.concatenate([short, short, short, short[:100]]))
    assert np.array_equal(window[1] * 32768, crop)  # a full-length clip is unchanged


def test_ulaw_matches_g711_decoding_and_round_trips():
    import audioop  # the stdlib reference implementation (Python 3.10, as pinned)

    codes = np.arange(256, dtype=np.uint8)
    reference = np.frombuffer(audioop.ulaw2lin(codes.tobytes(), 2), dtype=np.int16)
    assert np.array_equal(features.ulaw_decode(codes), reference)
    pcm = np.arange(-32768, 32768, 7, dtype=np.int16)
    decoded = features.ulaw_decode(features.ulaw_encode(pcm)).astype(np.float64)
    error = np.abs(decoded - pcm)
    assert np.all(error <= np.maximum(0.07 * np.abs(pcm.astype(np.float64)), 8))  # ~ 2^-4 relative steps
    assert np.array_equal(features.ulaw_encode(features.ulaw_decode(codes[codes != 0x7F])), codes[codes != 0x7F])


def _write_wav(path: Path, rate: int = 8000, n: int = 4000) -> None:
    wavfile.write(path, rate, (np.sin(np.arange(n) / 5.0) * 8000).astype(np.int16))


def test_bad_fsdd_directories_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        build_arrays(tmp_path / "nope")
    with pytest.raises(UserError, match="no WAV files"):
        build_arrays(tmp_path)
    (tmp_path / "notes.wav").write_bytes(b"")
    with pytest.raises(UserError, match="is not named"):
        build_arrays(tmp_path)


def test_wrong_sample_rate_fails_and_writes_nothing(tmp_path):
    fsdd = tmp_path / "recordings"
    fsdd.mkdir()
    _write_wav(fsdd / "3_alice_0.wav")
    _write_wav(fsdd / "3_alice_12.wav", rate=16000)
    out = tmp_path / "out" / "avdigits.npz"
    with pytest.raises(UserError, match="16000 Hz"):
        build_avdigits(tmp_path, out)
    assert not out.exists() and (not out.parent.exists() or not any(out.parent.iterdir()))  # no temp file left
    assert main(["data", "build-avdigits", "--fsdd", str(tmp_path), "--out", str(out)]) == 2
    assert not out.exists()


def test_corrupt_wav_is_a_user_error(tmp_path):
    (tmp_path / "1_bob_3.wav").write_bytes(b"RIFF not really a wav")
    with pytest.raises(UserError, match="cannot read"):
        build_arrays(tmp_path)
