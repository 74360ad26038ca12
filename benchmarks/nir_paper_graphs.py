"""The NIR paper's own graphs through the command line: `iemf-neuro simulate GRAPH --inputs X.npz --steps T
--dt DT` against the reference executor, per graph.

The graphs live in the neuromorphs/NIR repository (`paper/`, written by nir 0.1/0.2 from snnTorch, Norse,
Rockpool and Sinabs); they are not shipped here. Point ``--dir`` (or $NIR_PAPER_DIR) at that folder, e.g.
after `git clone https://github.com/neuromorphs/NIR`; without it the benchmark says so and exits 0.

Every graph gets the same seeded random binary input trains (3 samples, 40 steps). The CLI writes the Output
nodes' trains and every layer's spike count per sample; both are compared with the executor's (entry for
entry, and count for count). A file nir 1.0.8 itself cannot read is listed as such.

Run: ``.venv/bin/python benchmarks/nir_paper_graphs.py [--dir PATH]``; the last line is
``graphs simulated: K of M, spike mismatches: X``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nir
import numpy as np

from converters.nir_executor import run_graph
from converters.nir_io import read_graph
from iemf_neuro.errors import UserError

SAMPLES, STEPS, SEED = 3, 40, 0
# The time step each exporter trained with (the files record none): Norse, Rockpool and the snnTorch braille
# networks 1e-4 s, the two-neuron Norse example 1e-3 s, Sinabs' discrete-time CNN 1.
PAPER_DT = {"lif_norse.nir": 1e-4, "lif_rockpool.nir": 1e-4, "two_lif_neurons.nir": 1e-3,
            "braille_noDelay_bias_zero.nir": 1e-4, "braille_noDelay_noBias_subtract.nir": 1e-4,
            "cnn_sinabs.nir": 1.0}


def inputs_for(graph: nir.NIRGraph) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    out = {}
    for name, node in graph.nodes.items():
        if isinstance(node, nir.Input):
            shape = tuple(int(v) for v in np.asarray(node.input_type["input"]).ravel())
            out[name] = (rng.random((SAMPLES, STEPS, *shape)) < 0.3).astype(np.float64)
    return out


def check(path: Path, work: Path) -> tuple[int, int]:
    """(mismatching entries, spikes in Lava) of one graph through the CLI against the executor."""
    graph = read_graph(path)
    dt = PAPER_DT.get(path.name)
    inputs = inputs_for(graph)
    np.savez(work / "x.npz", **inputs)
    argv = [sys.executable, "-m", "pipeline.cli", "simulate", str(path), "--inputs", str(work / "x.npz"),
            "--steps", str(STEPS), "--out", str(work / "y.npz"), "--no-progress"]
    done = subprocess.run(argv + (["--dt", str(dt)] if dt is not None else []), capture_output=True, text=True)
    if done.returncode != 0:
        raise UserError(done.stderr.strip().splitlines()[-1])
    reference = run_graph(graph, inputs, dt=dt)
    mismatches, spikes = 0, 0
    with np.load(work / "y.npz") as lava:
        for name, train in reference.outputs.items():
            mismatches += int(np.sum(lava[name] != train.numpy()))
        for name, train in reference.spikes.items():
            if f"count/{name}" not in lava.files:  # a non-spiking layer: its voltage is an output above
                continue
            counts = train.numpy().reshape(SAMPLES, -1).sum(axis=1)
            mismatches += int(np.sum(lava[f"count/{name}"] != counts))
            spikes += int(lava[f"count/{name}"].sum())
    return mismatches, spikes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=os.environ.get("NIR_PAPER_DIR"),
                        help="the paper/ folder of a neuromorphs/NIR checkout (default $NIR_PAPER_DIR)")
    args = parser.parse_args()
    if args.dir is None or not Path(args.dir).is_dir():
        print("skipped: the NIR paper's graphs are not shipped; git clone https://github.com/neuromorphs/NIR and "
              "pass --dir NIR/paper (or set NIR_PAPER_DIR)")
        return 0
    files = sorted(Path(args.dir).rglob("*.nir"))
    simulated, total = 0, 0
    print(f"{'graph':<48}{'mismatches':>12}{'spikes':>10}")
    for path in files:
        try:
            nir.read(path, type_check=False)  # what read_graph does: nir's type inference rejects valid old files
        except Exception as exc:  # noqa: BLE001 - report what nir itself refuses, then go on
            print(f"{path.name:<48}  nir {nir.__version__} cannot read it ({type(exc).__name__})")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            try:
                mismatches, spikes = check(path, Path(tmp))
            except UserError as exc:
                print(f"{path.name:<48}  refused: {exc}")
                continue
        simulated, total = simulated + 1, total + mismatches
        print(f"{path.name:<48}{mismatches:>12}{spikes:>10}")
    print(f"graphs simulated: {simulated} of {len(files)}, spike mismatches: {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
