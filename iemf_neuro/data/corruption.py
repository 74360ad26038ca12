"""Per-modality corruptions for inverse-effectiveness studies: small callable transforms, composed by Corruption.

Every transform takes one sample and a numpy Generator; the Generator is derived from (seed, split, sample
index, transform kind), so a sample's corruption never depends on batch order or on the other transforms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from iemf_neuro.errors import UserError

_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
_STREAM_AUDIO_NOISE, _STREAM_IMAGE_NOISE, _STREAM_OCCLUSION, _STREAM_DEGRADATION = 0, 1, 2, 3


def sample_rng(seed: int, split: str, index: int, stream: int) -> np.random.Generator:
    """The Generator for one (seed, split, sample index, transform) — independent of everything else."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _SPLIT_IDS[split], int(index), stream]))


@dataclass(frozen=True)
class _AudioNoise:
    """Additive noise at an exact SNR over the looped window (every sample of which is the recording's own):

        SNR_dB = 10 log10( mean(w^2) / mean(n^2) ),  n = g s / rms(s),  s = the subclass's noise shape
    """

    snr_db: float  # requested SNR in dB

    def __post_init__(self) -> None:
        if not math.isfinite(self.snr_db):
            raise UserError(f"audio SNR must be a finite number of dB, got {self.snr_db}; pass e.g. --audio-snr-db 0")

    def shape(self, rng: np.random.Generator, length: int) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        signal_power = float(np.mean(wave.astype(np.float64) ** 2))
        s = self.shape(rng, len(wave))
        noise = s * math.sqrt(signal_power / 10.0 ** (self.snr_db / 10.0) / np.mean(s ** 2))
        return (wave + noise).astype(np.float32)


@dataclass(frozen=True)
class AudioWhiteNoise(_AudioNoise):
    """White Gaussian noise: s = z, z ~ N(0, 1) per sample (flat spectrum, the training noise)."""

    def shape(self, rng: np.random.Generator, length: int) -> np.ndarray:
        return rng.standard_normal(length)


@dataclass(frozen=True)
class AudioPinkNoise(_AudioNoise):
    """Pink (1/f power) noise, held out of training: s = irfft(rfft(z)[k] / sqrt(k)), DC bin k = 0 set to 0.

    Its power sits at low frequencies, where speech is, so it tests a mismatch the white-noise training never saw.
    """

    def shape(self, rng: np.random.Generator, length: int) -> np.ndarray:
        spectrum = np.fft.rfft(rng.standard_normal(length))
        spectrum[0] = 0.0
        spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
        return np.fft.irfft(spectrum, length)


AUDIO_NOISES = {"white": AudioWhiteNoise, "pink": AudioPinkNoise}


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

    audio_snr_db: noise added to the waveform before the features are computed (None: clean audio), of type
    audio_noise (AUDIO_NOISES: "white", or "pink", which training never uses). image_noise_std: Gaussian pixel
    noise std on [0, 1] (then clipped). image_occlusion: blanked area fraction. Order for images: noise, then
    occlusion.
    """

    audio_snr_db: float | None = None  # dB, None = clean
    image_noise_std: float = 0.0  # [0, 1] pixel units
    image_occlusion: float = 0.0  # fraction of the image area
    audio_noise: str = "white"  # a key of AUDIO_NOISES

    def __post_init__(self) -> None:
        if self.audio_noise not in AUDIO_NOISES:
            raise UserError(f"unknown audio noise {self.audio_noise!r}; choose one of {', '.join(AUDIO_NOISES)}")
        self.audio_transforms()
        self.image_transforms()

    def audio_transforms(self) -> list[_AudioNoise]:
        return [] if self.audio_snr_db is None else [AUDIO_NOISES[self.audio_noise](float(self.audio_snr_db))]

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


def _check_range(name: str, bounds: tuple[float, float], low: float, high: float, example: str) -> None:
    lo, hi = (float(b) for b in bounds)
    if not (math.isfinite(lo) and math.isfinite(hi) and low <= lo <= hi <= high):
        raise UserError(f"degradation {name} must be (low, high) with {low} <= low <= high <= {high}, got {bounds}; "
                        f"pass e.g. {name}={example}")


def _check_probability(name: str, p: float) -> None:
    if not (math.isfinite(p) and 0.0 <= p <= 1.0):
        raise UserError(f"degradation {name} must be a probability in [0, 1], got {p}; pass e.g. {name}=0.1")


@dataclass(frozen=True)
class SampleDegradation:
    """One sample's draw of a TrainingDegradation: its corruption and which modality (if any) is zeroed."""

    corruption: Corruption
    drop_audio: bool
    drop_image: bool


