"""lava-dl netx HDF5 networks -> NIR graphs on this project's convention (dt = 1, forward Euler; docs/netx.md).

The file is read with netx's own reader (``lava.lib.dl.netx.utils.NetDict``), and every number is what
``netx.hdf5.Network`` hands Lava: a dense layer's weights pass netx's ``optimize_weight_bits`` and then the
clipping and truncation of Lava's bit-accurate Dense (``lava.utils.weightutils``), so the graph holds the
integers Lava applies, ``a_in = shift(sum w s, weight_exp)``; a conv layer's integers go to Lava's Conv as
they are (no exponent). A CUBA neuron (Lava LIF, ``du = iDecay - 1``, ``dv = vDecay``, ``vth = vThMant``,
``bias_mant = bias`` at ``bias_exp = 6``) becomes, per step of u and v (lam = 64, slayer's weight scale)::

    alpha = 1 - iDecay/4096   beta = 1 - vDecay/4096   threshold = vThMant/lam   leak = bias/lam
    W = w 2**weight_exp / lam

as a NIR CubaLIF (tau_syn = 4096/iDecay, w_in = tau_syn, tau_mem = 4096/vDecay, r = tau_mem,
v_leak = leak tau_mem), a LIF when iDecay = 4096 (no current state), an IF when also vDecay = 0. The graph's
metadata carries the fixed-point scales (``fixed_point``: lam = 64 per layer, each projection's exponent,
input scale 1), so ``converters.quantize`` rounds its way back to netx's integers instead of choosing its own.

Lava is imported only in the child interpreter ``netx_to_nir`` starts: importing netx loads lava.magma, which
sets multiprocessing's start method.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nir
import numpy as np

from iemf_neuro.errors import UserError
from iemf_neuro.models.fixed_point import BIAS_MANT_MAX, DECAY_ONE, STATE_SCALE, VTH_MAX

from .nir_io import validate_graph
from .nir_semantics import METADATA_KEY

LAM = float(STATE_SCALE)  # a_in per unit of float current: slayer's weight scale (threshold = vThMant / 64)
BIAS_RANGE = (-BIAS_MANT_MAX - 1, BIAS_MANT_MAX)  # Lava LIF's signed 13-bit bias mantissa
NEURON_TYPES = ("CUBA", "LOIHI")  # netx builds both as a Lava LIF
SUPPORTED = "input, flatten, dense and conv layers of CUBA/LOIHI neurons"
INPUT_NODE, OUTPUT_NODE = "input", "output"


def netx_to_nir(path: str | os.PathLike) -> nir.NIRGraph:
    """The NIR graph of the netx network in ``path`` (writes nothing); a one-line UserError for what it cannot hold.

    netx's reader imports Lava, which fixes multiprocessing's start method at import (and fails where the caller
    fixed another): it runs in a child interpreter, ``python -m converters.netx_to_nir NET OUT.nir`` (a UserError
    goes to OUT.error)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} is not a file; pass a netx network (.net/.h5) written by lava-dl's export_hdf5")
    with tempfile.TemporaryDirectory(prefix="iemf-netx-") as tmp:
        out = Path(tmp) / "graph.nir"
        child = subprocess.run([sys.executable, "-m", "converters.netx_to_nir", str(path), str(out)],
                               stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if child.returncode == 2 and out.with_suffix(".error").is_file():
            raise UserError(out.with_suffix(".error").read_text())
        if child.returncode != 0:
            tail = child.stderr.strip().splitlines()[-1:]
            raise RuntimeError(f"the netx reader stopped (exit code {child.returncode}): "
                               f"{tail[0] if tail else 'no output'}")
        return nir.read(out)


def _read(path: Path) -> nir.NIRGraph:
    """``netx_to_nir`` inside the child."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            from lava.lib.dl.netx.utils import NetDict  # slayer's import prints optional-dataset notices
    except ImportError as exc:
        raise UserError(f"importing netx networks needs lava-dl ({_first_line(exc)}); install lava-dl 0.6 "
                        "(pip install lava-dl)") from exc
    try:
        net = NetDict(str(path))
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError and others on foreign or truncated bytes
        raise UserError(f"{path} is not a netx network: not HDF5, truncated or foreign bytes "
                        f"({_first_line(exc)}); export it with lava-dl's export_hdf5") from exc
    with net.f:
        if "layer" not in net.keys():
            raise UserError(f"{path} is HDF5 but not a netx network (no 'layer' group); export it with lava-dl's "
                            "export_hdf5")
        try:
            graph = _Builder(path).build(net["layer"])
        except (KeyError, IndexError, ValueError, TypeError, OSError, AttributeError) as exc:
            raise UserError(f"{path}: malformed netx layer description ({type(exc).__name__}: "
                            f"{_first_line(exc)}); re-export it with lava-dl's export_hdf5") from exc
    validate_graph(graph, where=str(path))
    return graph


class _Builder:
    """Walks netx's layer list in order, as ``netx.hdf5.Network._create`` does, collecting NIR nodes."""

    def __init__(self, path: Path):
        self.path = path
        self.nodes: dict[str, nir.NIRNode] = {}
        self.edges: list[tuple[str, str]] = []
        self.layers: dict[str, dict] = {}  # neuron node -> its fixed-point scales
        self.source: str | None = None  # the unit the next layer reads
        self.shape: tuple[int, ...] | None = None  # its output shape, (C, H, W) or (n,)
        self.flatten = False
        self.input_transform: dict[str, float] = {}  # an input layer's neuron: its data loader's scalars

    def build(self, layers) -> nir.NIRGraph:
        count = len(layers)
        for i in range(count):
            if str(i) not in layers.keys():
                raise UserError(f"{self.path}: layer group '{i}' is missing (netx reads layers 0..{count - 1} in "
                                "order); re-export the network")
            cfg = layers[i]
            kind = cfg["type"]
            if kind == "input":
                self._input(cfg, i)
            elif kind == "flatten":
                self.flatten = True
            elif kind in ("dense", "conv"):
                self._neuron_layer(cfg, i, kind)
            else:
                raise UserError(f"{self.path}: layer {i} is a netx {kind!r} layer; netx_to_nir imports {SUPPORTED}")
        if not self.layers:
            raise UserError(f"{self.path} holds no dense or conv layer; netx_to_nir imports {SUPPORTED}")
        if self.flatten:
            raise UserError(f"{self.path}: the last layer is a flatten with no dense layer after it; netx applies a "
                            "flatten only into a dense layer")
        self.nodes[OUTPUT_NODE] = nir.Output(output_type={"output": np.array(self.shape)})
        self.edges.append((self.source, OUTPUT_NODE))
        record = {"source": {"format": "netx", "file": self.path.name}, "layers": list(self.layers),
                  "output_node": OUTPUT_NODE,
                  "fixed_point": {"input_scale": {INPUT_NODE: 1.0}, "layers": self.layers}}
        if self.input_transform:
            record["input_transform"] = self.input_transform
        return nir.NIRGraph(nodes=self.nodes, edges=self.edges, type_check=False,
                            metadata={"dt": 1.0, "reset": "zero", METADATA_KEY: json.dumps(record)})

    def _input(self, cfg, i: int) -> None:
        if self.source is not None:
            raise UserError(f"{self.path}: layer {i} is an input layer after other layers; only layer 0 may be one")
        self._add_input(tuple(int(s) for s in np.atleast_1d(cfg["shape"])))
        if "neuron" in cfg.keys():
            self._input_neurons(cfg, i)

    def _input_neurons(self, cfg, i: int) -> None:
        """netx's Input block with a neuron takes its input through ``bias_mant`` (its in-port is left
        unconnected; lava-dl's PilotNet writes each frame there): the Input node carries those values, and a
        Scale(1/64) feeds them into the neuron as a current. That adds our one synaptic step where netx has
        none, and the file's scalar ``weight``/``bias`` (the transform a data loader applies to make the
        values) are recorded, not applied."""
        transform = {key: float(np.asarray(cfg[key]).reshape(-1)[0]) for key in ("weight", "bias")
                     if key in cfg.keys()}
        self.input_transform = transform
        neuron = _neuron(cfg["neuron"], self.shape, np.zeros(self.shape), self.path, i)
        self._add_layer(f"layer{i}", [nir.Scale(scale=np.full(self.shape, 1.0 / LAM))], neuron, self.shape, 0)

    def _add_input(self, shape: tuple[int, ...]) -> None:
        self.nodes[INPUT_NODE] = nir.Input(input_type={"input": np.array(shape)})
        self.source, self.shape = INPUT_NODE, shape

    def _neuron_layer(self, cfg, i: int, kind: str) -> None:
        name = f"layer{i}"
        if "neuron" not in cfg.keys():
            raise UserError(f"{self.path}: {kind} layer {i} has no neuron (a slayer Affine/readout); netx_to_nir "
                            f"imports {SUPPORTED}")
        for key in ("delay", "weight_rec"):
            if key in cfg.keys():
                raise UserError(f"{self.path}: {kind} layer {i} has {key!r} (axonal delays / recurrence); netx_to_nir "
                                f"imports {SUPPORTED} without them")
        if "weight/imag" in cfg.f or "weight" not in cfg.keys():
            raise UserError(f"{self.path}: {kind} layer {i} has no real 'weight' (complex synapses are not imported); "
                            f"netx_to_nir imports {SUPPORTED}")
        chain = []
        if kind == "dense":
            weight, exp = _dense_weights(cfg["weight"], int(np.prod(cfg["shape"])))
            if self.source is None:
                self._add_input((weight.shape[1],))
            if self.flatten:
                chain.append(nir.Flatten(input_type={"input": np.array(self.shape)}, start_dim=0, end_dim=-1))
                self.flatten = False
            elif len(self.shape) != 1:
                raise UserError(f"{self.path}: dense layer {i} reads a {self.shape} input without a flatten layer "
                                "before it, which netx cannot connect; export a flatten block before it")
            chain.append(nir.Linear(weight=weight * 2.0**exp / LAM))
            shape = (weight.shape[0],)
        else:
            if self.flatten:
                raise UserError(f"{self.path}: conv layer {i} follows a flatten, which netx ignores there; export "
                                "the flatten right before a dense layer")
            if self.source is None:
                raise UserError(f"{self.path}: conv layer {i} is the first layer, so the input shape is unknown; "
                                "export an input layer (slayer.block.*.Input without neuron) before it")
            node, exp = self._conv(cfg, i)
            chain.append(node)
            shape = tuple(int(s) for s in np.atleast_1d(cfg["shape"]))
        neuron = _neuron(cfg["neuron"], shape, _bias(cfg, shape, self.path, i, kind), self.path, i)
        self._add_layer(name, chain, neuron, shape, exp)

    def _add_layer(self, name: str, chain: list[nir.NIRNode], neuron: nir.NIRNode, shape: tuple[int, ...],
                   exp: int) -> None:
        self.nodes[name] = neuron
        previous = self.source
        for k, node in enumerate(chain):
            self.nodes[f"{name}.syn{k}"] = node
            self.edges.append((previous, f"{name}.syn{k}"))
            previous = f"{name}.syn{k}"
        self.edges.append((previous, name))
        self.layers[name] = {"lam": LAM, "weight_exp": {self.source: exp}}
        self.source, self.shape = name, shape

    def _conv(self, cfg, i: int) -> tuple[nir.Conv2d, int]:
        if len(self.shape) != 3:
            raise UserError(f"{self.path}: conv layer {i} reads a {len(self.shape)}-D input {self.shape}; netx "
                            "convolutions take (C, H, W)")
        raw = cfg["weight"]
        if raw.ndim < 4 or any(d != 1 for d in raw.shape[4:]):
            raise UserError(f"{self.path}: conv layer {i} weight has shape {raw.shape}; netx reads "
                            "[out, in, kH, kW(, 1)]")
        weight, exp = _representable(raw.reshape(raw.shape[:4]), 0)  # Lava Conv: the integers, no exponent

        def pair(key: str) -> tuple[int, int]:
            value = np.atleast_1d(cfg[key]).astype(int)
            return (int(value[0]),) * 2 if value.size == 1 else (int(value[0]), int(value[1]))

        node = nir.Conv2d(input_shape=self.shape[1:], weight=weight * 2.0**exp / LAM, stride=pair("stride"),
                          padding=pair("padding"), dilation=pair("dilation"),
                          groups=int(np.asarray(cfg["groups"]).reshape(-1)[0]),
                          bias=np.zeros(weight.shape[0]))
        return node, exp


def _dense_weights(raw: np.ndarray, rows: int) -> tuple[np.ndarray, int]:
    """The integer mantissas and exponent Lava's bit-accurate Dense applies to netx's weights."""
    from lava.lib.dl.netx.utils import optimize_weight_bits
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    raw = raw.reshape(rows, -1) if raw.ndim == 1 else raw
    if not np.any(raw):
        return np.zeros(raw.shape, np.int64), 0
    weight, bits, exp, _ = optimize_weight_bits(raw)
    mode = determine_sign_mode(weight)
    weight = truncate_weights(clip_weights(weight, mode, num_bits=8), mode, bits)
    return _representable(weight, exp)


def _representable(weight: np.ndarray, exp: int) -> tuple[np.ndarray, int]:
    """The same products as mantissas our quantiser keeps (mixed sign: even, -254..254; else -255..255): an odd
    mixed mantissa is doubled at one exponent less, a -256 (Lava's mixed minimum) halved at one more when every
    mantissa allows it. Neither changes a sum: ``floor(2 a / 2**(k+1)) = floor(a / 2**k)``."""
    weight = np.asarray(weight, dtype=np.int64)
    step, lowest = (2, -254) if weight.min() < 0 < weight.max() else (1, -255)
    if np.any(weight % step):
        return weight * 2, exp - 1
    while weight.min() < lowest and not np.any(weight % (2 * step)):
        weight, exp = weight // 2, exp + 1
    return weight, exp


def _scalar(neuron, key: str, path: Path, i: int, default: int | None = None) -> int:
    if key not in neuron.keys():
        if default is None:
            raise UserError(f"{path}: layer {i} neuron lacks {key!r}; re-export it with lava-dl's export_hdf5")
        return default
    value = np.asarray(neuron[key])
    if value.size != 1:
        raise UserError(f"{path}: layer {i} neuron {key} has {value.size} values; netx takes one per layer")
    return int(value.reshape(-1)[0])


def _neuron(neuron, shape: tuple[int, ...], bias: np.ndarray, path: Path, i: int) -> nir.NIRNode:
    """The NIR neuron node of a netx CUBA layer (module docstring); refuses what netx's LIF silently drops."""
    ntype = neuron["type"]
    if ntype not in NEURON_TYPES:
        raise UserError(f"{path}: layer {i} has {ntype!r} neurons; netx_to_nir imports {SUPPORTED}")
    if "gradedSpike" in neuron.keys() and bool(np.asarray(neuron.f["gradedSpike"][()]).reshape(-1)[0]):
        raise UserError(f"{path}: layer {i} has graded-spike CUBA neurons, which netx's LIF sends as binary spikes; "
                        "export with graded_spike=False")
    if _scalar(neuron, "refDelay", path, i, 1) != 1:
        raise UserError(f"{path}: layer {i} has a refractory delay, which netx's LIF does not model; export with "
                        "refractory delay 1")
    i_decay, v_decay, vth = (_scalar(neuron, k, path, i) for k in ("iDecay", "vDecay", "vThMant"))
    if not 1 <= i_decay <= DECAY_ONE:
        raise UserError(f"{path}: layer {i} iDecay={i_decay} is outside 1..{DECAY_ONE} (0 means a current that never "
                        "decays, which NIR's finite tau_syn cannot hold)")
    if not 0 <= v_decay <= DECAY_ONE or (v_decay == 0 and i_decay != DECAY_ONE):
        raise UserError(f"{path}: layer {i} vDecay={v_decay} is outside 1..{DECAY_ONE} (0, a membrane that never "
                        "decays, is imported only without current state, iDecay=4096, as an IF neuron)")
    if not 0 <= vth <= VTH_MAX:
        raise UserError(f"{path}: layer {i} vThMant={vth} is outside Lava's 17-bit 0..{VTH_MAX}")
    full = np.full(shape, 1.0)
    threshold, zeros = full * (vth / LAM), np.zeros(shape)
    if v_decay == 0:
        if np.any(bias):
            raise UserError(f"{path}: layer {i} has a bias and vDecay=0; NIR's IF neuron has no leak term to hold it")
        return nir.IF(r=full, v_threshold=threshold, v_reset=zeros)
    tau_mem = full * (DECAY_ONE / v_decay)
    v_leak = bias / LAM * tau_mem
    if i_decay == DECAY_ONE:
        return nir.LIF(tau=tau_mem, r=tau_mem.copy(), v_leak=v_leak, v_threshold=threshold, v_reset=zeros)
    tau_syn = full * (DECAY_ONE / i_decay)
    return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem.copy(), v_leak=v_leak, v_threshold=threshold,
                       v_reset=zeros, w_in=tau_syn.copy())


