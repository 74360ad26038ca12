"""The mapper obeys each chip's per-core limits: synaptic memory at the weight precision, input axons,
output axons, neurons; a limit one neuron breaks refuses the headline, saying which and by how much."""

import nir
import numpy as np

from hardware_targets.counting import count_graph
from hardware_targets.energy import estimate
from hardware_targets.mapping import map_graph
from hardware_targets.targets import load_target, target_from_dict


def lif(shape):
    shape = shape if isinstance(shape, tuple) else (shape,)
    return nir.LIF(tau=np.full(shape, 8.0), r=np.full(shape, 8.0), v_leak=np.zeros(shape),
                   v_threshold=np.ones(shape))


def dense(n_in, n_out):
    return nir.NIRGraph(nodes={"in": nir.Input(input_type=np.array([n_in])), "w": nir.Linear(np.ones((n_out, n_in))),
                               "l": lif(n_out), "out": nir.Output(output_type=np.array([n_out]))},
                        edges=[("in", "w"), ("w", "l"), ("l", "out")])


def test_loihi1_synaptic_memory_at_8_bit_weights_splits_a_dense_layer():
    # 1024 x 128 synapses x 9 bits (8-bit weights in the dense format) = 1.18 Mbit > 1 Mbit per core: 2 cores,
    # though the neurons (128 of 1,024) and input axons (1,024 of 4,096) would fit one.
    mapping = map_graph(dense(1024, 128), load_target("loihi1"))
    assert mapping.fits and mapping.layers["l"].cores == 2
    assert mapping.layers["l"].worst["synaptic memory bits"] == 64 * 1024 * 9


def test_loihi1_input_axons_4096_refuse_a_4352_fan_in():
    mapping = map_graph(dense(4352, 4), load_target("loihi1"))
    assert not mapping.fits
    assert mapping.violations == ["l: one neuron needs 4,352 input axons, a core has 4,096 (1.06x the limit)"]


def test_loihi2_reproduces_lavas_pilotnet_dense_partition():
    # lava-dl PilotNet LIF notebook: the 2,560 -> 100 dense layer on 12 cores (6 tried first, then doubled)
    mapping = map_graph(dense(2560, 100), load_target("loihi2"))
    assert mapping.fits and mapping.layers["l"].cores == 12


def test_truenorth_output_axons_force_copies_of_a_fanning_out_neuron():
    # 200 sources each feeding 300 targets: the targets need 2 cores (256 neurons each), so every source needs
    # 2 output axons (one copy per destination core): 400 > 256 per core -> the source layer takes 2 cores.
    nodes = {"in": nir.Input(input_type=np.array([8])), "w0": nir.Linear(np.eye(200, 8)), "a": lif(200),
             "w1": nir.Linear(np.ones((300, 200))), "b": lif(300), "out": nir.Output(output_type=np.array([300]))}
    graph = nir.NIRGraph(nodes=nodes, edges=[("in", "w0"), ("w0", "a"), ("a", "w1"), ("w1", "b"), ("b", "out")])
    mapping = map_graph(graph, load_target("truenorth"))
    assert mapping.layers["b"].cores == 2
    assert mapping.layers["a"].cores == 2 and mapping.layers["a"].worst["output axons"] <= 256


def test_conv_kernels_are_shared_where_the_chip_shares_them():
    w = np.ones((16, 8, 3, 3))
    nodes = {"in": nir.Input(input_type=np.array([8, 32, 32])),
             "c": nir.Conv2d(input_shape=(32, 32), weight=w, stride=1, padding=1, dilation=1, groups=1,
                             bias=np.zeros(16)),
             "l": lif((16, 32, 32)), "out": nir.Output(output_type=np.array([16, 32, 32]))}
    graph = nir.NIRGraph(nodes=nodes, edges=[("in", "c"), ("c", "l"), ("l", "out")], type_check=False)
    loihi2 = map_graph(graph, load_target("loihi2")).layers["l"]
    # one 16 x 8 x 3 x 3 kernel at 8 bits per core, not 16,384 neurons x 72 synapses
    assert loihi2.worst["synaptic memory bits"] < 16 * 72 * 8 + 64 * 8 * 34 * 34
    truenorth = map_graph(graph, load_target("truenorth")).layers["l"]  # a crossbar bit per synapse
    assert 0 < truenorth.worst["synaptic memory bits"] <= truenorth.worst["neurons"] * 72


