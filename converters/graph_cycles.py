"""A NIR graph's edge structure: fan-in/fan-out lists and strongly connected components, shared by the
executor, the Lava planner and the loader (a loop is legal only through a neuron node, whose state carries
step t-1)."""

from __future__ import annotations

import nir

from iemf_neuro.errors import UserError


def adjacency(graph: nir.NIRGraph) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(predecessors, successors) per node, in edge order; an edge naming a missing node is a UserError."""
    preds: dict[str, list[str]] = {n: [] for n in graph.nodes}
    succ: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for src, dst in graph.edges:
        for end in (src, dst):
            if end not in graph.nodes:
                raise UserError(f"edge ({src!r}, {dst!r}) names a node {end!r} that the graph does not have; "
                                "fix the graph's edges")
        preds[dst].append(src)
        succ[src].append(dst)
    return preds, succ


def strongly_connected(names: list[str], succ: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components in topological order (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in names:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            recurse = False
            for j in range(i, len(succ[node])):
                nxt = succ[node][j]
                if nxt not in index:
                    work.append((node, j + 1))
                    work.append((nxt, 0))
                    recurse = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if recurse:
                continue
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                out.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out[::-1]
