"""Build the shipped AV-Digits file from FSDD's WAVs and scikit-learn's digits, bit-identically every time.

Splits (no recording and no image in two splits):
    audio   FSDD official split by recording index: 0-4 test, 5-9 val (carved from FSDD's train), 10-49 train
    images  per class, a fixed permutation (seed IMAGE_SEED): first round(20%) test, next round(10%) val, rest train
Pairing: within (split, class) the recordings, in a fixed random order (seed PAIR_SEED), take the class's images of
that split in a fixed random order, cycling, so every image is used floor or ceil(#recordings / #images) times.

The file is a zip of .npy members written in a fixed key order with fixed timestamps (LZMA-compressed), so the same
inputs give the same bytes; machine-dependent provenance goes to a JSON sidecar instead.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iemf_neuro.errors import UserError
from iemf_neuro.progress import progress
from iemf_neuro.provenance import atomic_path, provenance, write_json_atomic

from . import features

FILE_VERSION = 2  # 2: looped window, per-utterance normalisation (no stored dB scale)
SPLITS = ("train", "val", "test")
TEST_RECORDINGS = range(0, 5)
VAL_RECORDINGS = range(5, 10)
IMAGE_SEED = 0
PAIR_SEED = 0
IMAGE_TEST_FRACTION = 0.2
IMAGE_VAL_FRACTION = 0.1
NUM_CLASSES = 10
_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


@dataclass(frozen=True)
class Recording:
    digit: int  # spoken digit = class label
    speaker: str  # FSDD speaker name
    index: int  # FSDD recording index, 0-49
    path: Path  # the WAV file

    @property
    def split(self) -> str:
        if self.index in TEST_RECORDINGS:
            return "test"
        return "val" if self.index in VAL_RECORDINGS else "train"


def build_config() -> dict:
    """Everything that determines the file's content (stored inside it)."""
    return {
        "file_version": FILE_VERSION, "sample_rate": features.SAMPLE_RATE, "window": features.WINDOW,
        "crop": "max-energy window; shorter clips looped (tiled and cut)", "storage": "G.711 mu-law uint8",
        "n_fft": features.N_FFT, "hop": features.HOP, "n_mels": features.N_MELS, "frames": features.FRAMES,
        "db_floor": features.DB_FLOOR, "normalisation": "per-utterance standardised dB, clipped",
        "eps_db": features.EPS_DB, "z_low": features.Z_LOW, "z_span": features.Z_SPAN,
        "test_recordings": [TEST_RECORDINGS.start, TEST_RECORDINGS.stop - 1],
        "val_recordings": [VAL_RECORDINGS.start, VAL_RECORDINGS.stop - 1],
        "image_seed": IMAGE_SEED, "image_test_fraction": IMAGE_TEST_FRACTION,
        "image_val_fraction": IMAGE_VAL_FRACTION, "pair_seed": PAIR_SEED,
        "sources": {"audio": "Free Spoken Digit Dataset (CC BY-SA 4.0)",
                    "images": "sklearn.datasets.load_digits (UCI Optical Recognition of Handwritten Digits)"},
    }


def scan_fsdd(fsdd_dir: str | Path) -> list[Recording]:
    """FSDD's recordings, sorted by (digit, speaker, index); accepts the dataset root or its recordings/ folder."""
    root = Path(fsdd_dir)
    if not root.is_dir():
        raise UserError(f"FSDD directory {root} does not exist; pass --fsdd pointing at FSDD's recordings/ folder")
    folder = root / "recordings" if (root / "recordings").is_dir() else root
    wavs = sorted(folder.glob("*.wav"))
    if not wavs:
        raise UserError(f"no WAV files in {folder}; pass --fsdd pointing at FSDD's recordings/ folder")
    out = []
    for path in wavs:
        match = _NAME.match(path.name)
        if match is None:
            raise UserError(f"{path} is not named {{digit}}_{{speaker}}_{{index}}.wav like FSDD's recordings; "
                            "remove it or point --fsdd at an unmodified FSDD recordings/ folder")
        out.append(Recording(int(match[1]), match[2], int(match[3]), path))
    return sorted(out, key=lambda r: (r.digit, r.speaker, r.index))


def read_recording(path: Path) -> np.ndarray:
    """int16 mono PCM of one FSDD WAV; anything else is a UserError."""
    from scipy.io import wavfile

    try:
        rate, data = wavfile.read(path)
    except (ValueError, OSError) as exc:
        raise UserError(f"cannot read {path} as a WAV file ({exc}); replace it with FSDD's original") from exc
    if rate != features.SAMPLE_RATE:
        raise UserError(f"{path} is sampled at {rate} Hz, AV-Digits needs FSDD's {features.SAMPLE_RATE} Hz; "
                        "use the original FSDD recordings (do not resample them)")
    if data.dtype != np.int16 or data.ndim != 1 or len(data) == 0:
        raise UserError(f"{path} is not non-empty 16-bit mono PCM; use the original FSDD recordings")
    return data


