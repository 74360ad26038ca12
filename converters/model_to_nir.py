"""Export an ``IEMFNet`` to a NIR graph, with BatchNorm folded and the fusion weighting folded into the fusion
projections as explicit synaptic gains.

Graph form (``docs/nir.md``): Input nodes ``audio`` and ``visual``; one neuron node per ``IEMFNet.neurons()``
key; the synaptic nodes feeding neuron X are ``X.syn0, X.syn1, ...`` (a residual shortcut:
``X.shortcut0, ...``); the fusion is one projection per modality, ``fusion.audio`` and ``fusion.visual``,
both into the neuron node ``fusion``, with

    W_m = g_m * W_hat_m        (concat: W_hat_m the modality's own projection; sum: the shared projection)

and the fusion bias on ``fusion.audio`` (an Affine; ``fusion.visual`` is a Linear). A fusion gate (``docs/gate.md``)
adds the populations ``fusion.confidence.<m>``, ``fusion.gate.<m>`` (or ``fusion.gate.common``) and
``fusion.relay.<m>``; the projections ``fusion.<m>`` then read the relays. The Output node is
``output.spikes`` (the neuron node ``output`` keeps its layer name). Neurons are exported with dt = 1:
LIF tau = 1/(1-beta), r = tau; CubaLIF tau_syn = 1/(1-alpha), w_in = tau_syn, tau_mem = 1/(1-beta),
r = tau_mem; v_leak = 0, v_reset = 0, reset "zero" (see ``nir_semantics``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import nir
import numpy as np
import snntorch as snn
import torch
from torch import nn

from iemf_neuro.errors import UserError
from iemf_neuro.models import DEPLOYABLE_FUSIONS, IEMFNet, ModelConfig
from iemf_neuro.models.fixed_point import network_spec
from iemf_neuro.models.network import MODALITIES, ResidualBlock, SpikingStage
from iemf_neuro.models.reference import reference_spikes
from iemf_neuro.provenance import atomic_path, provenance, to_jsonable

from .nir_semantics import METADATA_KEY

OUTPUT_NODE = "output.spikes"
DT = 1.0
FORMAT = "iemf-neuro-nir"
VERSION = 1


@dataclass(frozen=True)
class ProjectionGain:
    """A fusion projection's gain, split for fixed point: gain = mantissa * 2**exponent, mantissa in [1, 2)."""

    modality: str  # "audio" or "visual"
    gain: float  # g_m folded into the projection's weights
    mantissa: float  # in [1, 2); exactly 1 for power-of-two gains
    exponent: int  # power of two, kept in the weight exponent on Loihi-style hardware


def split_gain(gain: float) -> tuple[float, int]:
    """gain = mantissa * 2**exponent with mantissa in [1, 2) (exact: frexp only moves the binary point)."""
    m, e = math.frexp(gain)
    return 2.0 * m, e - 1


def check_gains(gains: dict[str, Any] | None, default: dict[str, float]) -> dict[str, float]:
    """Validate user gains (missing modalities keep ``default``): numeric, finite, strictly positive."""
    out = dict(default)
    for key, value in (gains or {}).items():
        if key not in MODALITIES:
            raise UserError(f"fusion gain for unknown modality {key!r}; give gains for {' and '.join(MODALITIES)}")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise UserError(f"fusion gain {key}={value!r} is not a number; pass e.g. {key}=1.0")
        if not math.isfinite(float(value)) or float(value) <= 0:
            raise UserError(f"fusion gain {key}={value} must be finite and > 0; a gain of 0 or less would "
                            "silence or invert the modality, pass a positive gain")
        out[key] = float(value)
    return out


def _array(t: torch.Tensor, what: str) -> np.ndarray:
    a = t.detach().cpu().numpy().copy()
    if not np.all(np.isfinite(a)):
        raise UserError(f"{what} contains NaN/inf values; the model is broken, re-train it or export another "
                        "checkpoint")
    return a


def _out_shape(module: nn.Module, shape: tuple[int, ...], like: torch.Tensor) -> tuple[int, ...]:
    with torch.no_grad():
        return tuple(module(torch.zeros(1, *shape, dtype=like.dtype)).shape[1:])


