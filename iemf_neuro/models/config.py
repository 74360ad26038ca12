"""Model configurations: dataclasses and the named, built-in ones."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from iemf_neuro.errors import UserError

from .neurons import NeuronConfig

ARCHS = ("mlp", "cnn", "resnet18")
ENCODINGS = ("direct", "rate")
GATES = ("none", "full", "relative", "common")  # per-sample fusion gate (gate.py); none: static gains only


@dataclass(frozen=True)
class BranchConfig:
    arch: str  # "mlp", "cnn" or "resnet18"
    input_shape: tuple[int, ...]  # one sample of this modality, e.g. (32, 32) or (1, 32, 32)
    widths: tuple[int, ...] = ()  # mlp: hidden sizes; cnn: channels per conv stage; resnet18: unused

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise UserError(f"unknown branch arch {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.arch != "resnet18" and not self.widths:
            raise UserError(f"{self.arch} branch needs at least one width; set its widths, e.g. model.audio.widths=128")
        if any(int(w) <= 0 for w in (*self.input_shape, *self.widths)):
            raise UserError(f"branch shape {self.input_shape} and widths {self.widths} must be positive; fix them")


@dataclass(frozen=True)
class ModelConfig:
    name: str
    audio: BranchConfig
    visual: BranchConfig
    fusion: str = "concat"  # concat | sum | film | gated
    fusion_dim: int = 64  # fusion neurons
    num_classes: int = 10
    time_steps: int = 10  # T
    encoding: str = "direct"  # direct (analog current, Loihi 2 graded spikes) | rate (Bernoulli spikes)
    neuron: NeuronConfig = field(default_factory=NeuronConfig)
    gate: str = "none"  # none | full | relative | common: spiking per-sample fusion gate (gate.py)

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise UserError(f"unknown encoding {self.encoding!r}; choose one of {', '.join(ENCODINGS)}")
        if self.gate not in GATES:
            raise UserError(f"unknown model.gate={self.gate!r}; choose one of {', '.join(GATES)}")
        if self.gate != "none" and self.fusion not in ("concat", "sum"):
            raise UserError(f"model.gate={self.gate} gates an additive fusion, not {self.fusion!r}; "
                            "set model.fusion=concat or sum")
        for key in ("time_steps", "fusion_dim", "num_classes"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool):
                raise UserError(f"model.{key}={value!r} must be an integer; set e.g. model.{key}=10")
        if self.time_steps < 1 or self.fusion_dim < 1 or self.num_classes < 2:
            raise UserError(f"model.time_steps={self.time_steps} and model.fusion_dim={self.fusion_dim} must be >= 1 "
                            f"and model.num_classes={self.num_classes} >= 2; fix them")


MODEL_CONFIGS: dict[str, ModelConfig] = {
    "avdigits-mlp": ModelConfig(
        name="avdigits-mlp",
        audio=BranchConfig("mlp", (32, 32), (128,)),
        visual=BranchConfig("mlp", (8, 8), (64,)),
        fusion="concat", fusion_dim=64, num_classes=10, time_steps=10),
    "avdigits-cnn": ModelConfig(
        name="avdigits-cnn",
        audio=BranchConfig("cnn", (1, 32, 32), (8, 16)),
        visual=BranchConfig("cnn", (1, 8, 8), (8, 16)),
        fusion="concat", fusion_dim=128, num_classes=10, time_steps=10),
    "cremad-resnet18": ModelConfig(
        name="cremad-resnet18",
        audio=BranchConfig("resnet18", (1, 257, 188)),
        visual=BranchConfig("resnet18", (3, 224, 224)),
        fusion="concat", fusion_dim=512, num_classes=6, time_steps=4),
}


def check_known_keys(cls: type, data: dict[str, Any], what: str) -> None:
    """Refuse keys that are not fields of the config dataclass ``cls``, naming the valid ones."""
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise UserError(f"unknown {what} config keys {sorted(unknown)}; valid keys: {', '.join(sorted(known))}")


def model_config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """Rebuild a ModelConfig from its JSON form (as stored in checkpoints and run directories)."""
    check_known_keys(ModelConfig, data, "model")
    try:
        kwargs = dict(data)
        for key in ("audio", "visual"):
            b = kwargs[key]
            kwargs[key] = BranchConfig(b["arch"], tuple(b["input_shape"]), tuple(b.get("widths", ())))
        if "neuron" in kwargs:
            kwargs["neuron"] = NeuronConfig(**kwargs["neuron"])
        return ModelConfig(**kwargs)
    except (KeyError, TypeError) as exc:
        raise UserError(f"invalid model config: {exc}; fix the config or start from a named one") from exc


def get_model_config(name: str, **overrides: Any) -> ModelConfig:
    if name not in MODEL_CONFIGS:
        raise UserError(f"unknown model config {name!r}; choose one of {', '.join(MODEL_CONFIGS)}")
    return replace(MODEL_CONFIGS[name], **overrides)
