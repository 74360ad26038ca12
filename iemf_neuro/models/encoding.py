"""Input encoding: turn one static sample into the ``[T, B, ...]`` train that the network, NIR and Lava see.

direct: x[t] = x for every t (an analog input current; Loihi 2 graded spikes), a stride-0 view over T
rate:   x[t] ~ Bernoulli(clamp(x, 0, 1)), drawn from the caller's generator (deterministic per seed)
"""

from __future__ import annotations

import torch

from .config import ModelConfig


def encode(x: torch.Tensor, time_steps: int, kind: str, generator: torch.Generator | None = None) -> torch.Tensor:
    train = x.unsqueeze(0).expand(time_steps, *x.shape)
    if kind == "direct":
        return train
    if kind == "rate":
        return torch.bernoulli(train.clamp(0, 1).contiguous(), generator=generator)
    raise ValueError(f"unknown encoding {kind!r}")


def encode_inputs(cfg: ModelConfig, audio: torch.Tensor, image: torch.Tensor,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Reshape a batch to the branches' input shapes and encode both modalities."""
    a = audio.reshape(audio.shape[0], *cfg.audio.input_shape)
    v = image.reshape(image.shape[0], *cfg.visual.input_shape)
    return (encode(a, cfg.time_steps, cfg.encoding, generator),
            encode(v, cfg.time_steps, cfg.encoding, generator))