def _bias(cfg, shape: tuple[int, ...], path: Path, i: int, kind: str) -> np.ndarray:
    """netx's bias_mant (at bias_exp 6) per neuron: one per dense neuron, one per conv channel."""
    if "bias" not in cfg.keys():
        return np.zeros(shape)
    bias = np.asarray(cfg["bias"]).reshape(-1)  # NetDict already cast it to int, as netx does
    if not (BIAS_RANGE[0] <= bias.min() and bias.max() <= BIAS_RANGE[1]):
        raise UserError(f"{path}: layer {i} bias spans {bias.min()}..{bias.max()}, beyond Lava's 13-bit bias "
                        f"mantissa {BIAS_RANGE[0]}..{BIAS_RANGE[1]}")
    if kind == "dense" and bias.size == shape[0]:
        return bias.astype(np.float64)
    if kind == "conv" and bias.size == shape[0]:
        return np.broadcast_to(bias.reshape(-1, 1, 1), shape).astype(np.float64)
    raise UserError(f"{path}: layer {i} has {bias.size} bias values for {kind} output shape {shape}; import takes "
                    "one per neuron (dense) or one per channel (conv)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else "no details"


def main(argv: list[str]) -> int:
    try:
        nir.write(argv[1], _read(Path(argv[0])))
    except UserError as exc:
        Path(argv[1]).with_suffix(".error").write_text(str(exc))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
