"""Hardened NIR loading: inspect a file's HDF5 structure before nir.read allocates anything, then validate.

NIR files come from other frameworks and other nir versions, so nothing in them is trusted. ``read_graph``
checks, in this order, without reading any array: the file exists and is HDF5; it holds ``version`` (nir
0.x or 1.x: what nir 1.0.8's reader reads, the NIR paper's own graphs included) and a ``node`` group; every node group names a known type; no links, external or virtual storage;
every parameter dataset is real numeric; the declared dataset sizes sum to at most ``max_elements`` (a
gzip-compressed dataset of a few bytes can declare terabytes). Only then does ``nir.read`` load it,
``flatten_graph`` inlines nested graphs, and ``validate_graph`` checks what a simulator relies on (its
``CheckedGraph``, see ``nir_graph``, is what ``read_checked`` returns):

* at least one ``Input`` and one ``Output`` node, only node types the toolchain simulates;
* finite, real parameters; a neuron's fields all of one shape; time constants > 0; a neuron node with
  single-valued fields gets one neuron per incoming value (its fields broadcast, in place);
* edges name existing nodes, none twice; along every edge the source's output size equals what the
  target takes (``Affine``/``Linear`` weight columns, a neuron population's size, a ``Conv2d``'s input);
* every cycle passes through a stateful neuron node (else step t depends on itself).

Every failure is a ``UserError`` whose one line names the problem and the fix.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterator

import nir
import numpy as np

from iemf_neuro.errors import UserError

from .nir_graph import NODE_TYPES, CheckedGraph, check_graph
from .nir_semantics import NEURON_KINDS

MAX_ELEMENTS = 2**28  # default cap on the summed declared elements of every dataset (2 GiB as float64)
MAX_ELEMENTS_ENV = "IEMF_NEURO_MAX_NIR_ELEMENTS"  # environment override of the cap
MAX_NODES = 100_000  # node groups per file
SUPPORTED_MAJORS = (0, 1)  # nir file format major versions read here: what nir 1.0.8's reader reads

SUPPORTED_TYPES = {t.__name__: t for t in NODE_TYPES}
TIME_CONSTANTS = ("tau", "tau_mem", "tau_syn")
STRING_FIELDS = ("type", "version", "edges", "padding")  # datasets that hold text, not numbers
NOT_PARAMETERS = ("input_type", "output_type", "metadata")


def max_elements() -> int:
    """The element cap: ``$IEMF_NEURO_MAX_NIR_ELEMENTS`` when set, else ``MAX_ELEMENTS``."""
    text = os.environ.get(MAX_ELEMENTS_ENV)
    if text is None:
        return MAX_ELEMENTS
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"${MAX_ELEMENTS_ENV}={text!r} is not a whole number; set it to e.g. {MAX_ELEMENTS}") from None
    if value < 1:
        raise UserError(f"${MAX_ELEMENTS_ENV}={value} must be >= 1; set it to e.g. {MAX_ELEMENTS}")
    return value


def read_graph(path: str | os.PathLike, limit: int | None = None) -> nir.NIRGraph:
    """Inspect ``path`` (structure, types, declared sizes), load it with nir.read, and validate it."""
    return read_checked(path, limit).graph


def read_checked(path: str | os.PathLike, limit: int | None = None) -> CheckedGraph:
    """``read_graph`` with the structure its validation computed, which every later stage accepts in place
    of the graph (so a file is read and checked once)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist; pass a .nir file written by nir.write (e.g. `iemf-neuro export`)")
    if not path.is_file():
        raise UserError(f"{path} is not a file; pass a .nir file written by nir.write")
    cap = max_elements() if limit is None else limit
    size = path.stat().st_size
    if size > cap * 8:
        raise UserError(f"{path} is {size} bytes, more than {cap} float64 elements could take; refusing to load "
                        f"it: raise ${MAX_ELEMENTS_ENV} if it is genuine")
    inspect_file(path, cap)
    try:
        graph = nir.read(str(path), type_check=False)
    except Exception as exc:  # noqa: BLE001 - nir raises anything on a foreign file; all mean "unreadable"
        raise UserError(f"{path} is not a readable NIR graph ({type(exc).__name__}: {_first_line(exc)}); "
                        "re-export it with nir 1.x") from exc
    return validate_graph(flatten_graph(graph), cap, where=str(path))