def _fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d, what: str) -> tuple[np.ndarray, np.ndarray]:
    """y = gamma (conv(x) - mean) / sqrt(var + eps) + beta  ->  W' = W k, b' = beta + (b - mean) k,
    k = gamma / sqrt(var + eps), in float64 and cast back to the weights' dtype."""
    if not bn.track_running_stats or bn.running_mean is None:
        raise UserError(f"{what}: BatchNorm without running statistics cannot be folded; train with "
                        "track_running_stats=True")
    f64 = lambda t: _array(t, what).astype(np.float64)  # noqa: E731 - local cast helper
    gamma = f64(bn.weight) if bn.affine else np.ones(bn.num_features)
    shift = f64(bn.bias) if bn.affine else np.zeros(bn.num_features)
    k = gamma / np.sqrt(f64(bn.running_var) + bn.eps)
    w = f64(conv.weight) * k[:, None, None, None]
    b0 = f64(conv.bias) if conv.bias is not None else np.zeros(conv.out_channels)
    dtype = conv.weight.detach().cpu().numpy().dtype
    return w.astype(dtype), (shift + (b0 - f64(bn.running_mean)) * k).astype(dtype)


def _conv_node(conv: nn.Conv2d, shape: tuple[int, ...], weight: np.ndarray, bias: np.ndarray) -> nir.Conv2d:
    if conv.padding_mode != "zeros":
        raise UserError(f"Conv2d with padding_mode={conv.padding_mode!r} is not expressible in NIR; use zero padding")
    padding = conv.padding if isinstance(conv.padding, str) else tuple(conv.padding)
    return nir.Conv2d(input_shape=tuple(shape[1:]), weight=weight, stride=tuple(conv.stride), padding=padding,
                      dilation=tuple(conv.dilation), groups=int(conv.groups), bias=bias)


def synapse_nodes(modules: list[nn.Module], shape: tuple[int, ...], what: str,
                  like: torch.Tensor) -> tuple[list[nir.NIRNode], tuple[int, ...]]:
    """NIR nodes for a chain of stateless layers (BatchNorm folded into the conv before it)."""
    nodes: list[nir.NIRNode] = []
    i = 0
    while i < len(modules):
        m = modules[i]
        layer = f"{what} layer {i} ({type(m).__name__})"
        folds_bn = isinstance(m, nn.Conv2d) and i + 1 < len(modules) and isinstance(modules[i + 1], nn.BatchNorm2d)
        span = 2 if folds_bn else 1
        if isinstance(m, nn.Linear):
            w = _array(m.weight, f"{layer} weight")
            nodes.append(nir.Affine(w, _array(m.bias, f"{layer} bias")) if m.bias is not None else nir.Linear(w))
        elif isinstance(m, nn.Conv2d):
            if span == 2:
                w, b = _fold_bn(m, modules[i + 1], layer)
            else:
                w = _array(m.weight, f"{layer} weight")
                b = _array(m.bias, f"{layer} bias") if m.bias is not None else np.zeros(m.out_channels, w.dtype)
            nodes.append(_conv_node(m, shape, w, b))
        elif isinstance(m, nn.AvgPool2d):
            if m.ceil_mode or not m.count_include_pad or m.divisor_override is not None:
                raise UserError(f"{layer}: only AvgPool2d(ceil_mode=False, count_include_pad=True) maps to NIR; "
                                "use the default pooling options")
            two = lambda v: np.array(v if isinstance(v, (tuple, list)) else (v, v))  # noqa: E731
            nodes.append(nir.AvgPool2d(kernel_size=two(m.kernel_size), stride=two(m.stride), padding=two(m.padding)))
        elif isinstance(m, nn.Flatten):
            nd = len(shape) + 1  # torch indexes with the batch dimension, NIR without it
            start, end = m.start_dim % nd, m.end_dim % nd
            if start == 0:
                raise UserError(f"{layer}: Flatten over the batch dimension cannot be exported; flatten from dim 1")
            nodes.append(nir.Flatten(np.array(shape), start_dim=start - 1, end_dim=end - 1))
        elif isinstance(m, nn.BatchNorm2d):
            raise UserError(f"{layer}: BatchNorm2d that does not follow a Conv2d cannot be folded; place it right "
                            "after a convolution")
        elif not isinstance(m, nn.Identity):
            raise UserError(f"{layer} is not expressible in NIR; deployable layers are Linear, Conv2d (+BatchNorm2d), "
                            "AvgPool2d and Flatten")
        shape = _out_shape(nn.Sequential(*modules[i:i + span]), shape, like)
        i += span
    return nodes, shape


