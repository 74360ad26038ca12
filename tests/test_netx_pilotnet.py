"""Intel's PilotNet LIF (lava-dl's netx file, benchmarks/data/pilotnet_lif, BSD-3) imported with import-netx:
simulated in fixed point it equals lava-dl's ground-truth spikes of every layer, bit for bit, and our Loihi 2
mapper places it on the cores Lava's partitioner printed for it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cases import run_cli

from converters.nir_io import read_graph
from hardware_targets.lava_sim import simulate_graph
from hardware_targets.mapping import map_graph
from hardware_targets.targets import load_target

DATA = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "pilotnet_lif"
STEPS = 16  # lava-dl's reset_interval: the ground truth holds one frame's window


def ground_truth() -> dict[str, np.ndarray]:
    with np.load(DATA / "ground_truth_spikes.npz") as f:
        return {k: np.unpackbits(f[k])[:int(np.prod(f[f"{k}.shape"]))].reshape(f[f"{k}.shape"]).astype(np.uint8)
                for k in f.files if not k.endswith(".shape")}


@pytest.fixture(scope="module")
def pilotnet(tmp_path_factory):
    out = tmp_path_factory.mktemp("pilotnet") / "pilotnet.nir"
    code, stderr = run_cli(["import-netx", str(DATA / "network.net"), "--out", str(out)])
    assert code == 0, stderr
    return read_graph(out)


def test_pilotnet_fixed_point_equals_ground_truth(pilotnet):
    graph = pilotnet
    record = json.loads(graph.metadata["iemf_neuro"])
    assert record["layers"] == ["layer0", "layer1", "layer2", "layer3", "layer4", "layer5", "layer7", "layer8",
                                "layer9", "layer10"]
    assert record["input_transform"] == {"weight": 40.0, "bias": 36.0}
    assert type(graph.nodes["layer0.syn0"]).__name__ == "Scale"  # the input layer's bias path
    frame = np.load(DATA / "image.npy").transpose(2, 1, 0).astype(np.float64)  # netx's (W, H, C) -> (C, H, W)
    run = simulate_graph(graph, {"input": np.broadcast_to(frame, (1, STEPS, *frame.shape))}, precision="fixed",
                         progress=False)
    truth = ground_truth()
    assert sorted(truth) == sorted(record["layers"])
    for depth, layer in enumerate(record["layers"]):
        # netx starts every layer at step 0 with no synaptic step into the input layer: layer k sees the
        # frame's step t at chip step t + k, where our timing puts it at t
        ours, chip = run.spikes[layer][0, :STEPS - depth], truth[layer][depth:]
        assert ours.shape == chip.shape
        assert chip.sum() > 0 or layer == "layer10"
        np.testing.assert_array_equal(ours, chip, err_msg=layer)


def test_pilotnet_loihi2_cores_equal_lavas_partition(pilotnet):
    """The cores per layer of lava-dl's PilotNet benchmark notebook (74 in all), the frame written into the input
    layer's bias as the notebook does. Exercises what a rebuild with unit weights could not: fc0 keeps 73 % zero
    weights, which Lava's Dense stores all the same, and the (C, H, W) maps Lava lays out as (W, H, C)."""
    mapping = map_graph(pilotnet, load_target("loihi2"), bias_driven=frozenset({"layer0"}))
    lava = {"layer0": 13, "layer1": 25, "layer2": 13, "layer3": 3, "layer4": 3, "layer5": 2, "layer7": 12,
            "layer8": 1, "layer9": 1, "layer10": 1}
    assert {name: layer.cores for name, layer in mapping.layers.items()} == lava
    assert mapping.fits and mapping.chips_needed == 1
