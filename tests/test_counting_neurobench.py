"""Cross-check against NeuroBench 2.3's SynapticOperations on the same snnTorch model.

Conventions: NeuroBench counts, per connection layer and time step, the non-zero inputs times their non-zero
weights (Effective_ACs when the input is in {-1, 0, 1}, else Effective_MACs) and Dense = every weight every
step, averaged per sample and summed over steps. Ours attributes the same ops to the target neuron layer, so
for a Linear network Effective_ACs = our ACs, Effective_MACs = our MACs, Dense = sum(in x out) x T.
"""

import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from neurobench.benchmarks import Benchmark
from neurobench.metrics.workload import SynapticOperations
from neurobench.models import SNNTorchModel
from torch import nn

from hardware_targets.counting import count_graph


@pytest.mark.parametrize("graded", [True, False])
def test_synops_equal_neurobench(graded):
    torch.manual_seed(0)
    N, T = 4, 8
    net = nn.Sequential(nn.Linear(6, 5), snn.Leaky(beta=0.875, init_hidden=True),
                        nn.Linear(5, 3), snn.Leaky(beta=0.875, init_hidden=True, output=True))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[2].weight.mul_(3.0)
        net[2].weight[0, 1] = 0.0  # a pruned synapse: neither counts it
    x = torch.rand(N, T, 6) if graded else (torch.rand(N, T, 6) < 0.5).float()

    recorded = []
    hook = net[1].register_forward_hook(lambda m, i, o: recorded.append(o.detach().clone()))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(N)), batch_size=N)
    bench = Benchmark(SNNTorchModel(net), loader, [], [], [[], [SynapticOperations]])
    result = bench.run(quiet=True)["SynapticOperations"]
    hook.remove()
    hidden = torch.stack(recorded[-T:], dim=1).numpy().astype(np.uint8)  # [N, T, 5], the benchmark's own run

    def lif(n):
        return nir.LIF(tau=np.full(n, 8.0), r=np.full(n, 8.0), v_leak=np.zeros(n), v_threshold=np.ones(n))

    graph = nir.NIRGraph(
        nodes={"in": nir.Input(input_type=np.array([6])),
               "fc0": nir.Affine(net[0].weight.detach().numpy(), net[0].bias.detach().numpy()), "l0": lif(5),
               "fc1": nir.Affine(net[2].weight.detach().numpy(), net[2].bias.detach().numpy()), "l1": lif(3),
               "out": nir.Output(output_type=np.array([3]))},
        edges=[("in", "fc0"), ("fc0", "l0"), ("l0", "fc1"), ("fc1", "l1"), ("l1", "out")])
    counts = count_graph(graph, {"in": x.numpy()}, {"l0": hidden, "l1": np.zeros((N, T, 3), np.uint8)})
    assert hidden.sum() > 0
    assert counts.per_sample("acs").mean() == pytest.approx(result["Effective_ACs"], rel=1e-12)
    assert counts.per_sample("macs").mean() == pytest.approx(result["Effective_MACs"], rel=1e-12)
    # Dense: NeuroBench counts every weight, pruned ones too (6*5 + 5*3) * T; we hold one synapse fewer.
    assert result["Dense"] == (6 * 5 + 5 * 3) * T
    assert counts.per_sample("dense_macs").mean() == (6 * 5 + 5 * 3 - 1) * T


def test_exported_avdigits_cnn_against_neurobench():
    """The exported avdigits-cnn graph, one random run, counted by us and by NeuroBench's own metrics.
    Pool-free layers agree exactly (ACs, MACs, Dense); on pool -> conv/linear paths NeuroBench sees the pooled
    map (graded, MACs, Dense = conv taps) where we fold the pool into the connection (spikes x folded fan-out,
    ACs), so our Dense is NeuroBench's x the 2 x 2 pool area. Activation sparsity is equal."""
    from converters.model_to_nir import export_model
    from hardware_targets.counting import neurobench_counts, node_shapes
    from iemf_neuro.models import build_model, get_model_config

    torch.manual_seed(0)
    cfg = get_model_config("avdigits-cnn")
    graph = export_model(build_model(cfg), cfg)
    rng = np.random.default_rng(0)
    n, t = 2, 3
    shapes = node_shapes(graph)
    inputs = {k: (rng.random((n, t, *s)) * (rng.random((n, t, *s)) < 0.7)).astype(np.float32)
              for k, s in shapes.items() if isinstance(graph.nodes[k], nir.Input)}
    spikes = {k: (rng.random((n, t, *s)) < 0.15).astype(np.uint8)
              for k, s in shapes.items() if not isinstance(graph.nodes[k], nir.Input)}
    ours, theirs = count_graph(graph, inputs, spikes), neurobench_counts(graph, inputs, spikes)
    pooled = {"audio.1", "visual.1", "fusion"}
    for name, layer in ours.layers.items():
        nb = theirs[name]
        if name in pooled:
            assert layer.synapses * t == 4 * nb["Dense"] and layer.acs.sum() / n > nb["Effective_MACs"] > 0
        else:
            assert (layer.acs.sum() / n, layer.macs.sum() / n, layer.synapses * t) == \
                (nb["Effective_ACs"], nb["Effective_MACs"], nb["Dense"])
    ours_sparsity = 1 - ours.per_sample("spikes").sum() / (n * t * sum(l.neurons for l in ours.layers.values()))
    assert ours_sparsity == pytest.approx(theirs["network"]["activation_sparsity"], rel=1e-12)
