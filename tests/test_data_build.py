"""The AV-Digits builder: it reproduces the shipped file from FSDD's WAVs, and rejects bad input cleanly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from iemf_neuro.cli import main
from iemf_neuro.data import avdigits, features
from iemf_neuro.data.build import SPLITS, build_arrays, build_avdigits
from iemf_neuro.errors import UserError

FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"


def _rows(arrays: dict, split: str, keep: np.ndarray) -> dict:
    lengths = arrays[f"{split}_audio_length"]
    codes = np.split(arrays[f"{split}_audio_ulaw"], np.cumsum(lengths)[:-1])
    per_row = {k: arrays[f"{split}_{k}"][keep] for k in
               ("label", "speaker", "recording", "audio_length", "image_index", "image")}
    per_row["audio_ulaw"] = np.concatenate([c for c, k in zip(codes, keep) if k])
    return per_row


def test_builder_reproduces_the_shipped_rows_of_one_speaker():
    shipped = avdigits.load_file()
    built = build_arrays(FSDD, speakers=("theo",))
    theo = list(shipped["speakers"]).index("theo")
    for key in ("file_version", "build_config", "speakers", "digits_split"):
        assert np.array_equal(built[key], shipped[key]), key
    for split in SPLITS:
        keep = shipped[f"{split}_speaker"] == theo
        assert keep.sum() == len(built[f"{split}_label"]) > 0
        expected = _rows(shipped, split, keep)
        for key, value in expected.items():
            assert np.array_equal(built[f"{split}_{key}"], value), (split, key)
    assert "mel_db_high" not in built  # scale constants need the whole train split


@pytest.mark.slow
def test_full_build_is_bit_identical_to_the_shipped_file(tmp_path):
    out = build_avdigits(FSDD, tmp_path / "avdigits.npz")
    with np.load(out) as built, np.load(avdigits.DEFAULT_PATH) as shipped:
        assert built.files == shipped.files
        for key in shipped.files:
            assert np.array_equal(built[key], shipped[key]), key
    assert out.read_bytes() == avdigits.DEFAULT_PATH.read_bytes()
    assert (tmp_path / "avdigits.npz.provenance.json").is_file()


def test_shipped_file_is_small():
    assert avdigits.DEFAULT_PATH.stat().st_size < 15e6


def test_max_energy_crop_and_centring():
    pcm = np.zeros(10_000, dtype=np.int16)
    pcm[6000:6500] = 1000
    crop = features.crop_max_energy(pcm, window=1000)
    assert len(crop) == 1000 and int(np.abs(crop).sum()) == 500 * 1000
    short = np.full(300, 16384, dtype=np.int16)
    window = features.place_in_window([short], window=1000)[0]
    assert np.flatnonzero(window).tolist() == list(range(350, 650)) and window[350] == 0.5
    assert features.active_slice(300, 1000) == slice(350, 650)


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
