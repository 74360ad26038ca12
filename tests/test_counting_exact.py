"""Counting is exact: Dense = sum(in x out) x T, conv fan-out (padding excluded) equals brute force."""

import nir
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hardware_targets.counting import count_graph, fan_in, synaptic_paths
from iemf_neuro.errors import UserError


def lif(n):
    shape = n if isinstance(n, tuple) else (n,)
    return nir.LIF(tau=np.full(shape, 8.0), r=np.full(shape, 8.0), v_leak=np.zeros(shape),
                   v_threshold=np.ones(shape))


def mlp_graph(sizes, rng):
    nodes = {"in": nir.Input(input_type=np.array([sizes[0]]))}
    edges, prev = [], "in"
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        nodes[f"fc{i}"], nodes[f"l{i}"] = nir.Affine(rng.normal(size=(b, a)), np.zeros(b)), lif(b)
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"l{i}")]
        prev = f"l{i}"
    nodes["out"] = nir.Output(output_type=np.array([sizes[-1]]))
    return nir.NIRGraph(nodes=nodes, edges=edges + [(prev, "out")])


def test_dense_is_sum_in_times_out_times_T_and_synops_are_spikes_times_fanout():
    rng = np.random.default_rng(0)
    sizes, N, T = (7, 5, 3, 4), 3, 6
    graph = mlp_graph(sizes, rng)
    x = (rng.random((N, T, 7)) < 0.4).astype(np.uint8)  # binary input: ACs
    spikes = {f"l{i}": (rng.random((N, T, b)) < 0.3).astype(np.uint8) for i, b in enumerate(sizes[1:])}
    counts = count_graph(graph, {"in": x}, spikes)
    dense = counts.per_sample("dense_macs")
    assert np.all(dense == sum(a * b for a, b in zip(sizes, sizes[1:])) * T)
    sources = [x] + [spikes[f"l{i}"] for i in range(len(sizes) - 2)]
    for i, (src, out) in enumerate(zip(sources, sizes[1:])):
        layer = counts.layers[f"l{i}"]
        np.testing.assert_array_equal(layer.acs, src.sum(axis=2) * out)
        assert layer.macs.sum() == 0
        np.testing.assert_array_equal(layer.spikes, spikes[f"l{i}"].sum(axis=2))
        # active: target neurons reached by >= 1 event (dense layer: all of them iff any source fired)
        np.testing.assert_array_equal(layer.active, (src.sum(axis=2) > 0) * out)


def test_graded_inputs_count_as_macs_and_zero_weights_hold_no_synapse():
    rng = np.random.default_rng(1)
    graph = mlp_graph((4, 3), rng)
    graph.nodes["fc0"].weight[1, 2] = 0.0
    x = rng.random((2, 5, 4)) * (rng.random((2, 5, 4)) < 0.5)
    counts = count_graph(graph, {"in": x}, {"l0": np.zeros((2, 5, 3), np.uint8)})
    layer = counts.layers["l0"]
    fanout = np.array([3, 3, 2, 3])
    np.testing.assert_array_equal(layer.macs, (x != 0) @ fanout)
    assert layer.acs.sum() == 0 and layer.synapses == 11 and layer.max_fan_in == 4


def brute_fanout(op, in_shape):
    """Distinct targets per input neuron, by pushing every one-hot through the op with |weights| -> 1."""
    n = int(np.prod(in_shape))
    eye = torch.eye(n, dtype=torch.float64).reshape(n, *in_shape)
    with torch.no_grad():
        out = op(eye).reshape(n, -1)
    return (out != 0).sum(dim=1).numpy(), (out != 0).sum(dim=0).numpy()


@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, 1, 1, 1), (2, 1, 1, 1), (1, 2, 2, 2), (2, 0, 1, 1),
                                                            (1, (1, 0), 1, 1)])
