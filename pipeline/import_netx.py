"""Bring a lava-dl netx network into the pipeline: its NIR graph, which `simulate` and `energy` then take."""

from __future__ import annotations

from pathlib import Path

import nir

from converters.model_to_nir import write_graph
from converters.netx_to_nir import netx_to_nir


def import_netx(net_path: str | Path, out_path: str | Path) -> tuple[Path, nir.NIRGraph]:
    """Read ``net_path`` with netx's own reader and write its graph to ``out_path`` (atomically, read back)."""
    graph = netx_to_nir(net_path)
    return write_graph(graph, out_path), graph
