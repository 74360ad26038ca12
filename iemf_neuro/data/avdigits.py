"""AV-Digits: a spoken FSDD digit paired with a handwritten scikit-learn digit of the same class.

``load_split`` decodes the shipped file once per process, applies the corruption or the per-sample training
degradation (deterministic per seed, split and sample index), computes the normalised log-mel features and caches
the resulting tensors, so repeated calls cost a tensor copy.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from iemf_neuro.errors import UserError

from . import features
from .build import FILE_VERSION, SPLITS
from .corruption import Corruption, TrainingDegradation, corrupt_audio, corrupt_images

DEFAULT_PATH = Path(__file__).with_name("avdigits.npz")
CLASS_NAMES = [str(d) for d in range(10)]
IMAGE_SCALE = 16.0  # load_digits pixels are 0..16
_FILES: dict[Path, dict[str, np.ndarray]] = {}
_SPLITS: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = OrderedDict()
_CACHE_SIZE = 12


class AVDigits(Dataset):
    """One split: ``ds[i] -> (audio [32, 32] mel x frames, image [8, 8], label)``; all float32 in [0, 1] but label.

    ``audio``, ``image`` and ``labels`` hold the whole split (corruption or degradation applied) for batching
    without a DataLoader.
    """

    class_names = CLASS_NAMES

    def __init__(self, split: str, audio: torch.Tensor, image: torch.Tensor, labels: torch.Tensor,
                 corruption: Corruption, seed: int, degradation: TrainingDegradation | None = None) -> None:
        self.split = split
        self.audio = audio  # float32 [N, 32, 32]
        self.image = image  # float32 [N, 8, 8]
        self.labels = labels  # int64 [N]
        self.corruption = corruption
        self.seed = seed
        self.degradation = degradation

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.audio[i], self.image[i], self.labels[i]


def _check_split(split: str, seed: int) -> None:
    if split not in SPLITS:
        raise UserError(f"unknown AV-Digits split {split!r}; choose one of {', '.join(SPLITS)}")
    if int(seed) < 0:
        raise UserError(f"corruption seed must be >= 0, got {seed}; pass e.g. --seed 0")


def load_file(path: str | Path | None = None) -> dict[str, np.ndarray]:
    """The arrays of an AV-Digits file (default: the shipped one), read once per process."""
    path = Path(path) if path is not None else DEFAULT_PATH
    key = path.resolve()
    if key not in _FILES:
        if not path.is_file():
            raise UserError(f"AV-Digits file {path} not found; run 'iemf-neuro data build-avdigits --fsdd "
                            f"DIR --out {path}' with FSDD's recordings folder")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as exc:
            raise UserError(f"{path} is not a readable AV-Digits file ({exc}); rebuild it with "
                            "'iemf-neuro data build-avdigits'") from exc
        if int(arrays.get("file_version", -1)) != FILE_VERSION or "test_image" not in arrays:
            raise UserError(f"{path} is not a complete AV-Digits file of version {FILE_VERSION}; rebuild it with "
                            "'iemf-neuro data build-avdigits --fsdd DIR'")
        _FILES[key] = arrays
    return _FILES[key]


def _clips(arrays: dict[str, np.ndarray], split: str) -> tuple[list[np.ndarray], np.ndarray]:
    lengths = arrays[f"{split}_audio_length"]
    codes = np.split(arrays[f"{split}_audio_ulaw"], np.cumsum(lengths)[:-1])
    return [features.ulaw_decode(c) for c in codes], lengths


def waveforms(split: str, corruption: Corruption | None = None, seed: int = 0,
              path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """float32 [N, WINDOW] looped model-input waveforms (corruption applied) and each recording's length."""
    _check_split(split, seed)
    clips, lengths = _clips(load_file(path), split)
    waves = features.loop_to_window(clips)
    return corrupt_audio(waves, [corruption or Corruption()] * len(waves), seed, split), lengths


def _plan(n: int, corruption: Corruption, degradation: TrainingDegradation | None, seed: int,
          split: str) -> tuple[list[Corruption], np.ndarray, np.ndarray]:
    """Per-sample corruptions and audio / image drop masks."""
    if degradation is None:
        return [corruption] * n, np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    draws = [degradation.draw(seed, split, i) for i in range(n)]
    return ([d.corruption for d in draws], np.array([d.drop_audio for d in draws], dtype=bool),
            np.array([d.drop_image for d in draws], dtype=bool))


def _build_split(split: str, corruption: Corruption, degradation: TrainingDegradation | None, seed: int,
                 path: str | Path | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    arrays = load_file(path)
    clips, _ = _clips(arrays, split)
    corruptions, drop_audio, drop_image = _plan(len(clips), corruption, degradation, seed, split)
    audio = features.audio_features(corrupt_audio(features.loop_to_window(clips), corruptions, seed, split))
    audio[drop_audio] = 0.0
    images = corrupt_images(arrays[f"{split}_image"].astype(np.float32) / IMAGE_SCALE, corruptions, seed, split)
    images[drop_image] = 0.0
    return (torch.from_numpy(audio), torch.from_numpy(np.ascontiguousarray(images)),
            torch.from_numpy(arrays[f"{split}_label"].astype(np.int64)))


def load_split(split: str, corruption: Corruption | None = None, seed: int = 0, path: str | Path | None = None,
               degradation: TrainingDegradation | None = None) -> AVDigits:
    """One AV-Digits split with ``corruption`` (evaluation) or ``degradation`` (training) applied per sample,
    deterministically for (seed, split, sample index)."""
    _check_split(split, seed)
    if degradation is not None and corruption is not None and not corruption.is_identity:
        raise UserError("pass either a corruption (evaluation) or a training degradation to load_split, not both")
    corruption = corruption or Corruption()
    key = (split, corruption, degradation, int(seed), (Path(path) if path is not None else DEFAULT_PATH).resolve())
    if key not in _SPLITS:
        _SPLITS[key] = _build_split(split, corruption, degradation, int(seed), path)
        if len(_SPLITS) > _CACHE_SIZE:
            _SPLITS.popitem(last=False)
    _SPLITS.move_to_end(key)
    audio, image, labels = _SPLITS[key]
    return AVDigits(split, audio.clone(), image.clone(), labels.clone(), corruption, int(seed), degradation)


def summary(path: str | Path | None = None, corruption: Corruption | None = None, seed: int = 0,
            splits: tuple[str, ...] = SPLITS) -> dict:
    """Split sizes, class balance, feature shapes and value ranges (what ``iemf-neuro data info`` prints)."""
    out = {}
    for split in splits:
        ds = load_split(split, corruption, seed, path)
        out[split] = {
            "samples": len(ds),
            "per_class": torch.bincount(ds.labels, minlength=len(CLASS_NAMES)).tolist(),
            "audio_shape": list(ds.audio.shape[1:]), "image_shape": list(ds.image.shape[1:]),
            "audio_range": [float(ds.audio.min()), float(ds.audio.max())],
            "image_range": [float(ds.image.min()), float(ds.image.max())],
            "recordings": int(len(np.unique(recording_ids(split, path)))),
            "images": int(len(np.unique(load_file(path)[f"{split}_image_index"]))),
        }
    return out


def recording_ids(split: str, path: str | Path | None = None) -> np.ndarray:
    """A unique integer per FSDD recording: digit * 10^4 + speaker * 100 + index."""
    arrays = load_file(path)
    return (arrays[f"{split}_label"] * 10_000 + arrays[f"{split}_speaker"].astype(np.int64) * 100
            + arrays[f"{split}_recording"].astype(np.int64))
