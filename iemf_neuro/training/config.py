"""Training configuration: the optimiser, the fusion-balancing method, and the named run configs.

A run config pairs a ``ModelConfig`` (what to build) with a ``TrainConfig`` (how to train it). Both are
stored as plain JSON in ``config.json`` and in every checkpoint, and rebuilt with ``run_config_from_dict``.
A command line's options are ``ConfigChanges``; resuming follows one rule, ``continue_config``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from iemf_neuro.errors import UserError
from iemf_neuro.models import NEURON_KERNELS, ModelConfig, get_model_config, model_config_from_dict
from iemf_neuro.models.config import check_known_keys

METHODS = ("plain", "aux-heads", "iemf", "iemf-control", "ogm-ge", "ogm-ge+iemf")
DATASETS = ("avdigits", "synthetic", "cremad", "kinetics-sounds")
OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("cosine", "step")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Epoch windows are inclusive, 0-based; ``None`` as an end means "to the last epoch"."""

    dataset: str = "avdigits"  # avdigits | synthetic | cremad | kinetics-sounds
    method: str = "iemf"  # plain | aux-heads | iemf | iemf-control | ogm-ge | ogm-ge+iemf
    epochs: int = 12  # passes over the training split
    batch_size: int = 64  # per process (DDP: each rank draws this many)
    eval_batch_size: int = 512  # validation/test batch
    optimizer: str = "adam"  # adam | sgd (momentum 0.9)
    lr: float = 3e-3  # peak learning rate
    lr_schedule: str = "cosine"  # cosine: decay to lr * lr_final_ratio | step: lr * lr_step_factor from lr_step_epoch
    lr_final_ratio: float = 0.02  # cosine: last epoch's learning rate over the peak
    lr_step_epoch: int = 70  # step: first epoch at the lowered rate
    lr_step_factor: float = 0.1  # step: the lowered rate over the peak
    weight_decay: float = 0.0  # L2 penalty (torch Adam/SGD weight_decay)
    label_smoothing: float = 0.1  # on every cross-entropy term (IEMF reference value)
    iemf_gain: float = 1.0  # coeff = gain * (1 + tanh(1 - ratio))
    iemf_start: int = 0  # first epoch with IEMF gradient modulation
    iemf_end: int | None = None  # last epoch with IEMF gradient modulation
    ogm_alpha: float = 0.8  # OGM-GE alpha
    ogm_start: int = 0  # first epoch with OGM-GE modulation
    ogm_end: int | None = None  # last epoch with OGM-GE modulation
    corruption: dict | None = None  # Corruption fields applied to train, val and test (degraded study)
    degradation: dict | None = field(default_factory=dict)  # AV-Digits training split: TrainingDegradation fields,
    #                                                         {} its defaults, null clean (a corruption replaces it)
    data_root: str | None = None  # dataset folder (CREMA-D / Kinetics-Sounds)
    synthetic_size: int = 512  # training samples of the synthetic dataset (val/test: a quarter each)
    max_batches: int | None = None  # cap on batches per epoch (smoke tests)
    seed: int = 0  # model init, data order, encoding and gradient noise
    deterministic: bool = True  # torch.use_deterministic_algorithms: resumed == uninterrupted
    channels_last: bool = False  # conv memory format (GPU speed)
    bf16: bool = False  # bfloat16 autocast (GPU speed; not deterministic across devices)
    neuron_kernel: str = "eager"  # eager | compiled (neuron loops as torch.compile kernels: GPU speed) | snntorch
    num_workers: int = 0  # DataLoader workers for datasets that load from disk
    quant_aware: bool = False  # train (and evaluate) through the Loihi fixed-point forward (models/fixed_point.py)
    init_from: str | None = None  # checkpoint whose weights start the training (fine-tuning), instead of the seed's
    distill_weight: float = 0.0  # weight of the distillation term toward init_from's network (the teacher); 0: none

    def __post_init__(self) -> None:
        for f in fields(self):
            check_type(f.name, getattr(self, f.name), f.type)
        choices = {"dataset": DATASETS, "method": METHODS, "optimizer": OPTIMIZERS, "neuron_kernel": NEURON_KERNELS,
                   "lr_schedule": LR_SCHEDULES}
        for key, valid in choices.items():
            if getattr(self, key) not in valid:
                raise UserError(f"unknown {key} {getattr(self, key)!r}; choose one of {', '.join(valid)}")
        positive = ("epochs", "batch_size", "eval_batch_size", "synthetic_size")
        for key in positive:
            if int(getattr(self, key)) < 1:
                raise UserError(f"{key}={getattr(self, key)} must be >= 1; set a positive value")
        for key in ("lr", "lr_final_ratio", "lr_step_factor", "iemf_gain"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                raise UserError(f"{key}={value} must be a positive finite number; set e.g. --set {key}=1e-3")
        if self.quant_aware and self.bf16:
            raise UserError("quant_aware=true trains through exact integer arithmetic, which bf16 autocast would "
                            "round; drop --set bf16=true")
        if self.distill_weight < 0:
            raise UserError(f"distill_weight={self.distill_weight} must be >= 0 (0: no distillation)")
        if self.distill_weight > 0 and self.init_from is None:
            raise UserError(f"distill_weight={self.distill_weight} distils from the network init_from loads; set "
                            "--set init_from=RUN/checkpoints/best.pt or distill_weight=0")
        if not 0 <= self.label_smoothing < 1:
            raise UserError(f"label_smoothing={self.label_smoothing} must lie in [0, 1)")
        for key in ("weight_decay", "ogm_alpha", "iemf_start", "ogm_start", "seed", "num_workers", "lr_step_epoch"):
            if getattr(self, key) < 0:
                raise UserError(f"{key}={getattr(self, key)} must be >= 0")
        for start, end in (("iemf_start", "iemf_end"), ("ogm_start", "ogm_end")):
            if getattr(self, end) is not None and getattr(self, end) < getattr(self, start):
                raise UserError(f"{end}={getattr(self, end)} must be null or >= {start}={getattr(self, start)}")
        if not self.lr_final_ratio <= 1:
            raise UserError(f"lr_final_ratio={self.lr_final_ratio} must lie in (0, 1]")
        if self.corruption is not None:
            from iemf_neuro.data import Corruption

            try:
                Corruption(**self.corruption)
            except TypeError as exc:
                raise UserError(f"corruption {self.corruption}: {exc}; use the fields of Corruption") from exc
        if self.degradation is not None:
            training_degradation(self.degradation)
        if self.max_batches is not None and self.max_batches < 1:
            raise UserError(f"max_batches={self.max_batches} must be >= 1 or null")

    @property
    def uses_aux_loss(self) -> bool:
        """Whether the auxiliary heads' losses reach the encoders (else the heads are detached probes)."""
        return self.method in ("aux-heads", "iemf", "iemf-control", "ogm-ge+iemf")

    @property
    def iemf_control(self) -> bool:
        """The control: IEMF's step (window, noise) with coeff fixed at 1, so the coefficient's effect shows."""
        return self.method == "iemf-control"

    def iemf_active(self, epoch: int) -> bool:
        """Whether this epoch modulates the fusion gradients (iemf, iemf-control, ogm-ge+iemf)."""
        return "iemf" in self.method and _in_window(epoch, self.iemf_start, self.iemf_end)

    def ogm_active(self, epoch: int) -> bool:
        return self.method.startswith("ogm-ge") and _in_window(epoch, self.ogm_start, self.ogm_end)

    def lr_at(self, epoch: int) -> float:
        """Cosine: lr_e = lr_min + (lr - lr_min) (1 + cos(pi e / (E - 1))) / 2; step: lr, then lr x factor."""
        if self.lr_schedule == "step":
            return self.lr * (self.lr_step_factor if epoch >= self.lr_step_epoch else 1.0)
        lr_min = self.lr * self.lr_final_ratio
        if self.epochs == 1:
            return self.lr
        return lr_min + (self.lr - lr_min) * (1 + math.cos(math.pi * epoch / (self.epochs - 1))) / 2


def training_degradation(fields: dict) -> Any:
    """The ``TrainingDegradation`` a config's ``degradation`` fields describe (JSON lists read as ranges)."""
    from iemf_neuro.data import TrainingDegradation

    try:
        return TrainingDegradation(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    except TypeError as exc:
        raise UserError(f"degradation {fields}: {exc}; use the fields of iemf_neuro.data.TrainingDegradation") from exc


def check_type(key: str, value: Any, annotation: str) -> None:
    """Check a config value against its annotation ("int", "float | None", "dict | None", ...)."""
    kinds = [k.strip() for k in str(annotation).split("|")]
    if value is None and "None" in kinds:
        return
    ok = {"int": lambda v: isinstance(v, int) and not isinstance(v, bool),
          "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
          "bool": lambda v: isinstance(v, bool), "str": lambda v: isinstance(v, str),
          "dict": lambda v: isinstance(v, dict)}
    if not any(ok[k](value) for k in kinds if k in ok):
        raise UserError(f"config key {key}={value!r} must be of type {annotation}; fix the value")


def _in_window(epoch: int, start: int, end: int | None) -> bool:
    return start <= epoch and (end is None or epoch <= end)


@dataclass(frozen=True)
class RunConfig:
    name: str  # the named config this started from
    model: ModelConfig  # what to build
    train: TrainConfig = field(default_factory=TrainConfig)  # how to train it

    def __post_init__(self) -> None:
        if self.train.method.startswith("ogm-ge") and self.model.gate != "none":
            raise UserError(f"OGM-GE scores each modality through the fusion projections directly, which a fusion "
                            f"gate ({self.model.gate!r}) sits in front of; use --method iemf or set model.gate=none")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


RUN_CONFIGS: dict[str, RunConfig] = {
    "avdigits-mlp": RunConfig("avdigits-mlp", get_model_config("avdigits-mlp")),
    "avdigits-cnn": RunConfig("avdigits-cnn", get_model_config("avdigits-cnn"), TrainConfig(epochs=10)),
    # IEMF's CREMA-D recipe: SGD 5e-3, momentum 0.9 (make_optimizer), weight decay 5e-4, batch 32, x0.1 from
    # epoch 70, 100 epochs; IEMF window epochs 60 to the last (99), OGM-GE (when chosen) on 0-50.
    "cremad-resnet18": RunConfig("cremad-resnet18", get_model_config("cremad-resnet18"),
                                 TrainConfig(dataset="cremad", optimizer="sgd", lr=5e-3, weight_decay=5e-4,
                                             lr_schedule="step", lr_step_epoch=70, lr_step_factor=0.1,
                                             epochs=100, batch_size=32, eval_batch_size=64, iemf_start=60,
                                             ogm_start=0, ogm_end=50, num_workers=8, deterministic=False)),
}


QAT_EPOCHS = 6  # fine-tuning epochs in fixed point after float training (train-and-convert)
QAT_DISTILL_WEIGHT = 1.0  # weight of the distillation term toward the float network (distill_weight)


def quant_aware_config(config: RunConfig, checkpoint: str, epochs: int = QAT_EPOCHS) -> RunConfig:
    """Quantisation-aware fine-tuning of ``config``'s float training: from ``checkpoint``'s weights, ``epochs``
    epochs through the fixed-point forward at the float training's learning rate and schedule, distilling from
    the float network so that the deployed one predicts what it predicts; best.pt, chosen on validation
    agreement with the float network, may be the starting network itself. The same loss terms without
    gradient modulation: IEMF and OGM-GE add gradient noise, which helps training from scratch but only
    perturbs a network meant to stay close."""
    if epochs < 1:
        raise UserError(f"quantisation-aware fine-tuning needs epochs >= 1, got {epochs}")
    method = "aux-heads" if config.train.uses_aux_loss else "plain"
    return replace(config, train=replace(config.train, quant_aware=True, init_from=str(checkpoint), epochs=epochs,
                                         method=method, distill_weight=QAT_DISTILL_WEIGHT))


def train_config_from_dict(data: dict[str, Any]) -> TrainConfig:
    check_known_keys(TrainConfig, data, "training")
    try:
        return TrainConfig(**data)
    except TypeError as exc:
        raise UserError(f"invalid training config: {exc}; fix the config or start from a named one") from exc


def run_config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Rebuild a RunConfig from its JSON form; unknown keys raise UserError naming the valid ones."""
    if not isinstance(data, dict) or {"name", "model", "train"} - set(data):
        raise UserError("run config must hold 'name', 'model' and 'train'; re-create the run with "
                        "`iemf-neuro train`")
    return RunConfig(str(data["name"]), model_config_from_dict(data["model"]),
                     train_config_from_dict(data["train"]))


def _parse_value(text: str) -> Any:
    """JSON when it parses (numbers, true/false/null, lists), a comma list as a list, else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if "," in text:
            return [_parse_value(part) for part in text.split(",")]
        return text


def apply_overrides(config: RunConfig, assignments: list[str]) -> RunConfig:
    """Apply ``key=value`` overrides. Training keys are bare (``lr=1e-3``); model keys start with
    ``model.`` (``model.time_steps=8``, ``model.neuron.beta=0.9``, ``model.audio.widths=256,128``)."""
    data = config.to_dict()
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item!r} is not key=value; write e.g. --set lr=1e-3")
        path = key.split(".")
        if path[0] == "model":
            target = data["model"]
            for part in path[1:-1]:
                if not isinstance(target.get(part), dict):
                    raise UserError(f"unknown model config key {key!r}; valid: model."
                                    + ", model.".join(sorted(data["model"])))
                target = target[part]
            if len(path) < 2 or path[-1] not in target:
                raise UserError(f"unknown model config key {key!r}; valid keys under it: "
                                + ", ".join(sorted(target)))
            target[path[-1]] = _parse_value(value)
        elif len(path) == 1 and key in data["train"]:
            data["train"][key] = _parse_value(value)
        else:
            raise UserError(f"unknown config key {key!r}; valid: {', '.join(sorted(data['train']))} or model.*")
    return run_config_from_dict(data)


@dataclass(frozen=True)
class ConfigChanges:
    """What a command line asked for: applied to a named config to start a run, or to the recorded config to
    continue one (``continue_config``). ``None`` and ``()`` mean "not given"."""

    name: str | None = None  # named config
    method: str | None = None
    epochs: int | None = None
    seed: int | None = None
    overrides: tuple[str, ...] = ()  # --set KEY=VALUE

    def apply(self, config: RunConfig) -> RunConfig:
        shortcuts = {k: v for k, v in (("method", self.method), ("epochs", self.epochs), ("seed", self.seed))
                     if v is not None}
        return apply_overrides(replace(config, train=replace(config.train, **shortcuts)), list(self.overrides))


def get_run_config(name: str, method: str | None = None, epochs: int | None = None, seed: int | None = None,
                   overrides: list[str] = ()) -> RunConfig:
    """A named run config with the CLI's shortcuts and ``--set`` overrides applied."""
    if name not in RUN_CONFIGS:
        raise UserError(f"unknown config {name!r}; choose one of {', '.join(RUN_CONFIGS)}")
    return ConfigChanges(name, method, epochs, seed, tuple(overrides)).apply(RUN_CONFIGS[name])


RESUMABLE_KEYS = ("train.epochs",)  # the only keys a resumed run may change (recorded in config.json)


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def continue_config(recorded: RunConfig, requested: RunConfig, epochs_done: int) -> RunConfig:
    """The one resume rule: a resumed run continues its recorded config. Any requested key that would change
    what it computes is refused by name; only the epoch count may change, and not below the epochs done (the
    learning-rate schedule follows the new length from the next epoch on)."""
    if requested.name != recorded.name:
        raise UserError(f"the run was started from config {recorded.name!r}, not {requested.name!r}; drop --config "
                        "to continue it, or train into another --out")
    old, new = _flat(recorded.to_dict()), _flat(requested.to_dict())
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key) and key not in RESUMABLE_KEYS:
            raise UserError(f"the run was trained with {key}={old.get(key)!r}; resuming continues it, so "
                            f"{key}={new.get(key)!r} is refused: drop that option, or train into another --out")
    if requested.train.epochs < epochs_done:
        raise UserError(f"epochs={requested.train.epochs} is below the {epochs_done} epochs already trained; pass "
                        f"--epochs {epochs_done} or more")
    return requested
