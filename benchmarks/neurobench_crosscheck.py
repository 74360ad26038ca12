"""Our counts against NeuroBench 2.3's own metrics on the exported avdigits-cnn and cremad-resnet18 graphs.

Untrained models (seed 0) exported with ``export_model``; one run of random activity (inputs graded with
70 % non-zero, every neuron layer spiking with probability 0.1 per step), N = 1 sample, the model's T. Both
sides count the same arrays: ours with ``count_graph``, NeuroBench's SynapticOperations and
ActivationSparsity fed each connection layer's inputs (``hardware_targets.counting.neurobench_counts``).

Expected: layers whose paths are all connection layers agree exactly. Three differences, each explained:
1. a pooling node feeding a conv/linear: NeuroBench counts the pooled (graded) map as MACs and Dense as the
   unfolded kernel taps; we count spikes through the folded connection (ACs), Dense x the pool area;
2. an identity shortcut (ResNet blocks without a downsampling conv): NeuroBench has no connection layer
   for it and counts nothing; we count one synapse per neuron (Dense ratio 1 + 1/fan-in);
3. NeuroBench accumulates in float32: above 2**24 ops per layer its count is rounded (a few ops in 1e7).

Run: ``.venv/bin/python benchmarks/neurobench_crosscheck.py [avdigits-cnn cremad-resnet18]``
"""

from __future__ import annotations

import sys
import time

import nir
import numpy as np
import torch

from converters.model_to_nir import export_model
from hardware_targets.counting import count_graph, neurobench_counts, node_shapes
from iemf_neuro.models import build_model, get_model_config


def check(name: str) -> None:
    torch.manual_seed(0)
    cfg = get_model_config(name)
    graph = export_model(build_model(cfg), cfg)
    rng = np.random.default_rng(0)
    n, t = 1, cfg.time_steps
    shapes = node_shapes(graph)
    inputs = {k: (rng.random((n, t, *s)) * (rng.random((n, t, *s)) < 0.7)).astype(np.float32)
              for k, s in shapes.items() if isinstance(graph.nodes[k], nir.Input)}
    spikes = {k: (rng.random((n, t, *s)) < 0.1).astype(np.uint8)
              for k, s in shapes.items() if not isinstance(graph.nodes[k], nir.Input)}
    tic = time.perf_counter()
    ours = count_graph(graph, inputs, spikes)
    t_ours = time.perf_counter() - tic
    tic = time.perf_counter()
    theirs = neurobench_counts(graph, inputs, spikes)
    t_theirs = time.perf_counter() - tic
    equal, pooled = 0, 0
    print(f"\n{name}: counted in {t_ours:.1f} s (ours), {t_theirs:.1f} s (NeuroBench)")
    print(f"{'layer':18} {'ours ACs':>12} {'ours MACs':>12} {'NB ACs':>12} {'NB MACs':>12} {'dense ratio':>11}")
    for layer_name, layer in ours.layers.items():
        nb = theirs[layer_name]
        mine = (layer.acs.sum() / n, layer.macs.sum() / n, layer.synapses * t)
        same = mine == (nb["Effective_ACs"], nb["Effective_MACs"], nb["Dense"])
        equal += same
        pooled += not same
        print(f"{layer_name:18} {mine[0]:12.0f} {mine[1]:12.0f} {nb['Effective_ACs']:12.0f} "
              f"{nb['Effective_MACs']:12.0f} {mine[2] / nb['Dense']:11.3f}{'' if same else '  differs'}")
    sparsity = 1 - ours.per_sample("spikes").sum() / (n * t * sum(l.neurons for l in ours.layers.values()))
    print(f"layers equal: {equal}, differing (see the docstring): {pooled}; activation sparsity ours "
          f"{sparsity:.6f}, NeuroBench {theirs['network']['activation_sparsity']:.6f}")


if __name__ == "__main__":
    for model in sys.argv[1:] or ["avdigits-cnn", "cremad-resnet18"]:
        check(model)
