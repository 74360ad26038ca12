"""Export fidelity: snnTorch model vs the NIR reference executor on the whole AV-Digits test set.

Prints, per layer, the spike entries that differ (float32 and float64) and the accuracy of each side.
``--resnet18`` adds cremad-resnet18 at full input size (random weights, BatchNorm with random running
statistics, folded at export) on a few random inputs, in float64 and float32.

    .venv/bin/python benchmarks/fidelity.py [--run RUN_DIR] [--resnet18]

Without --run it checks avdigits-mlp seed 0, trained on first use into runs/bench-avdigits-mlp-s0.
"""

from __future__ import annotations

import argparse
import time

import torch
from support.trained_run import trained_run

from converters.model_to_nir import compare_with_model, export_model
from iemf_neuro.data import load_split
from iemf_neuro.models import build_model, encode_inputs, get_model_config
from iemf_neuro.models.build import spread_batchnorm
from iemf_neuro.progress import progress
from iemf_neuro.training.checkpoint import load_run


def test_set_fidelity(run_dir, batch_size: int, seed: int) -> None:
    run = load_run(run_dir)
    cfg, model = run.model_config, run.model
    graph = export_model(model, cfg, metadata={"run": {"run_dir": str(run.run_dir), "epoch": run.epoch}})
    data = load_split("test", seed=run.train_config.seed)
    labels = data.labels
    print(f"run {run_dir} ({cfg.name}, fusion {cfg.fusion}, T={cfg.time_steps}), AV-Digits test: {len(labels)} samples")
    for dtype in (torch.float32, torch.float64):
        generator = torch.Generator().manual_seed(seed)
        mism: dict[str, int] = {}
        spikes: dict[str, int] = {}
        correct_model = correct_graph = 0
        start = time.perf_counter()
        for i in progress(range(0, len(labels), batch_size), desc=str(dtype), unit="batch"):
            sl = slice(i, i + batch_size)
            x_a, x_v = encode_inputs(cfg, data.audio[sl], data.image[sl], generator)
            check = compare_with_model(model, graph, x_a, x_v, dtype)
            for layer, n in check.mismatches.items():
                mism[layer] = mism.get(layer, 0) + n
                spikes[layer] = spikes.get(layer, 0) + check.model_spikes[layer]
            correct_model += int((check.model_prediction == labels[sl]).sum())
            correct_graph += int((check.graph_prediction == labels[sl]).sum())
        elapsed = time.perf_counter() - start
        print(f"\n{dtype}: accuracy snnTorch {correct_model / len(labels):.4f}  NIR executor "
              f"{correct_graph / len(labels):.4f}  ({elapsed:.1f} s for both)")
        print(f"  {'layer':<12}{'mismatches':>12}{'model spikes':>14}")
        for layer in mism:
            print(f"  {layer:<12}{mism[layer]:>12}{spikes[layer]:>14}")


def resnet18_fidelity(batch: int, seed: int) -> None:
    torch.manual_seed(seed)
    cfg = get_model_config("cremad-resnet18")
    model = build_model(cfg)
    spread_batchnorm(model)
    with torch.no_grad():
        model.fusion.bias.normal_(0, 0.3)
    model.eval()
    x_a, x_v = encode_inputs(cfg, torch.rand(batch, *cfg.audio.input_shape), torch.rand(batch, *cfg.visual.input_shape))
    for dtype in (torch.float64, torch.float32):
        start = time.perf_counter()
        net = model.to(dtype)
        check = compare_with_model(net, export_model(net, cfg), x_a, x_v, dtype)
        total = sum(check.mismatches.values())
        fired = sum(1 for c in check.model_spikes.values() if c > 0)
        print(f"\ncremad-resnet18 (full size, {batch} random inputs, {dtype}, BatchNorm folded): {total} mismatches "
              f"of {sum(check.model_spikes.values())} spikes over {len(check.mismatches)} layers ({fired} fired), "
              f"{time.perf_counter() - start:.1f} s")
        for layer, n in check.mismatches.items():
            if n:
                print(f"  {layer}: {n} mismatches of {check.model_spikes[layer]} spikes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=None, help="trained run directory (default: see above)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="encoding seed (rate encoding)")
    parser.add_argument("--resnet18", action="store_true", help="also check cremad-resnet18 at full size")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    test_set_fidelity(args.run or trained_run(), args.batch_size, args.seed)
    if args.resnet18:
        resnet18_fidelity(2, args.seed)


if __name__ == "__main__":
    main()