def flatten_graph(graph: nir.NIRGraph) -> nir.NIRGraph:
    """``graph`` with every nested NIRGraph node inlined (recursively), as the simulators need one flat graph.

    Inner node ``x`` of subgraph ``N`` becomes ``N.x``. An edge into ``N`` (or into ``N.i``, an inner Input)
    goes to every node that Input feeds; an edge out of ``N`` (or ``N.o``, an inner Output) leaves from every
    node that feeds that Output. ``N`` alone names the subgraph's Input or Output only when it has one.
    """
    if not any(isinstance(node, nir.NIRGraph) for node in graph.nodes.values()):
        return graph
    nodes: dict[str, nir.NIRNode] = {}
    entries: dict[str, list[str]] = {}
    exits: dict[str, list[str]] = {}
    inner_edges: list[tuple[str, str]] = []
    for name, node in graph.nodes.items():
        if not isinstance(node, nir.NIRGraph):
            nodes[name] = node
            continue
        inner = flatten_graph(node)
        ins = [k for k, n in inner.nodes.items() if isinstance(n, nir.Input)]
        outs = [k for k, n in inner.nodes.items() if isinstance(n, nir.Output)]
        nodes.update({f"{name}.{k}": n for k, n in inner.nodes.items() if k not in ins + outs})
        for port in ins:
            entries[f"{name}.{port}"] = [f"{name}.{d}" for s, d in inner.edges if s == port]
        for port in outs:
            exits[f"{name}.{port}"] = [f"{name}.{s}" for s, d in inner.edges if d == port]
        if len(ins) == 1:
            entries[name] = entries[f"{name}.{ins[0]}"]
        if len(outs) == 1:
            exits[name] = exits[f"{name}.{outs[0]}"]
        inner_edges += [(f"{name}.{s}", f"{name}.{d}") for s, d in inner.edges if s not in ins and d not in outs]
    edges = [(src, dst) for s, d in graph.edges for src in exits.get(s, [s]) for dst in entries.get(d, [d])]
    return nir.NIRGraph(nodes=nodes, edges=edges + inner_edges, metadata=graph.metadata, type_check=False)


def inspect_file(path: Path, limit: int) -> None:
    """Check the HDF5 layout and the declared dataset sizes without reading any array."""
    import h5py

    try:
        handle = h5py.File(path, "r")
    except Exception as exc:  # noqa: BLE001 - truncated, empty or foreign bytes all surface here
        raise UserError(f"{path} is not a NIR file: not HDF5, truncated or foreign bytes ({_first_line(exc)}); "
                        "re-export it with nir.write") from exc
    with handle as f:
        for key in ("version", "node"):
            if key in f and not isinstance(f.get(key, getlink=True), h5py.HardLink):
                raise UserError(f"{path}: /{key} is a link; NIR files hold no links, re-export it with nir.write")
        if not isinstance(f.get("version"), h5py.Dataset) or not isinstance(f.get("node"), h5py.Group):
            raise UserError(f"{path} is HDF5 but not a NIR file (needs a 'version' string and a 'node' group); "
                            "re-export it with nir.write")
        version = _text(f["version"], path, "version")
        major = version.split(".")[0]
        if not major.isdigit() or int(major) not in SUPPORTED_MAJORS:
            raise UserError(f"{path} was written by nir {version!r}; this toolchain reads files of nir "
                            f"{' and '.join(f'{m}.x' for m in SUPPORTED_MAJORS)}: re-export it with nir 1.x")
        total, nodes = 0, 0
        for name, obj in _walk(f, path):
            if isinstance(obj, h5py.Group):
                if "type" in obj:
                    nodes += 1
                    if nodes > MAX_NODES:
                        raise UserError(f"{path} holds more than {MAX_NODES} nodes; split the graph")
                    _check_node_group(obj, name, path)
                continue
            if obj.is_virtual or obj.external:
                raise UserError(f"{path}: dataset {name} reads other files (virtual/external storage); "
                                "re-export it as one self-contained file")
            size = math.prod(obj.shape) if obj.shape is not None else 0
            total += size
            if total > limit:
                raise UserError(f"{path} declares over {limit} array elements (dataset {name} has shape "
                                f"{obj.shape}); refusing to load it: raise ${MAX_ELEMENTS_ENV} if it is genuine")
            _check_dtype(obj, name, path)


def _walk(group, path: Path) -> Iterator[tuple[str, object]]:
    """Every group and dataset below ``group``, each once; soft and external links are refused, and so is an
    object reached twice (a hard-linked cycle would otherwise send nir.read into endless recursion)."""
    import h5py

    stack = [("", group)]
    seen = {group.id}
    while stack:
        prefix, g = stack.pop()
        for key in g:
            link = g.get(key, getlink=True)
            name = f"{prefix}/{key}"
            if not isinstance(link, h5py.HardLink):
                raise UserError(f"{path}: {name} is a {type(link).__name__}; NIR files hold no links, "
                                "re-export it with nir.write")
            obj = g[key]
            if obj.id in seen:
                raise UserError(f"{path}: {name} links back to an object already in the file; NIR files are "
                                "trees, re-export it with nir.write")
            seen.add(obj.id)
            yield name, obj
            if isinstance(obj, h5py.Group):
                stack.append((name, obj))


