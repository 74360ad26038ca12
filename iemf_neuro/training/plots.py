"""Training curves and the inverse-effectiveness plot (matplotlib, Agg backend, atomic PNG writes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iemf_neuro.provenance import atomic_path
from iemf_neuro.sweep_plot import draw_sweep


def _figure(ncols: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(4.5 * ncols, 3.5), squeeze=False)
    return plt, fig, axes[0]


def _save(plt, fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def plot_training(history: list[dict[str, Any]], plots_dir: Path) -> None:
    """plots/training.png: validation accuracies, losses, IEMF coefficient; plots/firing_rates.png."""
    epochs = [row["epoch"] + 1 for row in history]
    plt, fig, (acc, loss, coeff) = _figure(3)
    for key, label in (("val_accuracy", "fused"), ("val_audio_accuracy", "audio head"),
                       ("val_visual_accuracy", "visual head")):
        acc.plot(epochs, [row[key] for row in history], marker="o", label=label)
    acc.set(xlabel="epoch", ylabel="validation accuracy", ylim=(0, 1))
    acc.legend()
    loss.plot(epochs, [row["train_loss"] for row in history], marker="o", label="train (total)")
    loss.plot(epochs, [row["val_loss"] for row in history], marker="o", label="val (fused CE)")
    loss.set(xlabel="epoch", ylabel="loss")
    loss.legend()
    coeff.plot(epochs, [row["train_iemf_coeff"] for row in history], marker="o")
    coeff.axhline(1.0, color="grey", lw=0.8)
    coeff.set(xlabel="epoch", ylabel="mean IEMF coefficient")
    _save(plt, fig, plots_dir / "training.png")

    plt, fig, (rates,) = _figure(1)
    for layer in history[-1]["firing_rates"]:
        rates.plot(epochs, [row["firing_rates"].get(layer, float("nan")) for row in history], marker=".",
                   label=layer)
    rates.set(xlabel="epoch", ylabel="spikes / neuron / step (val)")
    if len(history[-1]["firing_rates"]) <= 12:  # deep models: per-layer values are in metrics.jsonl
        rates.legend(fontsize="small")
    _save(plt, fig, plots_dir / "firing_rates.png")


def plot_sweep(cells: list[dict[str, Any]], fit: dict[str, float], path: Path) -> None:
    """Multisensory gain against the stronger unimodal accuracy, one point per corruption cell."""
    plt, fig, (ax,) = _figure(1)
    draw_sweep(fig, ax, cells, fit)
    _save(plt, fig, path)