def neuron_node(neuron: nn.Module, name: str) -> nir.NIRNode:
    """snnTorch zero-reset Leaky / Synaptic -> NIR LIF / CubaLIF at dt = 1 (exact for decays 1 - 2**-k)."""
    if not isinstance(neuron, (snn.Leaky, snn.Synaptic)):
        raise UserError(f"neuron layer {name!r} is {type(neuron).__name__}; only snn.Leaky and snn.Synaptic export")
    if neuron.reset_mechanism_val != 1 or neuron.reset_delay:
        raise UserError(f"neuron layer {name!r} does not use same-step zero reset; build it with "
                        "reset_mechanism='zero', reset_delay=False")
    thr = _array(neuron.threshold, f"neuron layer {name!r} threshold").astype(np.float64)
    beta = _array(neuron.beta, f"neuron layer {name!r} beta").astype(np.float64)
    beta, thr = np.broadcast_arrays(beta, thr)
    if np.any(beta >= 1) or np.any(beta < 0):
        raise UserError(f"neuron layer {name!r} has beta outside [0, 1); decays must be < 1 to have a time constant")
    tau = DT / (1.0 - beta)
    zeros = np.zeros_like(tau)
    if isinstance(neuron, snn.Leaky):
        return nir.LIF(tau=tau, r=tau / DT, v_leak=zeros, v_threshold=thr.copy(), v_reset=zeros.copy())
    alpha = np.broadcast_to(_array(neuron.alpha, f"neuron layer {name!r} alpha").astype(np.float64), tau.shape)
    if np.any(alpha >= 1) or np.any(alpha < 0):
        raise UserError(f"neuron layer {name!r} has alpha outside [0, 1); decays must be < 1")
    tau_syn = DT / (1.0 - alpha)
    return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau, r=tau / DT, v_leak=zeros, v_threshold=thr.copy(),
                       v_reset=zeros.copy(), w_in=tau_syn / DT)


class _Builder:
    """Accumulates nodes and edges (edge order = summation order in the reference executor)."""

    def __init__(self, like: torch.Tensor):
        self.nodes: dict[str, nir.NIRNode] = {}
        self.edges: list[tuple[str, str]] = []
        self.like = like

    def chain(self, modules: list[nn.Module], source: str, shape: tuple[int, ...], target: str,
              prefix: str) -> tuple[str, tuple[int, ...]]:
        """Add the synaptic chain ``source -> prefix0 -> prefix1 ...``; returns its last node and output shape."""
        nodes, shape = synapse_nodes(modules, shape, f"layer {target!r}", self.like)
        for k, node in enumerate(nodes):
            name = f"{prefix}{k}"
            self.nodes[name] = node
            self.edges.append((source, name))
            source = name
        return source, shape

    def stage(self, stage: SpikingStage, source: str, shape: tuple[int, ...], name: str) -> tuple[int, ...]:
        last, shape = self.chain(list(stage.synapse), source, shape, name, f"{name}.syn")
        self.neuron(stage.neuron, name, [last], shape)
        return shape

    def neuron(self, neuron: nn.Module, name: str, sources: list[str], shape: tuple[int, ...]) -> None:
        node = neuron_node(neuron, name)
        if tuple(node.v_threshold.shape) != tuple(shape):
            raise UserError(f"neuron layer {name!r} has shape {node.v_threshold.shape} but receives {shape}; "
                            "rebuild the model from its config")
        self.nodes[name] = node
        self.edges.extend((s, name) for s in sources)


