"""Loihi fixed point: the integer arithmetic of Lava's bit-accurate models, and the network's forward in it.

One definition of the integers, shared by the quantiser (``converters.quantize``), its calibration and
quantisation-aware training. Per projection and neuron layer, as Lava's ``PyDenseModelBitAcc`` and
``PyLifResetModelBitAcc`` compute them::

    a_in = shift(sum_j w_ij * payload_j, weight_exp) + bias_i    w: 8-bit mantissa (mixed sign: even, -256..254)
                                                                 |bias_i| <= SYNAPSE_BIAS_MAX
    u <- trunc(u * (4096 - (du + 1)) / 4096) + a_in * 64           wraps at 24 bits
    v <- trunc(v * (4096 - dv) / 4096) + u + leak                  saturates at 24 bits
    s = v > vth * 64 ;  v <- 0 where s

``shift(x, e)`` is ``x * 2**e`` for e > 0 and ``floor(x / 2**-e)`` otherwise (numpy's arithmetic right shift).
A layer's scale ``lam`` (a power of two) maps float current 1.0 to ``lam`` units of ``a_in``; a projection
from a source of ``sigma`` payload units per unit value carries the real weight ``W lam / sigma = w 2**e``.

Integers are held in float64 tensors (every product and sum stays below 2**53, so they are exact), sums of
products in float32 where they stay below 2**24.

Quantisation-aware training runs the network through exactly these integers (``fixed_spikes``): the spikes
are the fixed-point network's, and gradients pass straight through the rounding (the straight-through
estimator): the current's gradient is the float synapse's, the neuron's is the float surrogate evaluated at
the fixed-point membrane (``FixedLIF``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import snntorch as snn
import torch
from torch import nn

from iemf_neuro.errors import UserError

from .fused import lif_backward

A_IN_MAX = 2**15 - 1  # 16-bit synaptic input
VTH_MAX = 2**17 - 1  # 17-bit threshold mantissa
UV_MAX = 2**23 - 1  # 24-bit u, v
DECAY_ONE = 4096  # 12-bit decays
BIAS_MANT_MAX = 2**12 - 1  # 13-bit signed bias mantissa
SYNAPSE_BIAS_MAX = BIAS_MANT_MAX  # a projection's bias in a_in units: on chip, the neuron's bias mantissa at
#                                   exponent STATE_SHIFT (equal to a bias in u for neurons without current state)
STATE_SHIFT = 6  # a_in and vth are shifted left by 6 bits into the 24-bit state
STATE_SCALE = 2**STATE_SHIFT  # state units per a_in / vth unit
INPUT_BITS = 8  # graded-spike payload of direct-encoded inputs (signed)
WEIGHT_BITS = 8  # synaptic weight mantissa (Lava Dense num_weight_bits; with the sign mode's step, 254/255)
MESSAGE_BITS = 24  # graded spike payload between layers (Lava num_message_bits)
PAYLOAD_MAX = 2 ** (INPUT_BITS - 1) - 1
INPUT_RANGE = 1.0  # |x| bound of direct-encoded inputs the trained fixed point assumes (features in [0, 1])


def pow2_floor(x: float) -> float:
    return 2.0 ** math.floor(math.log2(x))


def input_scale(max_abs: float) -> float:
    """Payload units per unit value of a graded input: ``PAYLOAD_MAX`` at the input's largest magnitude."""
    return PAYLOAD_MAX / max_abs if max_abs > 0 else 1.0