def image_split(targets: np.ndarray) -> np.ndarray:
    """Split id per image (0 train, 1 val, 2 test), per class from a fixed permutation."""
    out = np.zeros(len(targets), dtype=np.int8)
    for c in range(NUM_CLASSES):
        members = np.random.default_rng([IMAGE_SEED, c]).permutation(np.flatnonzero(targets == c))
        n_test = round(IMAGE_TEST_FRACTION * len(members))
        n_val = round(IMAGE_VAL_FRACTION * len(members))
        out[members[:n_test]] = SPLITS.index("test")
        out[members[n_test:n_test + n_val]] = SPLITS.index("val")
    return out


def pair_images(labels: np.ndarray, split: str, targets: np.ndarray, splits_of_images: np.ndarray) -> np.ndarray:
    """For each recording (in canonical order) of ``split``, the load_digits index of its image of the same class."""
    out = np.full(len(labels), -1, dtype=np.int64)
    split_id = SPLITS.index(split)
    for c in range(NUM_CLASSES):
        rows = np.flatnonzero(labels == c)
        if len(rows) == 0:
            continue
        pool = np.flatnonzero((targets == c) & (splits_of_images == split_id))
        rng = np.random.default_rng([PAIR_SEED, split_id, c])
        order = rng.permutation(len(rows))
        images = rng.permutation(pool)
        out[rows[order]] = images[np.arange(len(rows)) % len(images)]
    return out


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images.astype(np.uint8), digits.target.astype(np.int64)


def build_arrays(fsdd_dir: str | Path, speakers: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """The file's arrays, in their fixed order.

    ``speakers`` restricts the rows to those speakers (splits and pairing still come from the whole directory, so
    the rows equal the full build's rows).
    """
    recordings = scan_fsdd(fsdd_dir)
    digit_images, targets = _load_digits()
    splits_of_images = image_split(targets)
    names = sorted({r.speaker for r in recordings})
    arrays: dict[str, np.ndarray] = {
        "file_version": np.array(FILE_VERSION, dtype=np.int64),
        "build_config": np.array(json.dumps(build_config(), sort_keys=True)),
        "speakers": np.array(names),
        "digits_split": splits_of_images,
    }
    for split in SPLITS:
        rows = [r for r in recordings if r.split == split]
        labels = np.array([r.digit for r in rows], dtype=np.int64)
        image_index = pair_images(labels, split, targets, splits_of_images)
        keep = np.array([speakers is None or r.speaker in speakers for r in rows], dtype=bool)
        rows = [r for r, k in zip(rows, keep) if k]
        clips = [features.crop_max_energy(read_recording(r.path))
                 for r in progress(rows, desc=f"reading {split} WAVs", unit="wav")]
        codes = [features.ulaw_encode(c) for c in clips]
        arrays[f"{split}_label"] = labels[keep]
        arrays[f"{split}_speaker"] = np.array([names.index(r.speaker) for r in rows], dtype=np.int8)
        arrays[f"{split}_recording"] = np.array([r.index for r in rows], dtype=np.int8)
        arrays[f"{split}_audio_length"] = np.array([len(c) for c in codes], dtype=np.int32)
        arrays[f"{split}_audio_ulaw"] = np.concatenate(codes) if codes else np.zeros(0, np.uint8)
        arrays[f"{split}_image_index"] = image_index[keep]
        arrays[f"{split}_image"] = digit_images[image_index[keep]]
    return arrays


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """A .npz (readable by np.load) whose bytes depend only on ``arrays``: fixed order, fixed timestamps, LZMA."""
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w") as archive:
            for key, value in arrays.items():
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_LZMA
                info.external_attr = 0o644 << 16
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.asarray(value), allow_pickle=False)
                archive.writestr(info, buffer.getvalue())
        tmp.chmod(0o644)


def build_avdigits(fsdd_dir: str | Path, out: str | Path) -> Path:
    """Write the AV-Digits file to ``out`` (atomically) and its provenance to ``out`` + '.provenance.json'."""
    arrays = build_arrays(fsdd_dir)
    out = Path(out)
    write_npz(out, arrays)
    write_json_atomic(out.with_name(out.name + ".provenance.json"),
                      {**provenance(build_config()), "fsdd_dir": str(Path(fsdd_dir).resolve()),
                       "bytes": out.stat().st_size})
    return out
