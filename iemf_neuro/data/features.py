"""AV-Digits audio features: the fixed 1 s window, G.711 mu-law storage and the normalised log-mel spectrogram.

Pipeline for one recording (8 kHz int16):

    crop:    clips longer than WINDOW samples keep the WINDOW-sample span of maximal energy sum(x^2)
    store:   G.711 mu-law bytes (8 bit, integer algorithm, ~37 dB quantisation SNR on FSDD)
    place:   x / 32768 centred in a zero window of WINDOW samples (pad left = (WINDOW - len) // 2)
    mel:     M = mel_fb @ |STFT_hann(x; n_fft=512, hop=256, center, reflect)|^2        -> [32 mels, 32 frames]
    log:     L = 10 log10(max(M, 1e-10))                                               (dB)
    scale:   F = clip((L - low) / (high - low), 0, 1), high = ceil(P99.9 of train L), low = high - 80 dB
"""

from __future__ import annotations

import numpy as np
import torch

SAMPLE_RATE = 8000  # Hz, FSDD's rate
WINDOW = 8000  # samples in the fixed window (1 s)
N_FFT = 512  # 64 ms Hann window
HOP = 256  # 32 ms hop -> 1 + WINDOW // HOP = 32 frames
N_MELS = 32  # mel bands, 0 .. 4 kHz
FRAMES = 1 + WINDOW // HOP
DB_FLOOR = 1e-10  # power floor before the log
DB_RANGE = 80.0  # dB between the train-derived ceiling and the floor of the [0, 1] scale

_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635
_ULAW_EXPONENT = np.array([max(0, v.bit_length() - 1) for v in range(256)], dtype=np.int32)


def ulaw_encode(pcm: np.ndarray) -> np.ndarray:
    """G.711 mu-law: int16 PCM -> uint8 codes, integer arithmetic only (bit-identical everywhere).

    sign, magnitude m = min(|x|, 32635) + 132; exponent e = floor(log2(m >> 7)); mantissa = (m >> (e + 3)) & 15;
    code = ~(sign | e << 4 | mantissa).
    """
    x = pcm.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    mag = np.minimum(np.abs(x), _ULAW_CLIP) + _ULAW_BIAS
    exponent = _ULAW_EXPONENT[(mag >> 7) & 0xFF]
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


def ulaw_decode(codes: np.ndarray) -> np.ndarray:
    """G.711 mu-law: uint8 codes -> int16 PCM, x = +-(((mantissa << 3) + 132) << e) - 132)."""
    u = ~codes.astype(np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    magnitude = ((((u & 0x0F) << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def crop_max_energy(pcm: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """The ``window``-sample span of ``pcm`` with the largest energy (first one on ties); shorter clips unchanged."""
    if len(pcm) <= window:
        return pcm
    energy = np.concatenate([[0], np.cumsum(pcm.astype(np.int64) ** 2)])
    start = int(np.argmax(energy[window:] - energy[:-window]))
    return pcm[start:start + window]


def place_in_window(clips: list[np.ndarray], window: int = WINDOW) -> np.ndarray:
    """int16 clips -> float32 [N, window] in [-1, 1), each centred (pad left = (window - len) // 2)."""
    out = np.zeros((len(clips), window), dtype=np.float32)
    for row, clip in zip(out, clips):
        start = (window - len(clip)) // 2
        row[start:start + len(clip)] = clip.astype(np.float32) / 32768.0
    return out


def active_slice(length: int, window: int = WINDOW) -> slice:
    """Where a clip of ``length`` samples sits inside the window (see place_in_window)."""
    start = (window - length) // 2
    return slice(start, start + length)


_MEL: torch.nn.Module | None = None


def _mel_transform() -> torch.nn.Module:
    global _MEL
    if _MEL is None:
        import torchaudio

        _MEL = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, f_min=0.0,
            f_max=SAMPLE_RATE / 2, power=2.0, center=True, pad_mode="reflect")
    return _MEL


def log_mel_db(waves: np.ndarray, batch: int = 512) -> np.ndarray:
    """float32 [N, WINDOW] waveforms -> float32 [N, N_MELS, FRAMES] log-mel power in dB."""
    mel = _mel_transform()
    out = np.empty((len(waves), N_MELS, FRAMES), dtype=np.float32)
    with torch.no_grad():
        for lo in range(0, len(waves), batch):
            power = mel(torch.from_numpy(np.ascontiguousarray(waves[lo:lo + batch])))
            out[lo:lo + batch] = (10.0 * torch.log10(power.clamp_min(DB_FLOOR))).numpy()
    return out


def db_scale_from_train(train_db: np.ndarray) -> tuple[float, float]:
    """(low, high) of the [0, 1] scale: high = ceil(99.9th percentile of the train dB values), low = high - 80.

    Whole dB so that tiny floating-point differences between machines cannot change the shipped constants.
    """
    high = float(np.ceil(np.percentile(train_db, 99.9)))
    return high - DB_RANGE, high


def normalise_db(db: np.ndarray, low: float, high: float) -> np.ndarray:
    """F = clip((L - low) / (high - low), 0, 1)."""
    return np.clip((db - low) / (high - low), 0.0, 1.0).astype(np.float32)