def quantize_payload(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Graded input -> 8-bit payload ``clip(round(x * scale))``."""
    return torch.clamp(torch.round(x.double() * scale), -PAYLOAD_MAX, PAYLOAD_MAX)


def mantissa_range(mixed: bool) -> tuple[int, int]:
    """(largest mantissa, step): mixed-sign weights are even (Lava truncates their lowest bit)."""
    return (254, 2) if mixed else (255, 1)


def range_exponent(max_abs: float, mixed: bool) -> int:
    """Smallest weight exponent whose mantissa spans ``max_abs`` (weight = mantissa * 2**exp)."""
    return math.ceil(math.log2(max_abs / mantissa_range(mixed)[0])) if max_abs > 0 else 0


def mantissa(target: torch.Tensor, exp: int, mixed: bool) -> torch.Tensor:
    """``target ~ w * 2**exp``: w rounded to the mantissa step and clipped to 8 bits (as Lava applies it)."""
    top, step = mantissa_range(mixed)
    return torch.clamp(torch.round(target / 2.0**exp / step), -(top // step), top // step) * step


def shift(acc: torch.Tensor, exp: int) -> torch.Tensor:
    """Lava's weight exponent: ``acc << exp`` for exp > 0, else the arithmetic (flooring) ``acc >> -exp``."""
    return acc * 2.0**exp if exp > 0 else torch.floor(acc / 2.0 ** (-exp))


def decay_ints(alpha: float | None, beta: float) -> tuple[int, int]:
    """(du, dv) with ``4096 - (du + 1) = alpha 4096`` (no current state: du = 4095) and ``4096 - dv = beta 4096``."""
    du = DECAY_ONE - 1 if alpha is None else int(min(max(round((1 - alpha) * DECAY_ONE) - 1, 0), DECAY_ONE - 1))
    return du, int(min(max(round((1 - beta) * DECAY_ONE), 0), DECAY_ONE - 1))


def threshold_int(theta: float, lam: float) -> int:
    return int(min(max(round(theta * lam), 0), VTH_MAX))


def loihi_lif(a_in: torch.Tensor, du: int | torch.Tensor, dv: int | torch.Tensor, vth: int | torch.Tensor,
              bias: torch.Tensor | float = 0.0, spiking: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """a_in [T, ...] (integers) -> (spikes, v before reset) [T, ...], state zero at t = 0 (module docstring).
    ``du``, ``dv``, ``vth``: one value, or one per neuron (broadcast over a_in's trailing dimensions)."""
    a_in = a_in.double() * STATE_SCALE
    no_current = bool(torch.all(torch.as_tensor(du) == DECAY_ONE - 1))
    if no_current:  # u[t] = a_in[t] << 6, every step at once
        currents = _wrap(a_in)
    u = v = torch.zeros_like(a_in[0])
    spikes, volts = [], []
    for t in range(a_in.shape[0]):
        u = currents[t] if no_current else _wrap(torch.trunc(u * (DECAY_ONE - du - 1) / DECAY_ONE) + a_in[t])
        v = torch.clamp(torch.trunc(v * (DECAY_ONE - dv) / DECAY_ONE) + u + bias, -UV_MAX, UV_MAX)
        s = v > vth * STATE_SCALE if spiking else torch.zeros_like(v, dtype=torch.bool)
        volts.append(v)
        spikes.append(s.to(a_in.dtype))
        v = v * ~s
    return torch.stack(spikes), torch.stack(volts)


def _wrap(u: torch.Tensor) -> torch.Tensor:
    """24-bit wrap-around of the current, as Lava's model does it (only reached beyond 16-bit a_in)."""
    if u.numel() == 0 or float(u.abs().max()) <= UV_MAX:
        return u
    return torch.where(u > UV_MAX + 1, u - 2 * (UV_MAX + 1), torch.where(u <= -(UV_MAX + 1), u + 2 * (UV_MAX + 1), u))


@dataclass(frozen=True)
class LayerSpec:
    """A neuron layer's fixed-point scales: ``lam`` and one weight exponent per incoming projection."""

    lam: float  # a_in units per unit float current (a power of two)
    weight_exp: dict[str, int]  # source layer or input -> its projection's exponent


@dataclass(frozen=True)
class FixedPointSpec:
    """Everything that turns float parameters into Loihi integers; JSON in the NIR metadata (``fixed_point``)."""

    input_scale: dict[str, float]  # Input node -> payload units per unit value (1 for spikes)
    layers: dict[str, LayerSpec]  # neuron layer -> scales

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FixedPointSpec":
        try:
            layers = {k: LayerSpec(float(v["lam"]), {s: int(e) for s, e in v["weight_exp"].items()})
                      for k, v in data["layers"].items()}
            return cls({k: float(v) for k, v in data["input_scale"].items()}, layers)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"invalid fixed_point record in the graph metadata ({exc}); re-export the run") from exc


class FixedLIF(torch.autograd.Function):
    """(float current, its exact integer a_in) [T, B, ...] -> the fixed-point layer's spikes. Backward (straight
    through): ``fused.lif_backward``'s float surrogate at the fixed-point membrane ``v / (64 lam)``, with the
    quantised decay and threshold, back to the float current."""

    @staticmethod
    def forward(ctx, current, a_in, lam, dv, vth):
        spikes, volts = loihi_lif(a_in, DECAY_ONE - 1, dv, vth)
        ctx.save_for_backward((volts / (lam * STATE_SCALE)).to(current.dtype), spikes.to(current.dtype))
        ctx.beta, ctx.threshold = (DECAY_ONE - dv) / DECAY_ONE, vth / lam
        return spikes.to(current.dtype)

    @staticmethod
    def backward(ctx, grad_spikes):
        mems, spikes = ctx.saved_tensors
        return lif_backward(grad_spikes, mems, spikes, None, ctx.beta, ctx.threshold), None, None, None, None


def _pool_area(m: nn.Module) -> int:
    k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size, m.kernel_size)
    return k[0] * k[1]


