"""Evaluation: fused and unimodal accuracy, loss and firing rates of a model on one dataset split.

Unimodal accuracy is read from the auxiliary heads (one linear readout per encoder; in the baselines
without auxiliary losses they are trained as detached probes). Zeroing the other modality instead would feed
the fusion neurons an input distribution they never saw in training (half their drive gone, thresholds
fitted to both), which measures the fused network's brittleness rather than what one modality carries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from iemf_neuro.errors import UserError
from iemf_neuro.models import IEMFNet, ModelConfig, encode_inputs
from iemf_neuro.progress import progress as progress_bar
from iemf_neuro.provenance import write_json_atomic

from .config import RunConfig
from .data import Batches, load_dataset


@dataclass
class EvalMetrics:
    accuracy: float  # fused prediction (argmax of output spike counts)
    audio_accuracy: float  # audio auxiliary head
    visual_accuracy: float  # visual auxiliary head
    fused_head_accuracy: float  # fused readout probe (IEMF's fused score; not the deployed prediction)
    loss: float  # cross-entropy of the fused output (no label smoothing)
    n: int  # samples evaluated
    firing_rates: dict[str, float] = field(default_factory=dict)  # layer -> spikes per neuron per step

    @property
    def best_unimodal(self) -> float:
        return max(self.audio_accuracy, self.visual_accuracy)


@torch.no_grad()
def evaluate(model: IEMFNet, model_config: ModelConfig, data: Batches, batch_size: int = 512, seed: int = 0,
             record: bool = False) -> EvalMetrics:
    """Evaluate in eval mode; rate encoding draws from a generator seeded with ``seed`` (repeatable)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    correct = {"fused": 0, "audio": 0, "visual": 0, "fused_head": 0}
    loss_sum, n = 0.0, 0
    spike_sums: dict[str, float] = {}
    for audio, image, labels in data.sequential(batch_size):
        x_a, x_v = encode_inputs(model_config, audio, image, gen)
        out = model(x_a, x_v, record=record)
        correct["fused"] += int((out.prediction == labels).sum())
        for m in ("audio", "visual"):
            correct[m] += int((out.aux_logits[m].argmax(-1) == labels).sum())
        correct["fused_head"] += int((out.fused_logits.argmax(-1) == labels).sum())
        loss_sum += float(F.cross_entropy(out.counts.float(), labels, reduction="sum"))
        n += len(labels)
        for name, spikes in out.spikes.items():
            spike_sums[name] = spike_sums.get(name, 0.0) + float(spikes.float().mean()) * len(labels)
    model.train(was_training)
    return EvalMetrics(accuracy=correct["fused"] / n, audio_accuracy=correct["audio"] / n,
                       visual_accuracy=correct["visual"] / n, fused_head_accuracy=correct["fused_head"] / n,
                       loss=loss_sum / n, n=n,
                       firing_rates={k: v / n for k, v in spike_sums.items()})


def evaluate_split(model: IEMFNet, config: RunConfig, split: str = "test", device: str = "cpu",
                   corruption: dict | None = None, record: bool = True) -> EvalMetrics:
    """Evaluate a model on one split of its run's dataset (optionally with other corruption fields)."""
    data = Batches(load_dataset(config, split, corruption), torch.device(device))
    return evaluate(model.to(device), config.model, data, config.train.eval_batch_size, seed=config.train.seed,
                    record=record)


DEFAULT_AUDIO_SNRS_DB: tuple[float | None, ...] = (None, 20.0, 10.0, 5.0, 0.0, -5.0, -10.0)  # None: clean
DEFAULT_IMAGE_NOISE_STDS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass
class SweepResult:
    split: str  # evaluated split
    cells: list[dict]  # one per (audio SNR, image noise): accuracies, gain, stronger unimodal accuracy
    fit: dict  # gain = intercept + slope * stronger; pearson_r (inverse effectiveness: slope < 0)


def linear_fit(x: list[float], y: list[float]) -> dict[str, float]:
    """Least-squares line y = intercept + slope x, and Pearson's r (0 where a variable is constant)."""
    xs, ys = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    dx, dy = xs - xs.mean(), ys - ys.mean()
    sxx, syy = float((dx * dx).sum()), float((dy * dy).sum())
    slope = float((dx * dy).sum()) / sxx if sxx > 0 else 0.0
    r = float((dx * dy).sum()) / (sxx * syy) ** 0.5 if sxx > 0 and syy > 0 else 0.0
    return {"slope": slope, "intercept": float(ys.mean()) - slope * float(xs.mean()), "pearson_r": r}


def inverse_effectiveness_sweep(model: IEMFNet, config: RunConfig, split: str = "test",
                                audio_snrs_db=DEFAULT_AUDIO_SNRS_DB, image_noise_stds=DEFAULT_IMAGE_NOISE_STDS,
                                device: str = "cpu", progress: bool = True) -> SweepResult:
    """Evaluate over audio SNR x image noise and relate multisensory gain to unimodal strength.

        gain = acc_fused - max(acc_audio, acc_visual)        plotted against max(acc_audio, acc_visual)

    Inverse effectiveness predicts the largest gain where the stronger modality is weakest (slope < 0).
    """
    if config.train.dataset != "avdigits":
        raise UserError(f"the sweep corrupts AV-Digits; run {config.train.dataset!r} has no corruptions, "
                        "evaluate it without --sweep")
    model = model.to(device).eval()
    cells = []
    grid = [(snr, std) for snr in audio_snrs_db for std in image_noise_stds]
    for snr, std in progress_bar(grid, desc="sweep", unit="cell", enabled=progress):
        corruption = {"audio_snr_db": snr, "image_noise_std": std}
        data = Batches(load_dataset(config, split, corruption), torch.device(device))
        m = evaluate(model, config.model, data, config.train.eval_batch_size, seed=config.train.seed)
        cells.append({"audio_snr_db": snr, "image_noise_std": std, "accuracy": m.accuracy,
                      "audio_accuracy": m.audio_accuracy, "visual_accuracy": m.visual_accuracy,
                      "best_unimodal_accuracy": m.best_unimodal, "multisensory_gain": m.accuracy - m.best_unimodal,
                      "n": m.n})
    fit = linear_fit([c["best_unimodal_accuracy"] for c in cells], [c["multisensory_gain"] for c in cells])
    return SweepResult(split, cells, fit)


def save_sweep(result: SweepResult, run_dir: Path, provenance_record: dict) -> tuple[Path, Path]:
    """RUN_DIR/sweep_SPLIT.json and RUN_DIR/plots/inverse_effectiveness_SPLIT.png."""
    from .plots import plot_sweep

    json_path = Path(run_dir) / f"sweep_{result.split}.json"
    png_path = Path(run_dir) / "plots" / f"inverse_effectiveness_{result.split}.png"
    write_json_atomic(json_path, {**asdict(result), "provenance": provenance_record})
    plot_sweep(result.cells, result.fit, png_path)
    return json_path, png_path