def test_conv_fanout_padding_excluded_matches_brute_force(stride, padding, dilation, groups):
    rng = np.random.default_rng(2)
    c_in, c_out, h, w = 2, 4, 7, 6
    weight = rng.normal(size=(c_out, c_in // groups, 3, 3))
    conv = nir.Conv2d(input_shape=(h, w), weight=weight, stride=stride, padding=padding, dilation=dilation,
                      groups=groups, bias=np.zeros(c_out))
    pad = padding if isinstance(padding, tuple) else (padding, padding)
    op = lambda x: F.conv2d(x, torch.from_numpy(np.abs(weight)), None, stride, pad, dilation, groups)  # noqa: E731
    out_shape = tuple(op(torch.zeros(1, c_in, h, w, dtype=torch.float64)).shape[1:])
    graph = nir.NIRGraph(nodes={"in": nir.Input(input_type=np.array([c_in, h, w])), "conv": conv,
                                "l": lif(out_shape), "out": nir.Output(output_type=np.array(out_shape))},
                         edges=[("in", "conv"), ("conv", "l"), ("l", "out")], type_check=False)
    (path,) = synaptic_paths(graph, {"in": (c_in, h, w), "l": out_shape})
    fanout, fanin = brute_fanout(op, (c_in, h, w))
    np.testing.assert_array_equal(path.fanout, fanout)
    np.testing.assert_array_equal(path.fanin, fanin)
    assert fanout.max() == (c_out // groups) * 9 or stride > 1  # interior neuron: out-channels x kernel area


def test_pool_then_conv_then_flatten_dense_path_composes_exactly():
    rng = np.random.default_rng(3)
    c, h = 2, 8
    conv_w = rng.normal(size=(3, c, 3, 3))
    lin_w = rng.normal(size=(5, 3 * 4 * 4))
    lin_w[:, :10] = 0.0  # some features feed nothing
    nodes = {"in": nir.Input(input_type=np.array([c, h, h])),
             "pool": nir.AvgPool2d(kernel_size=np.array([3, 3]), stride=np.array([2, 2]), padding=np.array([1, 1])),
             "conv": nir.Conv2d(input_shape=(4, 4), weight=conv_w, stride=1, padding=1, dilation=1, groups=1,
                                bias=np.zeros(3)),
             "flat": nir.Flatten(input_type={"input": np.array([3, 4, 4])}),
             "fc": nir.Linear(lin_w), "l": lif(5), "out": nir.Output(output_type=np.array([5]))}
    edges = [("in", "pool"), ("pool", "conv"), ("conv", "flat"), ("flat", "fc"), ("fc", "l"), ("l", "out")]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)

    def op(x):
        y = F.avg_pool2d(x, 3, 2, 1, count_include_pad=True)
        y = F.conv2d(y, torch.from_numpy(np.abs(conv_w)), None, 1, 1)
        return F.linear(y.flatten(1), torch.from_numpy(np.abs(lin_w)))

    fanout, fanin = brute_fanout(op, (c, h, h))
    np.testing.assert_array_equal(fan_in(graph)["l"], fanin)
    x = (rng.random((2, 3, c, h, h)) < 0.3).astype(np.uint8)
    counts = count_graph(graph, {"in": x}, {"l": np.zeros((2, 3, 5), np.uint8)})
    np.testing.assert_array_equal(counts.layers["l"].acs, x.reshape(2, 3, -1) @ fanout)


def test_branches_from_names_and_merging_paths():
    rng = np.random.default_rng(4)
    nodes = {"audio": nir.Input(input_type=np.array([3])), "visual": nir.Input(input_type=np.array([2])),
             "audio.0.syn0": nir.Affine(rng.normal(size=(4, 3)), np.zeros(4)), "audio.0": lif(4),
             "visual.0.syn0": nir.Affine(rng.normal(size=(4, 2)), np.zeros(4)), "visual.0": lif(4),
             "fusion.audio": nir.Linear(rng.normal(size=(5, 4))), "fusion.visual": nir.Linear(rng.normal(size=(5, 4))),
             "fusion": lif(5), "output.syn0": nir.Affine(rng.normal(size=(2, 5)), np.zeros(2)), "output": lif(2),
             "out": nir.Output(output_type=np.array([2]))}
    edges = [("audio", "audio.0.syn0"), ("audio.0.syn0", "audio.0"), ("visual", "visual.0.syn0"),
             ("visual.0.syn0", "visual.0"), ("audio.0", "fusion.audio"), ("visual.0", "fusion.visual"),
             ("fusion.audio", "fusion"), ("fusion.visual", "fusion"), ("fusion", "output.syn0"),
             ("output.syn0", "output"), ("output", "out")]
    graph = nir.NIRGraph(nodes=nodes, edges=edges)
    N, T = 2, 4
    inputs = {"audio": rng.random((N, T, 3)), "visual": rng.random((N, T, 2))}
    spikes = {n: (rng.random((N, T, s)) < 0.5).astype(np.uint8) for n, s in
              (("audio.0", 4), ("visual.0", 4), ("fusion", 5), ("output", 2))}
    counts = count_graph(graph, inputs, spikes)
    assert {n: l.branch for n, l in counts.layers.items()} == {"audio.0": "audio", "visual.0": "visual",
                                                               "fusion": "fusion", "output": "fusion"}
    fusion = counts.layers["fusion"]
    np.testing.assert_array_equal(fusion.acs, (spikes["audio.0"].sum(2) + spikes["visual.0"].sum(2)) * 5)
    assert fusion.synapses == 40 and fusion.max_fan_in == 8
    assert counts.layers["audio.0"].macs.sum() == 4 * N * T * 3


def test_missing_array_is_a_one_line_user_error():
    graph = mlp_graph((3, 2), np.random.default_rng(5))
    with pytest.raises(UserError, match="no spike array for node 'l0'") as info:
        count_graph(graph, {"in": np.zeros((1, 2, 3))}, {})
    assert "\n" not in str(info.value)