def conv(c_in, c_out, side):
    """A spiking source map feeding a 3x3, padding-1 convolution into a spiking map of the same size."""
    nodes = {"in": nir.Input(input_type=np.array([c_in, side, side])), "src": lif((c_in, side, side)),
             "c": nir.Conv2d(input_shape=(side, side), weight=np.ones((c_out, c_in, 3, 3)), stride=1, padding=1,
                             dilation=1, groups=1, bias=np.zeros(c_out)),
             "l": lif((c_out, side, side)), "out": nir.Output(output_type=np.array([c_out, side, side]))}
    edges = [("in", "src"), ("src", "c"), ("c", "l"), ("l", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def override(base, **values):
    return target_from_dict({"base": base, "name": f"{base}-test", "constants": {
        k: {"value": v, "kind": "assumption", "citation": "test"} for k, v in values.items()}})


def test_loihi1_cuts_a_conv_into_2d_tiles_when_one_row_needs_too_many_axons():
    # 256 -> 256, 3x3 on 8x8: one neuron needs 256 x 9 = 2,304 axons, but a one-row piece full width needs
    # 256 x 3 x 8 = 6,144 > 4,096. Only cutting the width helps: tiles of at most 3 x 3 outputs reach 4 x 4
    # inputs (256 x 16 = 4,096); 5 channel groups hold the shared kernels (52 x 256 x 9 x 8 bits < 1 Mbit).
    mapping = map_graph(conv(256, 256, 8), load_target("loihi1"))
    layer = mapping.layers["l"]
    assert mapping.fits, mapping.violations
    assert layer.split.cols > 1 and layer.worst["input axons"] <= 4096
    assert layer.cores == 45


def test_minimal_partitioner_takes_the_fewest_pieces():
    # 128 -> 512 on 4x4: 8,192 neurons need 8 cores of 1,024; 8 channel groups of 64 also meet the memory
    # (64 x 128 x 9 x 8 bits) and axons (128 x 16), so 8 is the minimum and the mapper finds it.
    assert map_graph(conv(128, 512, 4), load_target("loihi1")).layers["l"].cores == 8


def test_power_of_two_resplit_for_output_axons_counts_the_pieces_it_makes():
    # Loihi 2 with 300 output axons per core: the 4 x 10 x 10 source starts in 2 tiles of 8 rows; its 400
    # neurons reach 2 destination cores -> split >= 4 ways. Tiles of 4 rows make only 3 pieces, so the next
    # power of two is taken: tiles of 2 rows, 5 cores (not "4 cores" from 2 x 2 requested bands).
    mapping = map_graph(conv(4, 8, 10), override("loihi2", max_output_axons=300))
    src = mapping.layers["src"]
    assert src.cores == src.split.bands * src.split.groups * src.split.cols == 5
    assert src.worst["neurons"] == 4 * 2 * 10 and src.worst["output axons"] <= 300


def test_lavas_partitioner_tiles_a_map_along_its_width_first():
    # Lava lays a (C, H, W) map out as (W, H, C) and tiles its first axis: a 2 x 4 x 40 map at 64 neurons per
    # core is cut into W-tiles of 8 (5 cores of 2 x 4 x 8), each reading 2 x 4 x (8 + 2) source neurons
    # through the 3x3, padding-1 kernel; cutting H first would have left 40-wide rows.
    h, w = 4, 40
    nodes = {"in": nir.Input(input_type=np.array([2, h, w])), "src": lif((2, h, w)),
             "c": nir.Conv2d(input_shape=(h, w), weight=np.ones((2, 2, 3, 3)), stride=1, padding=1, dilation=1,
                             groups=1, bias=np.zeros(2)),
             "l": lif((2, h, w)), "out": nir.Output(output_type=np.array([2, h, w]))}
    graph = nir.NIRGraph(nodes=nodes, edges=[("in", "src"), ("src", "c"), ("c", "l"), ("l", "out")],
                         type_check=False)
    layer = map_graph(graph, override("loihi2", neurons_per_core=64)).layers["l"]
    assert layer.cores == 5 and layer.worst["neurons"] == 64
    assert layer.worst["input axons"] == 2 * h * (8 + 2)


def busy_dense():
    """A 64 -> 512 dense layer whose every input fires every step: 32,768 synaptic ops per step."""
    graph = dense(64, 512)
    counts = count_graph(graph, {"in": np.ones((1, 4, 64), np.float32)}, {"l": np.zeros((1, 4, 512), np.uint8)})
    return graph, counts


def test_balancing_splits_the_slowest_layer_while_the_step_gets_shorter():
    graph, counts = busy_dense()
    target = load_target("loihi1")
    plain, balanced = map_graph(graph, target), map_graph(graph, target, counts)
    assert balanced.layers["l"].cores > plain.layers["l"].cores
    assert balanced.cores_used <= 128  # the spare cores of the one chip already needed
    step = [estimate(counts, m, target).latency_step_s.mean for m in (plain, balanced)]
    assert step[1] < step[0]


def test_balancing_stops_where_the_barrier_costs_more_than_the_split_saves():
    # a barrier that grows by 1 s per extra tile: splitting only continues inside the tile already used
    graph, counts = busy_dense()
    target = override("loihi1", t_barrier_32tiles_s=31.0)
    plain, balanced = map_graph(graph, target), map_graph(graph, target, counts)
    assert balanced.tiles_used == plain.tiles_used == 1
    assert balanced.cores_used == 4 > plain.cores_used
