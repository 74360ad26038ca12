"""Fixed point against float: seeds 0-4 of avdigits-mlp and avdigits-cnn, with and without quantisation-aware training.

Per run, on the AV-Digits test split: the float network's accuracy (snnTorch in float64, which Lava float
matches spike for spike), and Loihi fixed point (``converters.quantize.simulate_fixed``, bit-exact to Lava's
``fixed_pt`` models: checked against Lava here on the first LAVA_SAMPLES test samples of seed 0) of

* the float network, quantised by range and with its weight exponents calibrated on CALIBRATION_SAMPLES
  training samples (the CLI's default);
* the network fine-tuned QAT_EPOCHS epochs through its fixed-point forward (quantisation-aware training,
  ``quant_aware_config``), checked spike for spike against that forward; "best" is the fine-tuning epoch its
  validation chose (0: the starting network, unchanged);
* the QAT path as ``train-and-convert --qat-epochs`` deploys it: whichever of the two validation chooses
  (``pipeline.fixed_choice``: agreement with the float network, then accuracy; the calibrated one on ties).

Prints accuracy, the drop against float in points, the share of test samples on which fixed point predicts
what the float network predicts, and spike agreement per layer (with the float forward of the same weights).

    .venv/bin/python benchmarks/fixed_point.py

Trains what it needs (seeded, cached under runs/bench-*; the first run takes a while on a CPU).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from support.inputs import encoded
from support.trained_run import quant_aware_run, trained_run

from converters.model_to_nir import export_model
from converters.nir_to_lava import plan_graph
from converters.quantize import CALIBRATION_SAMPLES, Calibration, quantize_plan, simulate_fixed
from hardware_targets.lava_sim import simulate_graph
from pipeline.fixed_choice import QUANT_AWARE, fixed_choice
from pipeline.simulate import prediction, snn_spikes
from iemf_neuro.training.checkpoint import load_run
from iemf_neuro.training.config import QAT_EPOCHS

CONFIGS = ("avdigits-mlp", "avdigits-cnn")
SEEDS = range(5)
LAVA_SAMPLES = 60


@dataclass
class Result:
    """One network in fixed point against the float network."""

    accuracy: float
    prediction_agreement: float  # share of samples with the float network's prediction
    spike_agreement: dict[str, float] = field(default_factory=dict)  # layer -> with the same weights' float forward


def reference(run, x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The float forward's spikes [N, T, ...] (snnTorch, float64)."""
    return snn_spikes(run.model, *(torch.from_numpy(x[m]).transpose(0, 1) for m in ("audio", "visual")))


def in_fixed_point(graph, x: dict[str, np.ndarray], calibration: Calibration | None = None):
    plan = plan_graph(graph)
    inputs = {k: x[k] for k in ("audio", "visual")}
    quant = quantize_plan(plan, inputs, calibration)
    return quant, simulate_fixed(plan, quant, inputs)


def score(spikes, float_spikes, float_pred, labels) -> Result:
    pred = prediction(spikes)
    return Result(float(np.mean(pred == labels)), float(np.mean(pred == float_pred)),
                  {k: float(np.mean(spikes[k] == v)) for k, v in float_spikes.items()})


def path_result(r: dict) -> Result:
    """The network the QAT path deploys (``train-and-convert --qat-epochs``): validation's choice."""
    return r["qat"] if r["chosen"] == QUANT_AWARE else r["calibrated"]


def lava_check(graph, x: dict[str, np.ndarray], expected: dict[str, np.ndarray], calibration=None) -> int:
    """Spike entries where Lava fixed point differs from ``expected`` on the first LAVA_SAMPLES samples."""
    inputs = {k: x[k][:LAVA_SAMPLES] for k in ("audio", "visual")}
    run = simulate_graph(graph, inputs, "fixed", progress=False, calibration=calibration)
    return sum(int((run.spikes[k] != v[:LAVA_SAMPLES]).sum()) for k, v in expected.items())