@dataclass
class Projection:
    """One synaptic path into a neuron layer, as the exporter writes it: readout, then weights (times a gain)."""

    src: str  # source layer or input name
    pre: list[nn.Module]  # stateless readout before the weights (AvgPool2d, Flatten)
    layer: nn.Linear | nn.Conv2d | torch.Tensor  # the weights (a tensor: a gate synapse's signed [out, in] matrix)
    gain: torch.Tensor | None  # fusion gain, folded into the weights in float32 as the exporter does

    def weight(self) -> torch.Tensor:
        w = (self.layer if isinstance(self.layer, torch.Tensor) else self.layer.weight).detach()
        return (w if self.gain is None else w * self.gain.to(w.dtype)).double()

    def composed(self) -> torch.Tensor:
        """The weights as the composed NIR matrix holds them: average pooling divides each by its area."""
        return self.weight() / math.prod(_pool_area(m) for m in self.pre if isinstance(m, nn.AvgPool2d))

    def apply(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``weight`` after the readout, no bias, x [N, ...]; pooling sums, so integers stay integers."""
        for m in self.pre:
            x = m(x) * (_pool_area(m) if isinstance(m, nn.AvgPool2d) else 1)
        if not isinstance(self.layer, nn.Conv2d):
            return x @ weight.T
        c = self.layer
        return nn.functional.conv2d(x, weight, None, c.stride, c.padding, c.dilation, c.groups)


@dataclass
class Layer:
    """A neuron layer of the network, everything feeding it, and its float current (the STE's gradient path)."""

    name: str
    neuron: nn.Module  # snn.Leaky
    projections: list[Projection]
    bias: torch.Tensor | None  # per neuron (Linear) or channel (Conv2d)
    float_current: Callable[[dict[str, torch.Tensor]], torch.Tensor]  # source spikes -> [T, B, ...] current

    def theta(self) -> float:
        return float(self.neuron.threshold.detach().reshape(-1)[0])

    def beta(self) -> float:
        return float(self.neuron.beta.detach().reshape(-1)[0])


def network_layers(net: nn.Module) -> list[Layer]:
    """An ``IEMFNet``'s layers in forward order (mlp / cnn branches, concat fusion with or without a gate, 'lif'
    neurons)."""
    from .network import MODALITIES, SpikingStage, over_time

    def split(seq: nn.Sequential, what: str) -> tuple[list[nn.Module], nn.Module]:
        mods = list(seq)
        pools_ok = all(isinstance(m, nn.Flatten) or (isinstance(m, nn.AvgPool2d) and m.padding == 0
                                                       and m.stride == m.kernel_size) for m in mods[:-1])
        if not mods or not isinstance(mods[-1], (nn.Linear, nn.Conv2d)) or not pools_ok:
            raise UserError(f"layer {what!r}: quantisation-aware training needs [AvgPool2d/Flatten ...] + "
                            "Linear/Conv2d synapses (no BatchNorm, no residual blocks); use an mlp or cnn config")
        return mods[:-1], mods[-1]

    def stage(block: nn.Module, name: str, src: str) -> Layer:
        if not isinstance(block, SpikingStage):
            raise UserError(f"layer {name!r} is a {type(block).__name__}; quantisation-aware training supports "
                            "plain spiking stages only (mlp and cnn configs)")
        pre, w = split(block.synapse, name)
        return Layer(name, block.neuron, [Projection(src, pre, w, None)], w.bias,
                     lambda f: over_time(block.synapse, f[src]))

    layers, last = [], {}
    for m in MODALITIES:
        last[m] = m
        for i, block in enumerate(net.branches[m].blocks):
            layers.append(stage(block, f"{m}.{i}", last[m]))
            last[m] = f"{m}.{i}"
    fusion = net.fusion
    if fusion.kind != "concat":
        raise UserError(f"fusion {fusion.kind!r}: quantisation-aware training supports concat fusion only")
    if fusion.gate is None:
        projs = [Projection(last[m], list(fusion.readouts[m]), fusion.proj[m], fusion.gain[i])
                 for i, m in enumerate(MODALITIES)]
        layers.append(Layer("fusion", fusion.neuron, projs, fusion.bias,
                            lambda f: fusion.current(f[last["audio"]], f[last["visual"]])))
    else:
        layers.extend(gate_layers(fusion, last))
        projs = [Projection(f"fusion.relay.{m}", [], fusion.proj[m], fusion.gain[i]) for i, m in enumerate(MODALITIES)]
        layers.append(Layer("fusion", fusion.neuron, projs, fusion.bias,
                            lambda f: fusion.mix(f["fusion.relay.audio"], f["fusion.relay.visual"])))
    layers.append(stage(net.output, "output", "fusion"))
    for layer in layers:
        if type(layer.neuron) is not snn.Leaky:
            raise UserError(f"layer {layer.name!r}: quantisation-aware training supports 'lif' neurons only")
    return layers


def gate_layers(fusion: nn.Module, last: dict[str, str]) -> list[Layer]:
    """The fusion gate's populations (``gate.py``): a synapse from a modality's features reads that branch's last
    layer through the fusion readout; the others read gate populations."""
    from .network import MODALITIES, over_time

    def current(gate_layer) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
        return lambda f: gate_layer.current({**f, **{m: over_time(fusion.readouts[m], f[last[m]]) for m in MODALITIES}})

    layers = []
    for name, g in fusion.gate.layers().items():
        projs = [Projection(last[i.source], list(fusion.readouts[i.source]), i.weight, None) if i.source in MODALITIES
                 else Projection(i.source, [], i.weight, None) for i in g.inputs]
        layers.append(Layer(name, g.neuron, projs, g.bias, current(g)))
    return layers


def _mixed(target: torch.Tensor) -> bool:
    return bool(target.min() < 0 < target.max())


def range_spec(layers: list[Layer]) -> FixedPointSpec:
    """Scales from the weights alone: ``lam`` the largest power of two with worst-case ``a_in`` in 16 bits and
    the threshold in 17 bits; each exponent the smallest whose mantissa spans its projection's largest weight."""
    scales = {"audio": input_scale(INPUT_RANGE), "visual": input_scale(INPUT_RANGE)}
    spec: dict[str, LayerSpec] = {}
    for layer in layers:
        pos = neg = 0.0
        for p in layer.projections:
            w = p.weight().flatten(1) * (INPUT_RANGE if p.src in scales else 1.0)
            pos, neg = pos + w.clamp(min=0).sum(1), neg + (-w).clamp(min=0).sum(1)
        if layer.bias is not None:
            b = layer.bias.detach().double()
            pos, neg = pos + b.clamp(min=0), neg + (-b).clamp(min=0)
        worst = max(float(pos.max()), float(neg.max())) or 1.0
        limits = [A_IN_MAX / worst, VTH_MAX / layer.theta()]
        if layer.bias is not None and float(layer.bias.detach().abs().max()) > 0:
            limits.append(SYNAPSE_BIAS_MAX / float(layer.bias.detach().abs().max()))
        lam = pow2_floor(min(limits))
        exps = {}
        for p in layer.projections:
            target = p.composed() * (lam / scales.get(p.src, 1.0))
            exps[p.src] = range_exponent(float(target.abs().max()), _mixed(target))
        spec[layer.name] = LayerSpec(lam, exps)
    return FixedPointSpec(scales, spec)


def fixed_current(layer: Layer, spec: FixedPointSpec, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The layer's integer ``a_in`` [T, B, ...]; ``inputs``: payloads (Input nodes) or spikes (layers)."""
    from .network import over_time

    ls = spec.layers[layer.name]
    total = 0.0
    for p in layer.projections:
        target = p.composed() * (ls.lam / spec.input_scale.get(p.src, 1.0))
        exp = ls.weight_exp[p.src]
        w = mantissa(target, exp, _mixed(target))
        pooled = math.prod(_pool_area(m) for m in p.pre if isinstance(m, nn.AvgPool2d))
        largest = float(w.abs().max()) * (PAYLOAD_MAX if p.src in spec.input_scale else 1) * pooled * w[0].numel()
        dtype = torch.float32 if largest < 2**24 else torch.float64  # float32 is exact below 2**24, and faster
        acc = over_time(lambda x, p=p, w=w.to(dtype): p.apply(x.to(dtype), w), inputs[p.src])
        total = total + shift(acc, exp).double()
    if layer.bias is not None:
        b = torch.clamp(torch.round(layer.bias.detach().double() * ls.lam), -SYNAPSE_BIAS_MAX, SYNAPSE_BIAS_MAX)
        total = total + (b.reshape(-1, 1, 1) if total.dim() == 5 else b)
    return total


def network_spec(net: nn.Module) -> FixedPointSpec:
    """The scales ``net`` runs at in fixed point (what export records for quantisation-aware models)."""
    return range_spec(network_layers(net))


def fixed_spikes(net: nn.Module, x_audio: torch.Tensor, x_visual: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every layer's spikes [T, B, ...] of ``net`` in Loihi fixed point at ``range_spec`` (module docstring):
    exactly Lava's; the currents carry the float synapses' gradients (straight through)."""
    from .network import over_time

    layers = network_layers(net)
    spec = range_spec(layers)
    floats = {"audio": x_audio, "visual": x_visual}
    ints = {m: over_time(lambda x, m=m: quantize_payload(x, spec.input_scale[m]), x) for m, x in floats.items()}
    for layer in layers:
        ls = spec.layers[layer.name]
        current = layer.float_current(floats)
        with torch.no_grad():
            a_in = fixed_current(layer, spec, ints)
        dv = decay_ints(None, layer.beta())[1]
        floats[layer.name] = FixedLIF.apply(current, a_in, ls.lam, dv, threshold_int(layer.theta(), ls.lam))
        ints[layer.name] = floats[layer.name].detach()
    return {layer.name: floats[layer.name] for layer in layers}