def _branch(b: _Builder, model: IEMFNet, modality: str, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
    source = modality
    for i, block in enumerate(model.branches[modality].blocks):
        name = f"{modality}.{i}"
        if isinstance(block, ResidualBlock):
            mid = b.stage(block.first, source, shape, f"{name}.first")
            main, out = b.chain(list(block.second.synapse), f"{name}.first", mid, f"{name}.second",
                                f"{name}.second.syn")
            short, short_shape = b.chain(list(block.shortcut), source, shape, f"{name}.second",
                                         f"{name}.second.shortcut")
            if short_shape != out:
                raise UserError(f"residual block {name!r}: shortcut gives {short_shape}, main path {out}; "
                                "fix the block")
            b.neuron(block.second.neuron, f"{name}.second", [main, short], out)
            shape, source = out, f"{name}.second"
        elif isinstance(block, SpikingStage):
            shape, source = b.stage(block, source, shape, name), name
        else:
            raise UserError(f"branch block {name!r} is {type(block).__name__}, which the exporter does not know; "
                            "use SpikingStage or ResidualBlock")
    return source, shape


def _gate(b: _Builder, fusion: nn.Module, sources: dict[str, tuple[str, tuple[int, ...]]]) -> None:
    """The gate's populations (``iemf_neuro.models.gate``): one weight node ``X.<source>`` per synapse into
    population X (its readout chain ``X.<modality>.syn0, ...`` for a modality's features), the population's
    bias on its first synapse (an Affine; the others Linear, inhibitory ones with negative weights)."""
    for name, layer in fusion.gate.layers().items():
        inputs = []
        for i, inp in enumerate(layer.inputs):
            src = inp.source
            if src in MODALITIES:
                src, _ = b.chain(list(fusion.readouts[src]), *sources[src], name, f"{name}.{src}.syn")
            w = _array(inp.weight, f"{name} weight from {inp.source}")
            node = f"{name}.{inp.source.removeprefix('fusion.')}"
            b.nodes[node] = nir.Affine(w, _array(layer.bias, f"{name} bias")) if i == 0 else nir.Linear(w)
            b.edges.append((src, node))
            inputs.append(node)
        b.neuron(layer.neuron, name, inputs, (layer.bias.shape[0],))


def _fusion(b: _Builder, model: IEMFNet, sources: dict[str, tuple[str, tuple[int, ...]]],
            gains: dict[str, float]) -> list[ProjectionGain]:
    fusion = model.fusion
    if fusion.kind not in DEPLOYABLE_FUSIONS:
        raise UserError(f"fusion layer 'fusion' is {fusion.kind!r} (multiplicative), which NIR and neuromorphic "
                        f"chips cannot express; retrain with a deployable fusion: {' or '.join(DEPLOYABLE_FUSIONS)}")
    bias = _array(fusion.bias, "fusion bias")
    if fusion.gate is not None:
        _gate(b, fusion, sources)
    projections, inputs = [], []
    for modality in MODALITIES:
        if fusion.gate is not None:
            last = f"fusion.relay.{modality}"
        else:
            src, shape = sources[modality]
            last, shape = b.chain(list(fusion.readouts[modality]), src, shape, "fusion", f"fusion.{modality}.syn")
        w_hat = fusion.proj["shared" if fusion.kind == "sum" else modality].weight.detach()
        w = _array(w_hat * torch.tensor(gains[modality], dtype=w_hat.dtype), f"fusion projection {modality} weight")
        name = f"fusion.{modality}"
        b.nodes[name] = nir.Affine(w, bias) if modality == "audio" else nir.Linear(w)
        b.edges.append((last, name))
        inputs.append(name)
        mantissa, exponent = split_gain(gains[modality])
        projections.append(ProjectionGain(modality, gains[modality], mantissa, exponent))
    b.neuron(fusion.neuron, "fusion", inputs, (bias.shape[0],))
    return projections


def export_model(model: IEMFNet, cfg: ModelConfig, gains: dict[str, float] | None = None,
                 metadata: dict[str, Any] | None = None) -> nir.NIRGraph:
    """The NIR graph of ``model`` (eval semantics: BatchNorm uses its running statistics).

    ``gains`` (default: the model's ``fusion.gain`` buffer) are folded into the fusion projections;
    ``metadata`` entries are added to the graph's metadata record (e.g. ``run``, ``class_names``).
    """
    like = next(model.parameters()).detach()
    default = {m: float(g) for m, g in zip(MODALITIES, model.fusion.gain.detach().cpu().tolist())}
    gains = check_gains(gains, default)
    if model.quant_aware and gains != default:
        raise UserError(f"fusion gains {gains} differ from the {default} this quantisation-aware network was trained "
                        "with, and its fixed-point scales hold only for those; export it without --fusion-gain, "
                        "or fine-tune it in fixed point with the new gains")
    b = _Builder(like)
    sources = {}
    for modality in MODALITIES:
        shape = tuple(getattr(cfg, modality).input_shape)
        b.nodes[modality] = nir.Input(input_type=np.array(shape))
        sources[modality] = _branch(b, model, modality, shape)
    projections = _fusion(b, model, sources, gains)
    b.stage(model.output, "fusion", (cfg.fusion_dim,), "output")
    b.nodes[OUTPUT_NODE] = nir.Output(output_type=np.array([cfg.num_classes]))
    b.edges.append(("output", OUTPUT_NODE))
    record = {
        "format": FORMAT, "version": VERSION, "time_steps": cfg.time_steps,
        "input_encoding": {m: {"kind": cfg.encoding, "shape": list(getattr(cfg, m).input_shape)} for m in MODALITIES},
        "class_names": [str(i) for i in range(cfg.num_classes)],
        "layers": [n for n in model.neurons()], "output_node": OUTPUT_NODE,
        "fusion": {"kind": model.fusion.kind, "gains": gains, "bias_node": "fusion.audio",
                   "projections": {f"fusion.{p.modality}": asdict(p) for p in projections},
                   "gate": getattr(model.fusion.gate, "kind", "none")},
        "model_config": to_jsonable(cfg), "provenance": provenance(cfg),
        **({"fixed_point": network_spec(model).to_dict()} if model.quant_aware else {}),
        **(metadata or {}),
    }
    graph_meta = {"dt": DT, "reset": "zero", METADATA_KEY: json.dumps(to_jsonable(record), sort_keys=True)}
    try:
        return nir.NIRGraph(nodes=b.nodes, edges=b.edges, metadata=graph_meta, type_check=True)
    except (ValueError, AssertionError) as exc:
        raise UserError(f"the exported graph fails NIR type checking ({exc}); the model's shapes do not match its "
                        "config, rebuild it from the config") from exc


def write_graph(graph: nir.NIRGraph, path: str | Path) -> Path:
    """Write atomically and read back with type checking first: a .nir that does not reload is never published."""
    path = Path(path)
    with atomic_path(path) as tmp:
        nir.write(tmp, graph)
        nir.read(tmp, type_check=True)
    return path


@dataclass
class ExportCheck:
    """snnTorch model vs the reference executor on the same encoded inputs."""

    mismatches: dict[str, int]  # layer -> spike entries that differ, over all samples, steps and neurons
    model_spikes: dict[str, int]  # layer -> spikes the model emitted
    model_prediction: torch.Tensor  # [B] argmax of output spike counts
    graph_prediction: torch.Tensor  # [B]


def compare_with_model(model: IEMFNet, graph: nir.NIRGraph, x_audio: torch.Tensor, x_visual: torch.Tensor,
                       dtype: torch.dtype = torch.float32) -> ExportCheck:
    """Run both on time-major inputs ``[T, B, ...]`` in ``dtype`` and count spike mismatches per layer."""
    from .nir_executor import run_graph

    reference = reference_spikes(model, x_audio, x_visual, dtype)
    run = run_graph(graph, {"audio": x_audio.transpose(0, 1), "visual": x_visual.transpose(0, 1)}, dtype=dtype)
    mismatches, counts = {}, {}
    for layer, spikes in reference.items():
        ours = run.spikes[layer].transpose(0, 1)
        mismatches[layer] = int((ours != spikes).sum())
        counts[layer] = int(spikes.sum())
    return ExportCheck(mismatches, counts, reference["output"].sum(dim=0).argmax(dim=-1),
                       run.spikes["output"].sum(dim=1).argmax(dim=-1))
