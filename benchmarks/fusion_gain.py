"""Calibrated fusion gains vs g = 1 on degraded AV-Digits conditions.

For each condition: calibrate on the validation split under that condition (``converters.fusion_gain``),
export with the gains folded, and measure test accuracy (same condition) through the NIR reference executor
(float32) for g = (1, 1), the calibrated gains, and the reciprocal gains (a reliability-weighting control:
weaker evidence -> *smaller* gain). Reports whatever it finds.

    .venv/bin/python benchmarks/fusion_gain.py [--run RUN_DIR]

Without --run it measures avdigits-mlp seed 0, trained on first use into runs/bench-avdigits-mlp-s0.
"""

from __future__ import annotations

import argparse
import time

import torch
from support.trained_run import trained_run

from converters.fusion_gain import calibrate_gains
from converters.model_to_nir import export_model
from converters.nir_executor import run_graph
from iemf_neuro.data import Corruption, load_split
from iemf_neuro.models import encode_inputs
from iemf_neuro.training.checkpoint import load_run

CONDITIONS = {
    "clean": Corruption(),
    "audio SNR 0 dB": Corruption(audio_snr_db=0.0),
    "audio SNR -5 dB": Corruption(audio_snr_db=-5.0),
    "image noise 0.5": Corruption(image_noise_std=0.5),
    "image occlusion 0.5": Corruption(image_occlusion=0.5),
    "audio 0 dB + image noise 0.3": Corruption(audio_snr_db=0.0, image_noise_std=0.3),
}


def graph_accuracy(model, cfg, gains: dict[str, float], data, batch_size: int, seed: int) -> float:
    graph = export_model(model, cfg, gains=gains)
    generator = torch.Generator().manual_seed(seed)
    correct = 0
    for i in range(0, len(data.labels), batch_size):
        sl = slice(i, i + batch_size)
        x_a, x_v = encode_inputs(cfg, data.audio[sl], data.image[sl], generator)
        run = run_graph(graph, {"audio": x_a.transpose(0, 1), "visual": x_v.transpose(0, 1)}, dtype=torch.float32)
        correct += int((run.spikes["output"].sum(dim=1).argmax(dim=-1) == data.labels[sl]).sum())
    return correct / len(data.labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=None, help="trained run directory (default: see above)")
    parser.add_argument("--mantissa-bits", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=150)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run_dir = args.run or trained_run()
    run = load_run(run_dir)
    cfg, model, seed = run.model_config, run.model, run.train_config.seed
    print(f"run {run_dir} ({cfg.name}, fusion {cfg.fusion}); calibrate on val, accuracy on test, "
          f"NIR executor float32, mantissa bits {args.mantissa_bits}")
    print(f"{'condition':<30}{'E_a':>7}{'E_v':>7}{'E_av':>7}{'g_a':>8}{'g_v':>8}"
          f"{'acc g=1':>9}{'acc cal':>9}{'acc 1/g':>9}")
    start = time.perf_counter()
    for name, condition in CONDITIONS.items():
        val, test = load_split("val", condition, seed=seed), load_split("test", condition, seed=seed)
        fg = calibrate_gains(model, cfg, val, mantissa_bits=args.mantissa_bits, seed=seed)
        g = fg.gains
        reciprocal = {m: 1.0 / v for m, v in g.items()}
        accs = [graph_accuracy(model, cfg, gains, test, args.batch_size, seed)
                for gains in ({"audio": 1.0, "visual": 1.0}, g, reciprocal)]
        e = fg.evidence
        print(f"{name:<30}{e['audio']:>7.3f}{e['visual']:>7.3f}{e['av']:>7.3f}{g['audio']:>8.4g}{g['visual']:>8.4g}"
              + "".join(f"{a:>9.4f}" for a in accs))
    print(f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
