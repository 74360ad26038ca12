"""Lava throughput: the streaming simulator (compile once, samples back to back) vs a naive loop that builds,
compiles and runs a fresh Lava network per sample. Same model, same samples, one run; prints both and the ratio.

    .venv/bin/python benchmarks/lava_throughput.py [RUN_DIR] [--samples N] [--precision float|fixed]

Without RUN_DIR it measures avdigits-mlp seed 0, trained on first use into runs/bench-avdigits-mlp-s0.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from support.trained_run import trained_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path, default=None, help="trained run (default: see above)")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--precision", choices=("float", "fixed"), default="float")
    args = parser.parse_args()

    from converters.model_to_nir import export_model
    from hardware_targets.lava_sim import simulate_graph
    from iemf_neuro.models import encode_inputs
    from iemf_neuro.training.checkpoint import load_run
    from iemf_neuro.training.data import load_dataset

    torch.set_num_threads(1)
    run = load_run(args.run_dir or trained_run())
    cfg = run.model_config
    data = load_dataset(run.config, "test")
    n = args.samples
    x_a, x_v = encode_inputs(cfg, data.audio[:n], data.image[:n], torch.Generator().manual_seed(0))
    inputs = {"audio": x_a.transpose(0, 1).double().numpy(), "visual": x_v.transpose(0, 1).double().numpy()}
    graph = export_model(run.model, cfg)

    start = time.perf_counter()
    stream = simulate_graph(graph, inputs, args.precision, progress=False)
    stream_s = time.perf_counter() - start
    start = time.perf_counter()
    naive = [simulate_graph(graph, {k: v[i:i + 1] for k, v in inputs.items()}, args.precision, progress=False)
             for i in range(n)]
    naive_s = time.perf_counter() - start
    same = all(np.array_equal(stream.spikes[k][i:i + 1], r.spikes[k]) for i, r in enumerate(naive)
               for k in stream.spikes)
    print(f"model {cfg.name}, {n} test samples, T={cfg.time_steps}, precision {args.precision}")
    print(f"streaming (one compile, state reset per sample): {n / stream_s:8.2f} samples/s ({stream_s:.2f} s)")
    print(f"naive (fresh Lava network per sample):           {n / naive_s:8.2f} samples/s ({naive_s:.2f} s)")
    print(f"speed-up: {naive_s / stream_s:.1f}x; identical spikes: {same}")


if __name__ == "__main__":
    main()
