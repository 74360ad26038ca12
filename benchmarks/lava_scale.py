"""Lava at scale: cremad-resnet18 at full input size, one sample, simulated in Lava float and fixed point.

Random weights (seeded; BatchNorm with random statistics folded at export, readout weights scaled) so that
every layer fires; no dataset needed. Float is checked spike for spike against the reference executor
(``converters.nir_executor.run_graph``, float64), fixed point against ``converters.quantize.simulate_fixed``.
Prints steps/s, seconds per sample and peak RSS (this process plus the largest of the Lava worker tree).

    .venv/bin/python benchmarks/lava_scale.py
"""

from __future__ import annotations

import resource
import time

import numpy as np
import torch
from torch import nn

from converters.model_to_nir import export_model
from converters.nir_executor import run_graph
from converters.nir_to_lava import plan_graph
from converters.quantize import quantize_plan, simulate_fixed
from hardware_targets.lava_sim import simulate_graph
from iemf_neuro.models import ModelConfig, build_model, encode_inputs, get_model_config
from iemf_neuro.models.build import spread_batchnorm

SEED = 0
READOUT_GAIN = 8.0  # fusion and output weights: random ones leave the 6 output neurons silent


def firing_model(seed: int) -> tuple[nn.Module, dict[str, np.ndarray], ModelConfig]:
    """cremad-resnet18 (T = 4, full size) whose layers all fire, and one random sample, batch-major."""
    torch.manual_seed(seed)
    cfg = get_model_config("cremad-resnet18")
    model = build_model(cfg)
    spread_batchnorm(model)
    with torch.no_grad():
        for m in list(model.fusion.modules()) + list(model.output.modules()):
            if isinstance(m, nn.Linear):
                m.weight.mul_(READOUT_GAIN)
    model.eval()
    gen = torch.Generator().manual_seed(seed + 1)
    x_a, x_v = encode_inputs(cfg, torch.rand(1, *cfg.audio.input_shape, generator=gen),
                             torch.rand(1, *cfg.visual.input_shape, generator=gen))
    inputs = {"audio": x_a.transpose(0, 1).double().numpy(), "visual": x_v.transpose(0, 1).double().numpy()}
    return model.double(), inputs, cfg


def peak_rss_gb() -> tuple[float, float]:
    """Peak RSS in GB of this process and of the largest process of the Lava worker trees so far (Linux: KiB)."""
    return tuple(resource.getrusage(who).ru_maxrss * 1024 / 1e9
                 for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def mismatches(run_spikes: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> tuple[int, int, int]:
    """(differing spike entries, reference spikes, layers that never fire in the reference)."""
    diff = sum(int(np.sum(run_spikes[k] != reference[k].astype(np.uint8))) for k in reference)
    return diff, int(sum(v.sum() for v in reference.values())), sum(1 for v in reference.values() if v.sum() == 0)


def report(label: str, run, reference: dict[str, np.ndarray]) -> None:
    diff, spikes, silent = mismatches(run.spikes, reference)
    own, worker = peak_rss_gb()
    print(f"{label}: {run.steps} steps in {run.wall_s:.1f} s ({run.steps / run.wall_s:.2f} steps/s, "
          f"{run.wall_s:.1f} s/sample), peak RSS {own + worker:.2f} GB (this process {own:.2f}, Lava {worker:.2f}), "
          f"{diff} mismatches of {spikes} spikes over {len(reference)} layers ({silent} silent)")


def main() -> None:
    model, inputs, cfg = firing_model(SEED)
    graph = export_model(model, cfg)
    del model  # the graph holds the weights now: keep this process's peak RSS low
    start = time.perf_counter()
    reference = {k: v.numpy() for k, v in run_graph(graph, inputs).spikes.items()}
    print(f"cremad-resnet18, 1 sample, T = {cfg.time_steps}, audio {cfg.audio.input_shape}, visual "
          f"{cfg.visual.input_shape}; reference executor {time.perf_counter() - start:.1f} s")
    report("lava float", simulate_graph(graph, inputs, "float", progress=False), reference)
    plan = plan_graph(graph)
    fixed_reference = simulate_fixed(plan, quantize_plan(plan, inputs), inputs)
    report("lava fixed", simulate_graph(graph, inputs, "fixed", progress=False), fixed_reference)


if __name__ == "__main__":
    main()