@dataclass(frozen=True)
class TrainingDegradation:
    """Random per-sample degradation of a training split, so the net sees every level it will be tested at.

    With u ~ U(0, 1) from the sample's own Generator (seed, split, index):
        u < clean_fraction                      the sample is untouched
        otherwise  SNR ~ U(audio_snr_db), white noise only; std ~ U(image_noise_std); f ~ U(image_occlusion);
                   then with probability audio_dropout the audio features are all zero, else with probability
                   image_dropout the image is all zero (never both: the label must stay recoverable)
    """

    clean_fraction: float = 0.3  # probability that a sample is left clean
    audio_snr_db: tuple[float, float] = (-5.0, 30.0)  # uniform SNR range in dB of the white noise
    image_noise_std: tuple[float, float] = (0.0, 0.5)  # uniform pixel-noise std range
    image_occlusion: tuple[float, float] = (0.0, 0.5)  # uniform occluded-area range
    audio_dropout: float = 0.15  # probability that a degraded sample loses its audio
    image_dropout: float = 0.15  # probability that a degraded sample loses its image

    def __post_init__(self) -> None:
        _check_probability("clean_fraction", self.clean_fraction)
        _check_range("audio_snr_db", self.audio_snr_db, -math.inf, math.inf, "(-5, 30)")
        _check_range("image_noise_std", self.image_noise_std, 0.0, math.inf, "(0, 0.5)")
        _check_range("image_occlusion", self.image_occlusion, 0.0, 1.0, "(0, 0.5)")
        _check_probability("audio_dropout", self.audio_dropout)
        _check_probability("image_dropout", self.image_dropout)
        if self.audio_dropout + self.image_dropout > 1.0:
            raise UserError(f"audio_dropout + image_dropout must be <= 1, got {self.audio_dropout} + "
                            f"{self.image_dropout}; lower one of them")

    def draw(self, seed: int, split: str, index: int) -> SampleDegradation:
        """The degradation of sample ``index``: a function of (seed, split, index) only."""
        u = sample_rng(seed, split, index, _STREAM_DEGRADATION).uniform(size=5)
        if u[0] < self.clean_fraction:
            return SampleDegradation(Corruption(), False, False)
        corruption = Corruption(*(lo + (hi - lo) * x for (lo, hi), x in
                                  zip((self.audio_snr_db, self.image_noise_std, self.image_occlusion), u[1:4])))
        return SampleDegradation(corruption, bool(u[4] < self.audio_dropout),
                                 self.audio_dropout <= u[4] < self.audio_dropout + self.image_dropout)


def corrupt_audio(waves: np.ndarray, corruptions: list[Corruption], seed: int, split: str) -> np.ndarray:
    """Apply sample i's audio transforms (``corruptions[i]``) to float32 [N, WINDOW] looped waveforms."""
    out = waves.copy()
    for i, corruption in enumerate(corruptions):
        for transform in corruption.audio_transforms():
            out[i] = transform(out[i], sample_rng(seed, split, i, _STREAM_AUDIO_NOISE))
    return out


def corrupt_images(images: np.ndarray, corruptions: list[Corruption], seed: int, split: str) -> np.ndarray:
    """Apply sample i's image transforms (``corruptions[i]``) to float32 [N, H, W] images in [0, 1]."""
    out = images.copy()
    for i, corruption in enumerate(corruptions):
        for stream, transform in corruption.image_transforms():
            out[i] = transform(out[i], sample_rng(seed, split, i, stream))
    return out