def _check_node_group(group, name: str, path: Path) -> None:
    type_name = _text(group["type"], path, f"{name}/type")
    if type_name not in SUPPORTED_TYPES and type_name != "NIRGraph":  # nested graphs are inlined after reading
        raise UserError(f"{path}: node {name} has unknown type {type_name!r}; supported: "
                        f"{', '.join(sorted(SUPPORTED_TYPES))}")


def _check_dtype(dataset, name: str, path: Path) -> None:
    key = name.rsplit("/", 1)[-1]
    kind = dataset.dtype.kind
    if key in STRING_FIELDS or "/metadata/" in name:
        if kind in "OSUiufb":
            return
    elif kind in "iufb":
        return
    raise UserError(f"{path}: dataset {name} has dtype {dataset.dtype} where {_wanted(key)}; "
                    "re-export it with real numeric parameters")


def _wanted(key: str) -> str:
    return "text or numbers are expected" if key in STRING_FIELDS else "real numbers are expected"


def _text(dataset, path: Path, name: str) -> str:
    if dataset.shape != () or dataset.dtype.kind not in "OSU":
        raise UserError(f"{path}: {name} must be one string (found dtype {dataset.dtype}, shape {dataset.shape}); "
                        "re-export it with nir.write")
    value = dataset[()]
    return value.decode("utf8", "replace") if isinstance(value, bytes) else str(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else "no details"


def validate_graph(graph: nir.NIRGraph, limit: int | None = None, where: str = "NIR graph") -> CheckedGraph:
    """Raise UserError when ``graph`` is something no simulator here can run (see the module docstring);
    else return its structure, which every later stage accepts in place of the graph."""
    cap = max_elements() if limit is None else limit
    if not isinstance(graph, nir.NIRGraph):
        raise UserError(f"{where}: top level is a {type(graph).__name__}, not a NIRGraph; wrap it in nir.NIRGraph")
    if not isinstance(graph.nodes, dict) or not graph.nodes:
        raise UserError(f"{where}: the graph has no nodes; export a model with Input and Output nodes")
    total = 0
    for name, node in graph.nodes.items():
        if not isinstance(name, str):
            raise UserError(f"{where}: node name {name!r} is not a string; name every node with a string")
        if type(node).__name__ not in SUPPORTED_TYPES or not isinstance(node, SUPPORTED_TYPES[type(node).__name__]):
            raise UserError(f"{where}: node {name!r} has unsupported type {type(node).__name__}; supported: "
                            f"{', '.join(sorted(SUPPORTED_TYPES))}")
        total += _check_parameters(node, name, where)
        if total > cap:
            raise UserError(f"{where}: parameters exceed {cap} elements at node {name!r}; refusing to simulate "
                            f"it: raise ${MAX_ELEMENTS_ENV} if it is genuine")
    for kind in (nir.Input, nir.Output):
        if not any(isinstance(n, kind) for n in graph.nodes.values()):
            raise UserError(f"{where}: the graph has no {kind.__name__} node; add nir.{kind.__name__} nodes for "
                            "the data it takes and gives")
    _check_edges(graph, where)
    checked = check_graph(graph)
    _check_sizes(checked, where)
    _broadcast_scalar_neurons(checked)
    checked.require_neuron_in_cycles(where)
    return checked


def _check_parameters(node: nir.NIRNode, name: str, where: str) -> int:
    """Real, finite arrays; neuron fields of one shape; positive time constants. Returns the element count."""
    count = 0
    arrays = {}
    for key, value in vars(node).items():
        if key in NOT_PARAMETERS or value is None or isinstance(value, str):
            continue
        if key == "padding" and isinstance(value, (bytes, np.ndarray)) and np.asarray(value).dtype.kind in "SUO":
            continue
        arr = np.asarray(value)
        if arr.dtype.kind not in "iufb":
            raise UserError(f"{where}: node {name!r} field {key} has dtype {arr.dtype}; give real numbers "
                            f"(float or int arrays)")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise UserError(f"{where}: node {name!r} field {key} has NaN/inf values; export finite parameters")
        arrays[key] = arr
        count += arr.size
    fields = NEURON_KINDS[type(node)].fields if type(node) in NEURON_KINDS else ()
    if fields:
        shapes = {k: arrays[k].shape for k in fields if k in arrays}
        missing = [k for k in fields if k not in arrays]
        if missing:
            raise UserError(f"{where}: neuron node {name!r} lacks {missing}; export every {type(node).__name__} field")
        if len(set(shapes.values())) != 1:
            raise UserError(f"{where}: neuron node {name!r} has fields of different shapes {shapes}; give every "
                            "field one value per neuron")
        for key in TIME_CONSTANTS:
            if key in arrays and np.any(arrays[key] <= 0):
                raise UserError(f"{where}: neuron node {name!r} has {key} <= 0; time constants must be positive")
    if isinstance(node, (nir.Affine, nir.Linear)) and arrays["weight"].ndim != 2:
        raise UserError(f"{where}: node {name!r} weight has shape {arrays['weight'].shape}; "
                        f"{type(node).__name__} needs a 2-D [out, in] matrix")
    if isinstance(node, nir.Affine) and arrays["bias"].shape not in ((arrays["weight"].shape[0],), ()):
        raise UserError(f"{where}: node {name!r} bias shape {arrays['bias'].shape} does not match weight rows "
                        f"{arrays['weight'].shape[0]}; give one bias per output")
    conv_dims = {nir.Conv1d: 3, nir.Conv2d: 4}.get(type(node))
    if conv_dims and arrays["weight"].ndim != conv_dims:
        raise UserError(f"{where}: node {name!r} weight has shape {arrays['weight'].shape}; {type(node).__name__} "
                        f"needs {conv_dims}-D [out, in, *kernel]")
    if conv_dims and arrays["bias"].shape not in ((arrays["weight"].shape[0],), ()):
        raise UserError(f"{where}: node {name!r} bias shape {arrays['bias'].shape} does not match its "
                        f"{arrays['weight'].shape[0]} output channels; give one bias per channel")
    return count


def _check_edges(graph: nir.NIRGraph, where: str) -> None:
    seen = set()
    for edge in graph.edges:
        if not (isinstance(edge, (tuple, list)) and len(edge) == 2 and all(isinstance(e, str) for e in edge)):
            raise UserError(f"{where}: edge {edge!r} is not a (source, target) pair of node names")
        src, dst = edge
        for end in (src, dst):
            if end not in graph.nodes:
                raise UserError(f"{where}: edge ({src!r}, {dst!r}) names missing node {end!r}; remove the edge or "
                                "add the node")
        if (src, dst) in seen:
            raise UserError(f"{where}: edge ({src!r}, {dst!r}) appears twice; keep one (edges into a node are summed)")
        if isinstance(graph.nodes[dst], nir.Input):
            raise UserError(f"{where}: edge ({src!r}, {dst!r}) feeds an Input node; Inputs take data only")
        if isinstance(graph.nodes[src], nir.Output):
            raise UserError(f"{where}: edge ({src!r}, {dst!r}) leaves an Output node; Outputs end the graph")
        seen.add((src, dst))


def _check_sizes(checked: CheckedGraph, where: str) -> None:
    """Every output shape is non-empty, and along every edge the source's size equals what the target takes."""
    for name, node in checked.nodes.items():
        shape = checked.shapes.get(name)
        if shape is not None and min(shape, default=1) < 1:
            raise UserError(f"{where}: {type(node).__name__} {name!r} has an empty output shape {shape}; fix its "
                            "declared shape or its kernel, stride, padding and dilation")
    for name, node in checked.nodes.items():
        need = checked.takes(name)
        for src in checked.preds[name]:
            have = checked.shapes.get(src)
            if need is not None and have is not None and math.prod(have) != need:
                raise UserError(f"{where}: edge ({src!r}, {name!r}) carries {math.prod(have)} values "
                                f"(shape {have}) but {type(node).__name__} {name!r} takes {need}; fix the "
                                "weight or neuron shapes so neighbouring sizes agree")


def _broadcast_scalar_neurons(checked: CheckedGraph) -> None:
    """A neuron node whose parameters are single values (Sinabs' and Norse's default export) means one neuron per
    incoming value: give it full arrays of its input's shape, in place, so every simulator sees a population."""
    for name in checked.neuron_names:
        node, shape = checked.nodes[name], checked.shapes.get(name)
        if np.asarray(node.r).size == 1 and shape and math.prod(shape) > 1:
            for key in NEURON_KINDS[type(node)].fields:
                value = getattr(node, key, None)
                if value is not None:
                    setattr(node, key, np.full(shape, np.asarray(value, dtype=np.float64).reshape(-1)[0]))
