"""Per-modality corruptions for inverse-effectiveness studies: small callable transforms, composed by Corruption.

Every transform takes one sample and a numpy Generator; the Generator is derived from (seed, split, sample
index, transform kind), so a sample's corruption never depends on batch order or on the other transforms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from iemf_neuro.errors import UserError

from .features import active_slice

_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
_STREAM_AUDIO_NOISE, _STREAM_IMAGE_NOISE, _STREAM_OCCLUSION = 0, 1, 2


def sample_rng(seed: int, split: str, index: int, stream: int) -> np.random.Generator:
    """The Generator for one (seed, split, sample index, transform) — independent of everything else."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _SPLIT_IDS[split], int(index), stream]))


@dataclass(frozen=True)
class AudioWhiteNoise:
    """Additive white Gaussian noise at an exact SNR over the recording's own samples.

        SNR_dB = 10 log10( mean(x[active]^2) / mean(n^2) ),  n = g z / rms(z), z ~ N(0, 1) over the whole window

    ``active`` is where the recording sits in the zero-padded window, so padding does not dilute the signal power.
    """

    snr_db: float  # requested SNR in dB

    def __post_init__(self) -> None:
        if not math.isfinite(self.snr_db):
            raise UserError(f"audio SNR must be a finite number of dB, got {self.snr_db}; pass e.g. --audio-snr-db 0")

    def __call__(self, wave: np.ndarray, rng: np.random.Generator, active: slice) -> np.ndarray:
        signal_power = float(np.mean(wave[active].astype(np.float64) ** 2))
        z = rng.standard_normal(wave.shape)
        noise = z * math.sqrt(signal_power / 10.0 ** (self.snr_db / 10.0) / np.mean(z ** 2))
        return (wave + noise).astype(np.float32)


@dataclass(frozen=True)
class ImageGaussianNoise:
    """x' = clip(x + std * z, 0, 1), z ~ N(0, 1) per pixel; pixels on the [0, 1] scale."""

    std: float  # noise standard deviation on [0, 1] pixels

    def __post_init__(self) -> None:
        if not (math.isfinite(self.std) and self.std >= 0):
            raise UserError(f"image noise std must be a finite number >= 0, got {self.std}; pass e.g. "
                            "--image-noise-std 0.3")

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.clip(image + self.std * rng.standard_normal(image.shape), 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class ImageOcclusion:
    """Zero one axis-aligned rectangle covering ``fraction`` of the image, at a uniformly random position.

    For an H x W image: h = round(H sqrt(f)), w = min(W, round(f H W / h)) (h = w = 0 when f H W < 0.5), i.e. the
    nearest rectangle of near-square shape; ``patch_shape`` says which one was used.
    """

    fraction: float  # fraction of the image area to blank, in [0, 1]

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fraction) and 0.0 <= self.fraction <= 1.0):
            raise UserError(f"image occlusion must be a fraction in [0, 1], got {self.fraction}; pass e.g. "
                            "--image-occlusion 0.25")

    def patch_shape(self, height: int, width: int) -> tuple[int, int]:
        h = min(height, round(height * math.sqrt(self.fraction)))
        if h == 0:
            return 0, 0
        return h, min(width, round(self.fraction * height * width / h))

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        height, width = image.shape[-2:]
        h, w = self.patch_shape(height, width)
        top = int(rng.integers(0, height - h + 1))
        left = int(rng.integers(0, width - w + 1))
        out = image.copy()
        out[..., top:top + h, left:left + w] = 0.0
        return out


@dataclass(frozen=True)
class Corruption:
    """What to do to each modality; the identity when every field is left at its default.

    audio_snr_db: white noise added to the waveform before the features are computed (None: clean audio).
    image_noise_std: Gaussian pixel noise std on [0, 1] (then clipped). image_occlusion: blanked area fraction.
    Order for images: noise, then occlusion.
    """

    audio_snr_db: float | None = None  # dB, None = clean
    image_noise_std: float = 0.0  # [0, 1] pixel units
    image_occlusion: float = 0.0  # fraction of the image area

    def __post_init__(self) -> None:
        self.audio_transforms()
        self.image_transforms()

    def audio_transforms(self) -> list[AudioWhiteNoise]:
        return [] if self.audio_snr_db is None else [AudioWhiteNoise(float(self.audio_snr_db))]

    def image_transforms(self) -> list[tuple[int, ImageGaussianNoise | ImageOcclusion]]:
        """(rng stream, transform) pairs, in application order; identities are left out."""
        noise = ImageGaussianNoise(float(self.image_noise_std))
        occlusion = ImageOcclusion(float(self.image_occlusion))
        out: list[tuple[int, ImageGaussianNoise | ImageOcclusion]] = []
        if noise.std > 0:
            out.append((_STREAM_IMAGE_NOISE, noise))
        if occlusion.fraction > 0:
            out.append((_STREAM_OCCLUSION, occlusion))
        return out

    @property
    def is_identity(self) -> bool:
        return not self.audio_transforms() and not self.image_transforms()


def corrupt_audio(waves: np.ndarray, lengths: np.ndarray, corruption: Corruption, seed: int,
                  split: str) -> np.ndarray:
    """Apply the audio transforms to float32 [N, WINDOW] waveforms whose recordings have ``lengths`` samples."""
    transforms = corruption.audio_transforms()
    if not transforms:
        return waves
    out = np.empty_like(waves)
    for i, (wave, length) in enumerate(zip(waves, lengths)):
        rng = sample_rng(seed, split, i, _STREAM_AUDIO_NOISE)
        for transform in transforms:
            wave = transform(wave, rng, active_slice(int(length), len(wave)))
        out[i] = wave
    return out


def corrupt_images(images: np.ndarray, corruption: Corruption, seed: int, split: str) -> np.ndarray:
    """Apply the image transforms to float32 [N, H, W] images in [0, 1]."""
    transforms = corruption.image_transforms()
    if not transforms:
        return images
    out = images.copy()
    for i in range(len(out)):
        for stream, transform in transforms:
            out[i] = transform(out[i], sample_rng(seed, split, i, stream))
    return out
