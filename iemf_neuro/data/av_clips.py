"""CREMA-D and Kinetics-Sounds in the preprocessed layout of the OGM-GE / IEMF public code.

One sample = (log-STFT of the clip's audio, one RGB frame, label):

    audio:  x = resample(wav, 22050 Hz); x = tile(x)[:3 s] (repeat until 66,150 samples); x = clip(x, -1, 1)
            A = log(|STFT(x; n_fft=512, hop=353, hann, centred, zero padding)| + 1e-7)     -> [1, 257, 188]
    frame:  one of the clip's frames extracted at 1 fps; eval: the middle one, resized to 224 x 224;
            train (augment=True): a uniformly random one, RandomResizedCrop(224) + horizontal flip;
            then ImageNet normalisation (mean 0.485 0.456 0.406, std 0.229 0.224 0.225)  -> [3, 224, 224]

Directory tree (see docs/data.md), e.g. for CREMA-D:

    ROOT/train.csv, ROOT/test.csv    rows "clip_id,label" (no header), e.g. "1001_DFA_ANG_XX,ANG"
    ROOT/AudioWAV/{clip_id}.wav
    ROOT/Image-01-FPS/{clip_id}/*.jpg (or .png), sorted by name = time order
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from iemf_neuro.errors import UserError

SAMPLE_RATE = 22050  # Hz
SECONDS = 3
N_FFT = 512
HOP = 353
LOG_EPS = 1e-7
FRAME_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class ClipLayout:
    """Where a dataset keeps its preprocessed files, relative to its root, and its class order."""

    name: str  # dataset name used in messages
    audio_dir: str  # folder of {clip_id}.wav
    frames_dir: str  # folder of {clip_id}/ frame folders
    classes: tuple[str, ...]  # label names in class-index order; empty: read ROOT/classes.txt
    splits: tuple[str, ...] = ("train", "test")  # ROOT/{split}.csv


CREMAD = ClipLayout("CREMA-D", "AudioWAV", "Image-01-FPS", ("NEU", "HAP", "SAD", "FEA", "DIS", "ANG"))
KINETICS_SOUNDS = ClipLayout("Kinetics-Sounds", "audio", "Image-01-FPS", (), ("train", "val", "test"))


def log_stft(wave: np.ndarray) -> np.ndarray:
    """float [n] waveform at 22,050 Hz -> float32 [257, 188] log-magnitude STFT of its 3 s tiling."""
    import librosa

    length = SAMPLE_RATE * SECONDS
    repeats = -(-length // len(wave)) if len(wave) else 0  # ceil: enough copies to fill 3 s
    x = np.tile(wave, repeats)[:length] if len(wave) else np.zeros(length)
    x = np.clip(x, -1.0, 1.0)
    spec = librosa.stft(x.astype(np.float32), n_fft=N_FFT, hop_length=HOP, center=True, pad_mode="constant")
    return np.log(np.abs(spec) + LOG_EPS).astype(np.float32)


def _read_classes(root: Path, layout: ClipLayout) -> tuple[str, ...]:
    if layout.classes:
        return layout.classes
    path = root / "classes.txt"
    if not path.is_file():
        raise UserError(f"{path} is missing; write the {layout.name} class names there, one per line, in "
                        "class-index order")
    names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    if len(set(names)) != len(names) or not names:
        raise UserError(f"{path} must list distinct class names, one per line")
    return names


class AVClips(Dataset):
    """``ds[i] -> (audio [1, 257, 188], frame [3, 224, 224], label)`` for one split of a ClipLayout tree."""

    def __init__(self, root: str | Path, split: str, layout: ClipLayout, augment: bool = False) -> None:
        self.root = Path(root)
        self.layout = layout
        self.augment = augment
        if split not in layout.splits:
            raise UserError(f"unknown {layout.name} split {split!r}; choose one of {', '.join(layout.splits)}")
        if not self.root.is_dir():
            raise UserError(f"{layout.name} root {self.root} does not exist; preprocess the dataset into it "
                            "as docs/data.md describes")
        self.class_names = list(_read_classes(self.root, layout))
        index = {name: i for i, name in enumerate(self.class_names)}
        csv_path = self.root / f"{split}.csv"
        if not csv_path.is_file():
            raise UserError(f"split file {csv_path} is missing; put the {layout.name} {split} list there "
                            "(rows 'clip_id,label')")
        self.clips: list[tuple[Path, Path, int]] = []
        with csv_path.open(encoding="utf-8-sig", newline="") as f:
            for line, row in enumerate(csv.reader(f), start=1):
                if not row:
                    continue
                if len(row) < 2 or row[1] not in index:
                    raise UserError(f"{csv_path} line {line}: expected 'clip_id,label' with a label in "
                                    f"{self.class_names}, got {row}; fix the split file")
                self.clips.append(self._locate(row[0], index[row[1]]))

    def _locate(self, clip_id: str, label: int) -> tuple[Path, Path, int]:
        audio = self.root / self.layout.audio_dir / f"{clip_id}.wav"
        frames = self.root / self.layout.frames_dir / clip_id
        if not audio.is_file():
            raise UserError(f"audio file {audio} is missing; extract the clip's audio track to it as WAV, or "
                            "drop the clip from the split file")
        if not frames.is_dir() or not any(p.suffix.lower() in FRAME_SUFFIXES for p in frames.iterdir()):
            raise UserError(f"no frames in {frames}; extract the clip's frames at 1 fps into it as .jpg/.png, or "
                            "drop the clip from the split file")
        return audio, frames, label

    def __len__(self) -> int:
        return len(self.clips)

    def _frame(self, folder: Path) -> torch.Tensor:
        from PIL import Image
        from torchvision import transforms

        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        pick = int(torch.randint(len(files), ())) if self.augment else len(files) // 2
        steps = ([transforms.RandomResizedCrop(FRAME_SIZE), transforms.RandomHorizontalFlip()] if self.augment
                 else [transforms.Resize((FRAME_SIZE, FRAME_SIZE))])
        pipeline = transforms.Compose([*steps, transforms.ToTensor(),
                                       transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
        with Image.open(files[pick]) as image:
            return pipeline(image.convert("RGB"))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        import librosa

        audio_path, frames, label = self.clips[i]
        wave, _ = librosa.load(audio_path, sr=SAMPLE_RATE, mono=True)
        audio = torch.from_numpy(log_stft(wave)).unsqueeze(0)
        return audio, self._frame(frames), torch.tensor(label, dtype=torch.int64)


def load_cremad(root: str | Path, split: str, augment: bool = False) -> AVClips:
    """CREMA-D (6 emotions, OGM-GE class order NEU HAP SAD FEA DIS ANG), splits train / test."""
    return AVClips(root, split, CREMAD, augment)


def load_kinetics_sounds(root: str | Path, split: str, augment: bool = False) -> AVClips:
    """Kinetics-Sounds (class names from ROOT/classes.txt), splits train / val / test."""
    return AVClips(root, split, KINETICS_SOUNDS, augment)
