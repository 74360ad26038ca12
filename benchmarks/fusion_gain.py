"""Fusion weighting on chip: does any static or dynamic weighting beat gains (1, 1) on a fixed grid of degradations?

The grid (audio white-noise SNR x image pixel-noise std, 5 x 5) was fixed before any arm was measured, from the
unimodal heads' accuracy curves (``--curve`` prints them; docs/benchmarks.md, "Fusion weighting"): each axis runs
from clean to about chance for its modality. Every seed trains its networks (cached under runs/), every cell
degrades the validation and test splits the same way for every arm. Arms:

    unity               gains (1, 1): IEMF only shapes training, so this is the deployed baseline
    inverse (removed)   the former rule g_m ~ 1 + tanh(1 - E_m / E_av), E from spike-count softmaxes
    reliability         converters.fusion_gain's reliability rule on validation under the cell's condition
    power-of-two        the most accurate pair of powers of two on validation under the cell (the static ceiling)
    gate-full/-relative/-common   the network trained with the on-chip gate of that kind, gains (1, 1)
    product-of-experts  non-spiking reference: argmax_k log p_a(k) + log p_v(k) of the auxiliary heads

Reported per arm: grid-mean, worst-cell and clean-cell test accuracy, the silent-output rate (samples whose
output layer never fires), and the grid-mean difference to unity with a paired bootstrap 95 % CI (seeds and test
samples resampled together for both arms, BOOTSTRAP draws). The floor (>= +2 points, CI above 0, <= 0.5 points clean
loss) is judged on UNDER_TEST, the proposed rule, not on whichever arm scores highest on test (a choice made on the
test data would inflate its own result). ``--lava`` adds fixed point: unity, reliability and the
power-of-two search on every seed and cell through the bit-exact simulation of Lava's fixed-point models (against
snnTorch and against unity in fixed point), and Lava itself on the grid's diagonal for seed 0.

    .venv/bin/python benchmarks/fusion_gain.py [--seeds 5] [--json OUT] [--lava] [--curve]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from support.trained_run import trained_run

from converters.fusion_gain import (BranchSpikes, branch_spikes, fused_counts, power_of_two_choice, reliability_choice,
                                    snap_gain)
from converters.model_to_nir import export_model
from iemf_neuro.data import Corruption, load_split
from iemf_neuro.models import encode_inputs
from iemf_neuro.models.network import MODALITIES
from iemf_neuro.progress import progress
from iemf_neuro.training.checkpoint import load_run
from pipeline.simulate import SimulationRequest, batch_major, calibration_inputs, fixed_point_prediction, simulate_run

# Chosen from seed 0's unimodal validation curves (--curve, docs/benchmarks.md) before any arm was run: the levels
# where each head scores about clean, 0.75, 0.55, 0.35 and 0.2 (chance 0.1).
AUDIO_SNRS_DB = (None, 0.0, -5.0, -10.0, -15.0)  # None: clean
IMAGE_NOISE_STDS = (0.0, 0.4, 0.6, 0.9, 1.5)
GRID = [Corruption(audio_snr_db=snr, image_noise_std=std) for snr in AUDIO_SNRS_DB for std in IMAGE_NOISE_STDS]
GATES = ("full", "relative", "common")
UNDER_TEST = "reliability"  # the arm the floor is judged on, the proposed rule (power-of-two: its ceiling)
DEPLOYABLE = ("reliability", "power-of-two") + tuple(f"gate-{g}" for g in GATES)
BOOTSTRAP = 2000
CORRUPTION_SEED = 0  # the same degraded samples for every seed and arm: pairs are exact


def cell_name(c: Corruption) -> str:
    audio = "clean" if c.audio_snr_db is None else f"{c.audio_snr_db:g} dB"
    return f"audio {audio} / image {c.image_noise_std:g}"


def inverse_rule_gains(model, spikes: BranchSpikes) -> dict[str, float]:
    """The removed rule: E from spike-count softmaxes with the other projection silenced, h = 1 + tanh(1 - E/E_av),
    g = h / sqrt(h_a h_v), 3 mantissa bits."""
    def evidence(gains: dict[str, float]) -> float:
        p = torch.softmax(fused_counts(model, spikes, gains).double(), -1)
        return float(p.gather(1, spikes.labels[:, None]).mean())

    e_av = evidence({"audio": 1.0, "visual": 1.0})
    h = {m: 1 + math.tanh(1 - evidence({n: float(n == m) for n in MODALITIES}) / e_av) for m in MODALITIES}
    return {m: snap_gain(h[m] / math.sqrt(h["audio"] * h["visual"]), 3) for m in MODALITIES}


@dataclass
class Outcome:
    correct: np.ndarray  # [N] bool
    silent: np.ndarray  # [N] bool: the output layer never fired
    gains: dict[str, float] | None = None


def outcome(model, spikes: BranchSpikes, gains: dict[str, float]) -> Outcome:
    counts = fused_counts(model, spikes, gains)
    return Outcome((counts.argmax(-1) == spikes.labels).numpy(), (counts.sum(-1) == 0).numpy(), gains)


def static_arms(run, val, clean_val: BranchSpikes, test) -> dict[str, Outcome]:
    """Every static arm of one network in one cell: gains chosen on ``val`` (``clean_val``: the clean validation
    split's encoder spikes, the reliability rule's reference), scored on ``test``."""
    model, cfg, seed = run.model, run.model_config, run.train_config.seed
    val_spikes, test_spikes = branch_spikes(model, cfg, val, seed=seed), branch_spikes(model, cfg, test, seed=seed)
    gains = {"unity": {"audio": 1.0, "visual": 1.0}, "inverse (removed)": inverse_rule_gains(model, val_spikes),
             "reliability": reliability_choice(val_spikes, clean_val).gains,
             "power-of-two": power_of_two_choice(model, val_spikes).gains}
    out = {arm: outcome(model, test_spikes, g) for arm, g in gains.items()}
    poe = sum(test_spikes.head_log_probs.values()).argmax(-1)
    out["product-of-experts"] = Outcome((poe == test_spikes.labels).numpy(), np.zeros(len(poe), bool))
    return out


def gate_arm(run, test) -> Outcome:
    spikes = branch_spikes(run.model, run.model_config, test, seed=run.train_config.seed)
    return outcome(run.model, spikes, {"audio": 1.0, "visual": 1.0})


def paired_bootstrap(diff: np.ndarray, draws: int = BOOTSTRAP, seed: int = 0) -> tuple[float, float]:
    """95 % CI of the mean of ``diff`` [seeds, samples] (already averaged over cells), resampling seeds and samples."""
    rng = np.random.default_rng(seed)
    n_seeds, n = diff.shape
    means = np.empty(draws)
    for b in range(draws):
        means[b] = diff[rng.integers(0, n_seeds, n_seeds)][:, rng.integers(0, n, n)].mean()
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def summarise(results: dict[str, np.ndarray], silent: dict[str, np.ndarray]) -> dict[str, dict]:
    """results[arm]: correct [seeds, cells, samples] -> the reported figures (accuracies in points)."""
    clean = next(i for i, c in enumerate(GRID) if c.is_identity)
    base = results["unity"].mean(axis=1)
    out = {}
    for arm, correct in results.items():
        per_cell = correct.mean(axis=(0, 2))
        diff = correct.mean(axis=1) - base
        lo, hi = paired_bootstrap(diff)
        out[arm] = {"grid_mean": 100 * float(per_cell.mean()), "worst_cell": 100 * float(per_cell.min()),
                    "worst_cell_name": cell_name(GRID[int(per_cell.argmin())]),
                    "clean": 100 * float(per_cell[clean]),
                    "clean_diff_vs_unity": 100 * float(per_cell[clean] - results["unity"].mean(axis=(0, 2))[clean]),
                    "silent_rate": float(silent[arm].mean()), "diff_vs_unity": 100 * float(diff.mean()),
                    "ci95": [100 * lo, 100 * hi], "per_cell": [100 * float(a) for a in per_cell]}
    return out


def unimodal_curve(run_dir) -> None:
    """Each auxiliary head's validation accuracy over a fine range of its modality's degradation."""
    run = load_run(run_dir)
    for name, conditions in (("audio SNR dB", [Corruption(audio_snr_db=s) for s in
                                               (None, 20, 10, 5, 0, -5, -10, -15, -20)]),
                             ("image noise std", [Corruption(image_noise_std=s) for s in
                                                  (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9, 1.2, 1.5, 2.0)])):
        row = []
        for c in conditions:
            spikes = branch_spikes(run.model, run.model_config, load_split("val", c, seed=CORRUPTION_SEED))
            m = "audio" if name.startswith("audio") else "visual"
            accuracy = float((spikes.head_log_probs[m].argmax(-1) == spikes.labels).double().mean())
            row.append(f"{cell_name(c)}: {accuracy:.3f}")
        print(f"{name}: " + "; ".join(row))


def condition_fields(c: Corruption) -> dict:
    """The corruption fields ``simulate`` runs a cell under: its test samples and the training samples its
    fixed-point exponents are calibrated on (``pipeline.simulate.simulate_run``)."""
    return SimulationRequest(audio_snr_db=c.audio_snr_db, image_noise_std=c.image_noise_std,
                             image_occlusion=c.image_occlusion).corruption


def fixed_point_correct(run, gains: dict[str, float] | None, test, calibration: dict[str, np.ndarray]) -> np.ndarray:
    """Per test sample, whether the network exported with ``gains`` and quantised as ``simulate --precision fixed``
    quantises it (exponents calibrated on ``calibration``, training samples under the cell's condition) predicts
    the label; ``simulate_fixed`` is bit-exact with Lava's fixed-point models (tests/test_lava_conv.py), so the
    whole grid needs no Lava process."""
    x = encode_inputs(run.model_config, torch.as_tensor(test.audio), torch.as_tensor(test.image),
                      torch.Generator().manual_seed(run.train_config.seed))
    graph = export_model(run.model, run.model_config, gains)
    return fixed_point_prediction(graph, batch_major(*x), calibration) == np.asarray(test.labels)


def lava_check(run_dir, gains: dict[str, float] | None, cell: Corruption) -> dict:
    """Lava fixed point vs snnTorch (float64) on the test split of ``cell``, the network exported with ``gains``."""
    run = load_run(run_dir)
    request = SimulationRequest("fixed", "test", seed=CORRUPTION_SEED, **condition_fields(cell))
    summary = simulate_run(run_dir, request, graph=export_model(run.model, run.model_config, gains), progress=False)
    return {"cell": cell_name(cell), "lava_fixed": 100 * summary["accuracy"]["lava"],
            "snntorch": 100 * summary["accuracy"]["snntorch"]}


def fixed_point_figures(loaded, outcomes, arms: tuple[str, ...]) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """Fixed-point accuracy of ``arms`` on every seed and cell (gains as chosen in float), their difference to
    the same arm in snnTorch and to unity in fixed point, with paired bootstrap CIs; and the per-sample results."""
    fixed = {a: np.zeros_like(np.stack([[o.correct for o in row] for row in outcomes[a]])) for a in arms}
    for ci, c in enumerate(progress(GRID, desc="fixed point", unit="cell")):
        test = load_split("test", c, seed=CORRUPTION_SEED)
        for s, nets in loaded.items():
            calibration = calibration_inputs(nets["static"], corruption=condition_fields(c))
            for a in arms:
                run = nets[a] if a.startswith("gate-") else nets["static"]
                fixed[a][s, ci] = fixed_point_correct(run, outcomes[a][s][ci].gains, test, calibration)
    out = {}
    for a in arms:
        snn = np.stack([[o.correct for o in row] for row in outcomes[a]])
        vs_float, vs_unity = fixed[a].mean(1) - snn.mean(1), fixed[a].mean(1) - fixed["unity"].mean(1)
        out[a] = {"grid_mean_fixed": 100 * float(fixed[a].mean()),
                  "fixed_minus_snntorch": 100 * float(vs_float.mean()),
                  "fixed_minus_snntorch_ci95": [100 * v for v in paired_bootstrap(vs_float)],
                  "max_abs_cell_fixed_minus_snntorch": 100 * float(np.abs(fixed[a].mean((0, 2))
                                                                          - snn.mean((0, 2))).max()),
                  "diff_vs_unity_fixed": 100 * float(vs_unity.mean()),
                  "diff_vs_unity_fixed_ci95": [100 * v for v in paired_bootstrap(vs_unity)]}
    return out, fixed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="trained seeds per network (default 5)")
    parser.add_argument("--json", default=None, help="write the arms' figures to this JSON file")
    parser.add_argument("--lava", action="store_true",
                        help="fixed point: every cell and seed, and Lava on the diagonal")
    parser.add_argument("--curve", action="store_true", help="print the unimodal curves of seed 0 and stop")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    if args.curve:
        unimodal_curve(trained_run("avdigits-mlp", 0))
        return
    runs = {s: {"static": trained_run("avdigits-mlp", s),
                **{f"gate-{g}": trained_run("avdigits-mlp", s, (f"model.gate={g}",)) for g in GATES}}
            for s in range(args.seeds)}
    loaded = {s: {arm: load_run(d) for arm, d in dirs.items()} for s, dirs in runs.items()}
    clean_val = {s: branch_spikes(nets["static"].model, nets["static"].model_config,
                                  load_split("val", seed=CORRUPTION_SEED), seed=nets["static"].train_config.seed)
                 for s, nets in loaded.items()}
    outcomes: dict[str, list] = {}  # arm -> [seed][cell] Outcome
    for c in progress(GRID, desc="cells", unit="cell"):
        val, test = load_split("val", c, seed=CORRUPTION_SEED), load_split("test", c, seed=CORRUPTION_SEED)
        for s, nets in loaded.items():
            cell = static_arms(nets["static"], val, clean_val[s], test)
            cell.update({f"gate-{g}": gate_arm(nets[f"gate-{g}"], test) for g in GATES})
            for arm, o in cell.items():
                outcomes.setdefault(arm, [[] for _ in loaded])[s].append(o)
    correct = {a: np.stack([[o.correct for o in row] for row in rows]) for a, rows in outcomes.items()}
    silent = {a: np.stack([[o.silent for o in row] for row in rows]) for a, rows in outcomes.items()}
    figures = summarise(correct, silent)
    n = correct["unity"].shape[2]
    print(f"{len(GRID)} cells (audio SNR {AUDIO_SNRS_DB} x image noise {IMAGE_NOISE_STDS}), {args.seeds} seeds, "
          f"{n} test samples per cell; accuracy in points, CI: paired bootstrap over seeds and samples")
    print(f"{'arm':<22}{'grid mean':>10}{'worst':>8}{'clean':>8}{'silent':>8}{'vs unity':>10}  95 % CI")
    for arm, f in figures.items():
        print(f"{arm:<22}{f['grid_mean']:>10.2f}{f['worst_cell']:>8.2f}{f['clean']:>8.2f}{f['silent_rate']:>8.3f}"
              f"{f['diff_vs_unity']:>+10.2f}  [{f['ci95'][0]:+.2f}, {f['ci95'][1]:+.2f}]")
    f = figures[UNDER_TEST]
    floor = f["diff_vs_unity"] >= 2 and f["ci95"][0] > 0 and f["clean_diff_vs_unity"] >= -0.5
    print(f"arm under test: {UNDER_TEST}, {f['diff_vs_unity']:+.2f} points grid mean (CI {f['ci95'][0]:+.2f} .. "
          f"{f['ci95'][1]:+.2f}), clean {f['clean_diff_vs_unity']:+.2f}: floor (>= +2, CI above 0, clean >= -0.5) "
          f"{'met' if floor else 'NOT met'}; highest on test among the deployable arms (after the fact): "
          f"{max(DEPLOYABLE, key=lambda a: figures[a]['diff_vs_unity'])}")
    lava = fixed = None
    if args.lava:
        fixed, fixed_correct = fixed_point_figures(loaded, outcomes, ("unity", UNDER_TEST, "power-of-two"))
        for arm, f in fixed.items():
            lo, hi = f["fixed_minus_snntorch_ci95"]
            u_lo, u_hi = f["diff_vs_unity_fixed_ci95"]
            print(f"fixed point, {arm}: grid mean {f['grid_mean_fixed']:.2f}, minus snnTorch "
                  f"{f['fixed_minus_snntorch']:+.2f} (CI {lo:+.2f} .. {hi:+.2f}, largest cell gap "
                  f"{f['max_abs_cell_fixed_minus_snntorch']:.2f}), vs unity in fixed point "
                  f"{f['diff_vs_unity_fixed']:+.2f} (CI {u_lo:+.2f} .. {u_hi:+.2f})")
        diagonal = [GRID[i * len(IMAGE_NOISE_STDS) + i] for i in range(len(AUDIO_SNRS_DB))]
        lava = [lava_check(runs[0]["static"], outcomes[UNDER_TEST][0][GRID.index(c)].gains, c) for c in diagonal]
        for c, row in zip(diagonal, lava):
            row["simulate_fixed"] = 100 * float(fixed_correct[UNDER_TEST][0, GRID.index(c)].mean())
            print(f"Lava fixed point, {UNDER_TEST}, seed 0, {row['cell']}: {row['lava_fixed']:.2f} (bit-exact "
                  f"simulation {row['simulate_fixed']:.2f}) vs snnTorch {row['snntorch']:.2f} "
                  f"({row['lava_fixed'] - row['snntorch']:+.2f} points)")
    print(f"({time.perf_counter() - start:.0f} s)")
    if args.json:
        arms = {a: {k: f[k] for k in ("grid_mean", "clean", "diff_vs_unity", "ci95", "worst_cell", "silent_rate")}
                for a, f in figures.items()}
        with open(args.json, "w") as fh:
            json.dump({"arms": arms, "grid": {"audio_snr_db": AUDIO_SNRS_DB, "image_noise_std": IMAGE_NOISE_STDS},
                       "seeds": args.seeds, "under_test": UNDER_TEST, "floor_met": floor, "lava": lava,
                       "fixed_point": fixed,
                       "per_cell": {a: f["per_cell"] for a, f in figures.items()}}, fh, indent=1)


if __name__ == "__main__":
    main()
