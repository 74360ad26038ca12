"""Datasets as the trainer sees them, and how their samples are ordered and sharded.

In-memory datasets (AV-Digits, the synthetic one) expose ``audio``, ``image`` and ``labels`` arrays and are
sliced as tensors; disk-backed ones (CREMA-D, Kinetics-Sounds) are read through a DataLoader.

The sample order of epoch e is ``randperm(N)`` from a generator seeded with (seed, e): it depends on nothing
else, so a resumed run sees exactly the order an uninterrupted one would. Under DDP each rank takes every
world-th index of the order (DistributedSampler's sharding) and incomplete batches are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch

from iemf_neuro.errors import UserError
from iemf_neuro.models import ModelConfig

from .config import RunConfig, training_degradation

SPLITS = ("train", "val", "test")


@dataclass
class SyntheticAV:
    """Learnable random audio-visual data of any input shape: class templates plus Gaussian noise.

    Each class has one fixed template per modality; a sample is its template plus noise of std ``noise``,
    clipped to [0, 1]. Used for tests, smoke runs and GPU throughput, never for reported accuracy.
    """

    audio: np.ndarray  # [N, *audio_shape] float32
    image: np.ndarray  # [N, *visual_shape] float32
    labels: np.ndarray  # [N] int64
    class_names: tuple[str, ...]  # "class0", ...

    @classmethod
    def make(cls, model: ModelConfig, n: int, seed: int, noise: float = 0.3) -> "SyntheticAV":
        templates = np.random.default_rng(12345)
        t_a = templates.random((model.num_classes, *model.audio.input_shape), dtype=np.float32)
        t_v = templates.random((model.num_classes, *model.visual.input_shape), dtype=np.float32)
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, model.num_classes, n).astype(np.int64)
        audio = np.clip(t_a[labels] + noise * rng.standard_normal(t_a[labels].shape, dtype=np.float32), 0, 1)
        image = np.clip(t_v[labels] + noise * rng.standard_normal(t_v[labels].shape, dtype=np.float32), 0, 1)
        return cls(audio, image, labels, tuple(f"class{i}" for i in range(model.num_classes)))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.audio[i], self.image[i], int(self.labels[i])


def _corruption(fields: dict | None):
    if not fields:
        return None
    from iemf_neuro.data import Corruption

    try:
        return Corruption(**fields)
    except TypeError as exc:
        raise UserError(f"invalid corruption {fields}: {exc}; use the fields of iemf_neuro.data.Corruption") from exc


VAL_FRACTION = 0.1  # share of the training list held out for validation where a dataset has no val split


def _clip_dataset(config: RunConfig, split: str) -> Any:
    """CREMA-D / Kinetics-Sounds. Without a val split (CREMA-D), every 10th clip of a fixed permutation of
    the training list is held out for validation, so best.pt is never chosen on test."""
    from iemf_neuro.data.av_clips import CREMAD, KINETICS_SOUNDS, AVClips

    layout = {"cremad": CREMAD, "kinetics-sounds": KINETICS_SOUNDS}[config.train.dataset]
    root = config.train.data_root
    if root is None:
        raise UserError(f"dataset {config.train.dataset!r} needs its folder; pass --set data_root=PATH")
    if "val" in layout.splits or split == "test":
        return AVClips(root, split, layout, augment=split == "train")
    full = AVClips(root, "train", layout, augment=False)
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(0)).tolist()
    n_val = max(1, int(len(full) * VAL_FRACTION))
    if split == "val":
        return torch.utils.data.Subset(full, sorted(order[:n_val]))
    return torch.utils.data.Subset(AVClips(root, "train", layout, augment=True), sorted(order[n_val:]))


def load_dataset(config: RunConfig, split: str, corruption: dict | None = None) -> Any:
    """One split of the configured dataset; ``corruption`` (Corruption fields, ``{}`` for clean) overrides the
    config's. AV-Digits' training split as training sees it (no corruption asked for, none configured) is degraded
    at random per sample (``degradation``)."""
    train = config.train
    fields = corruption if corruption is not None else train.corruption
    if train.dataset == "synthetic":
        n = train.synthetic_size if split == "train" else max(1, train.synthetic_size // 4)
        return SyntheticAV.make(config.model, n, seed=train.seed * 3 + SPLITS.index(split))
    if train.dataset == "avdigits":
        from iemf_neuro.data import load_split

        degradation = None
        if split == "train" and fields is None and train.degradation is not None:
            degradation = training_degradation(train.degradation)
        return load_split(split, corruption=_corruption(fields), seed=train.seed, degradation=degradation)
    if fields:
        raise UserError(f"corruptions exist for AV-Digits only; drop --set corruption for {train.dataset!r}")
    return _clip_dataset(config, split)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of one epoch: a permutation that depends on (seed, epoch) only."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen)


def shard_batches(order: torch.Tensor, batch_size: int, rank: int = 0, world: int = 1,
                  max_batches: int | None = None) -> list[torch.Tensor]:
    """This rank's full batches: indices ``order[rank::world]`` (after trimming to a multiple of world)."""
    per_rank = len(order) // world
    mine = order[: per_rank * world][rank::world]
    n_batches = per_rank // batch_size
    if max_batches is not None:
        n_batches = min(n_batches, max_batches)
    return [mine[i * batch_size:(i + 1) * batch_size] for i in range(n_batches)]


class Batches:
    """Yield (audio, image, labels) tensors on ``device`` for lists of index batches."""

    def __init__(self, dataset: Any, device: torch.device, num_workers: int = 0):
        self.dataset, self.device, self.num_workers = dataset, device, num_workers
        self.in_memory = all(hasattr(dataset, k) for k in ("audio", "image", "labels"))
        if self.in_memory:
            self.tensors = tuple(torch.as_tensor(np.asarray(getattr(dataset, k))).to(device)
                                 for k in ("audio", "image", "labels"))

    def __len__(self) -> int:
        return len(self.dataset)

    def __call__(self, batches: list[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        if self.in_memory:
            for idx in batches:
                idx = idx.to(self.device)
                yield tuple(t[idx] for t in self.tensors)
            return
        loader = torch.utils.data.DataLoader(self.dataset, batch_sampler=[b.tolist() for b in batches],
                                             num_workers=self.num_workers, pin_memory=self.device.type == "cuda")
        for audio, image, labels in loader:
            yield (audio.to(self.device, non_blocking=True).float(), image.to(self.device, non_blocking=True).float(),
                   labels.to(self.device, non_blocking=True).long())

    def sequential(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        order = torch.arange(len(self))
        return self([order[i:i + batch_size] for i in range(0, len(order), batch_size)])