def measure(config_name: str, seed: int) -> dict[str, Result | float | int]:
    run_dir, qat_dir = trained_run(config_name, seed), quant_aware_run(config_name, seed)
    run, qat = load_run(run_dir), load_run(qat_dir)
    x = encoded(run, "test")
    calib_x = encoded(run, "train", calibration=True)
    float_spikes = reference(run, x)
    float_pred = prediction(float_spikes)
    graph = export_model(run.model, run.model_config)
    calibration = Calibration.from_graph(graph, {k: calib_x[k] for k in ("audio", "visual")})
    _, by_range = in_fixed_point(graph, x)
    _, calibrated = in_fixed_point(graph, x, calibration)
    qat_graph = export_model(qat.model, qat.model_config)
    _, qat_fixed = in_fixed_point(qat_graph, x)
    qat_forward = snn_spikes(qat.model, *(torch.from_numpy(x[m]).transpose(0, 1) for m in ("audio", "visual")),
                             fixed=True)
    qat_result = score(qat_fixed, reference(qat, x), float_pred, x["labels"])
    out = {"float": float(np.mean(float_pred == x["labels"])),
           "range": score(by_range, float_spikes, float_pred, x["labels"]),
           "calibrated": score(calibrated, float_spikes, float_pred, x["labels"]),
           "qat": qat_result, "qat_epoch": qat.epoch + 1,
           "chosen": fixed_choice(run_dir, qat_dir)["chosen"],
           "qat_vs_forward": sum(int((qat_fixed[k] != v).sum()) for k, v in qat_forward.items())}
    if seed == 0:
        lava_calib = {k: calib_x[k] for k in ("audio", "visual")}
        out["lava_calibrated"] = lava_check(graph, x, calibrated, lava_calib)
        out["lava_qat"] = lava_check(qat_graph, x, qat_fixed)
    return out


def main() -> None:
    results = {c: {s: measure(c, s) for s in SEEDS} for c in CONFIGS}
    print(f"\nAV-Digits test split; fixed point = Loihi integers (bit-exact); QAT = {QAT_EPOCHS} fine-tuning epochs; "
          f"calibration on {CALIBRATION_SAMPLES} training samples\n")
    head = (f"{'config':<14}{'seed':>5}{'float':>8}{'range':>8}{'calibr.':>8}{'drop':>7}{'same pred':>10}"
            f"{'QAT':>8}{'drop':>7}{'same pred':>10}{'best':>5}{'QAT = forward':>15}{'QAT path':>10}{'drop':>7}")
    print(head)
    for c, per_seed in results.items():
        for s, r in per_seed.items():
            cal, q, p = r["calibrated"], r["qat"], path_result(r)
            print(f"{c:<14}{s:>5}{r['float']:>8.4f}{r['range'].accuracy:>8.4f}{cal.accuracy:>8.4f}"
                  f"{100 * (r['float'] - cal.accuracy):>7.2f}{100 * cal.prediction_agreement:>9.1f}%"
                  f"{q.accuracy:>8.4f}{100 * (r['float'] - q.accuracy):>7.2f}{100 * q.prediction_agreement:>9.1f}%"
                  f"{r['qat_epoch']:>5}{r['qat_vs_forward']:>10} mism."
                  f"{'QAT' if r['chosen'] == QUANT_AWARE else 'calibr.':>10}{100 * (r['float'] - p.accuracy):>7.2f}")
    print("\nspike agreement per layer with the float forward of the same weights (mean over seeds):")
    for c, per_seed in results.items():
        layers = list(per_seed[0]["calibrated"].spike_agreement)
        for kind in ("range", "calibrated", "qat"):
            means = {k: np.mean([r[kind].spike_agreement[k] for r in per_seed.values()]) for k in layers}
            print(f"  {c:<14}{kind:<11}" + "  ".join(f"{k} {100 * v:.2f}%" for k, v in means.items()))
    print(f"\nLava fixed_pt vs these integers, seed 0, first {LAVA_SAMPLES} test samples (spike entries that differ):")
    for c, per_seed in results.items():
        print(f"  {c:<14}calibrated {per_seed[0]['lava_calibrated']}, QAT {per_seed[0]['lava_qat']}")
    worst = {c: (max(100 * (r["float"] - r["calibrated"].accuracy) for r in ps.values()),
                 max(100 * (r["float"] - r["qat"].accuracy) for r in ps.values()),
                 max(100 * (r["float"] - path_result(r).accuracy) for r in ps.values()),
                 min(path_result(r).prediction_agreement for r in ps.values())) for c, ps in results.items()}
    print("\nworst seed: " + "; ".join(f"{c}: calibrated drop {a:.2f} pt (floor 1), fine-tuned network drop {b:.2f} "
                                       f"pt, QAT path drop {d:.2f} pt (floor 0.5), QAT path same prediction "
                                       f"{100 * p:.1f} % (goal 99.5)" for c, (a, b, d, p) in worst.items()))


if __name__ == "__main__":
    main()
