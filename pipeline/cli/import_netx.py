"""`iemf-neuro import-netx`: a lava-dl netx HDF5 network -> a NIR graph that `simulate` and `energy` take."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import-netx", help="convert a lava-dl netx network to NIR",
        description="Read a lava-dl netx HDF5 network (CUBA/LIF neurons; input, flatten, dense and conv layers) "
                    "with netx's own reader and write it as a NIR graph holding netx's fixed-point integers "
                    "(docs/netx.md). Simulate it with `iemf-neuro simulate OUT.nir --inputs X.npz --steps T "
                    "--out Y.npz --precision fixed`.")
    parser.add_argument("net", type=Path, metavar="NET.net", help="netx network file (.net / .h5)")
    parser.add_argument("--out", type=Path, required=True, help="output .nir path")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import nir

    from pipeline.import_netx import import_netx

    path, graph = import_netx(args.net, args.out)
    inputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Input)]
    neurons = sum(isinstance(node, (nir.LIF, nir.CubaLIF, nir.IF)) for node in graph.nodes.values())
    print(f"wrote {path}: {neurons} neuron layers, input node {', '.join(inputs)}")
    return 0
