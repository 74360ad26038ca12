"""Datasets: AV-Digits (the built-in default), its corruptions, and the CREMA-D / Kinetics-Sounds loaders."""

from .av_clips import AVClips, load_cremad, load_kinetics_sounds
from .avdigits import AVDigits, load_split, summary, waveforms
from .corruption import (AudioPinkNoise, AudioWhiteNoise, Corruption, ImageGaussianNoise, ImageOcclusion,
                         SampleDegradation, TrainingDegradation)

__all__ = ["AVClips", "AVDigits", "AudioPinkNoise", "AudioWhiteNoise", "Corruption", "ImageGaussianNoise",
           "ImageOcclusion", "SampleDegradation", "TrainingDegradation", "load_cremad", "load_kinetics_sounds",
           "load_split", "summary", "waveforms"]
