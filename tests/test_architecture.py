"""The import graph obeys docs/architecture.md: data flows iemf_neuro -> converters -> hardware_targets ->
pipeline -> pipeline.cli, and no module imports one downstream of itself (imports inside functions count)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("iemf_neuro", "converters", "hardware_targets", "pipeline")
# Lava sets multiprocessing's start method at import and is absent on the GPU machine: it is imported at module
# level only by the worker's own modules, inside functions only by the code the worker calls (and netx import).
LAVA_AT_TOP = {"converters.lava_processes", "hardware_targets.lava_stream"}
LAVA_INSIDE = LAVA_AT_TOP | {"converters.nir_to_lava", "converters.loihi2_ready", "converters.netx_to_nir",
                             "hardware_targets.lava_worker"}

# module prefix -> prefixes of ours it must not import (the first matching row applies)
FORBIDDEN = (
    ("iemf_neuro.data", ("iemf_neuro.models", "iemf_neuro.training", "converters", "hardware_targets", "pipeline")),
    ("iemf_neuro.models", ("iemf_neuro.data", "iemf_neuro.training", "converters", "hardware_targets", "pipeline")),
    ("iemf_neuro", ("converters", "hardware_targets", "pipeline")),
    ("converters", ("iemf_neuro.data", "iemf_neuro.training", "hardware_targets", "pipeline")),
    ("hardware_targets", ("iemf_neuro.data", "iemf_neuro.training", "pipeline")),
    ("pipeline.cli", ("converters", "hardware_targets", "iemf_neuro.models", "iemf_neuro.training")),
    ("pipeline", ("pipeline.cli",)),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> dict[str, bool]:
    """Every module ``path`` imports (relative imports resolved, at any depth) -> whether at module level."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    top = {id(node) for node in tree.body}
    found: dict[str, bool] = {}
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for imported in names:
            found[imported] = found.get(imported, False) or id(node) in top
    return found


def modules() -> dict[str, dict[str, bool]]:
    return {module_name(p): imports(p) for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(graph: dict[str, dict[str, bool]]) -> list[str]:
    out = []
    for module, imported in graph.items():
        forbidden = next(banned for prefix, banned in FORBIDDEN if within(module, prefix))
        out += [f"{module} imports {name}" for name in sorted(imported) if any(within(name, b) for b in forbidden)]
        lava = [at_top for name, at_top in imported.items() if within(name, "lava")]
        if lava and (module not in LAVA_INSIDE or (any(lava) and module not in LAVA_AT_TOP)):
            out.append(f"{module} imports Lava{' at module level' if any(lava) else ''}")
    return out


def test_every_import_flows_downstream():
    graph = modules()
    assert len(graph) > 40 and "pipeline.cli" in graph and "converters.nir_to_lava" in graph
    assert violations(graph) == []


@pytest.mark.parametrize("module, imported", [
    ("converters.nir_to_lava", "iemf_neuro.training.config"),
    ("hardware_targets.energy", "pipeline.energy"),
    ("iemf_neuro.models.network", "converters"),
    ("pipeline.energy", "pipeline.cli.energy"),
    ("pipeline.cli.train", "iemf_neuro.training.trainer"),
    ("iemf_neuro.training.trainer", "lava.magma.core.run_configs"),
    ("converters.nir_to_lava", "lava.magma.core.run_configs"),
])
def test_the_check_catches_an_upstream_import(module, imported):
    graph = modules()
    graph[module] = {**graph[module], imported: True}
    assert len(violations(graph)) == 1
