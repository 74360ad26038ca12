"""Mapping and energy of the untrained avdigits-mlp and avdigits-cnn on every built-in target.

Seed-0 untrained models exported with ``export_model``, the first 64 AV-Digits test samples encoded with
seed 0 and run through the NIR reference executor; then ``map_graph`` (balanced on the counts) and
``estimate`` per target. Prints the mapping time, cores per layer and fit per target, then the CLI's table.

Run: ``.venv/bin/python benchmarks/energy_targets.py``
"""

from __future__ import annotations

import time

import torch

from converters.model_to_nir import export_model
from converters.nir_executor import run_graph
from hardware_targets.counting import count_graph
from hardware_targets.energy import estimate
from hardware_targets.mapping import map_graph
from hardware_targets.report import table
from hardware_targets.targets import load_target
from iemf_neuro.data import load_split
from iemf_neuro.models import build_model, encode_inputs, get_model_config

TARGETS = ("loihi1", "loihi2", "truenorth", "ann-gpu")


def main() -> None:
    split = load_split("test")
    for name in ("avdigits-mlp", "avdigits-cnn"):
        torch.manual_seed(0)
        cfg = get_model_config(name)
        graph = export_model(build_model(cfg), cfg)
        audio, visual = encode_inputs(cfg, split.audio[:64], split.image[:64], torch.Generator().manual_seed(0))
        inputs = {"audio": audio.transpose(0, 1).contiguous().numpy(),
                  "visual": visual.transpose(0, 1).contiguous().numpy()}
        result = run_graph(graph, inputs)
        tic = time.perf_counter()
        counts = count_graph(graph, inputs, {k: s.numpy().astype("uint8") for k, s in result.spikes.items()})
        print(f"\n{name}: count_graph {time.perf_counter() - tic:.2f} s (64 samples)")
        reports = {}
        for target_name in TARGETS:
            target = load_target(target_name)
            tic = time.perf_counter()
            mapping = map_graph(graph, target, counts)
            elapsed = time.perf_counter() - tic
            report = reports[target_name] = estimate(counts, mapping, target)
            why = "" if report.fits else ": " + "; ".join(report.violations)
            print(f"  {target_name}: map_graph {elapsed:.2f} s, cores per layer {report.cores_per_layer}, "
                  f"fits {report.fits}{why}")
        print(table(reports))


if __name__ == "__main__":
    main()
