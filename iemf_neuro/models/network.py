"""The IEMF audio-visual spiking network.

Everything runs layer by layer over the whole spike train ``[T, B, ...]``: a stage applies its synapse
(Linear/Conv2d/BatchNorm/pooling, stateless) to all T steps at once, then steps its neurons through
time. The network is feed-forward, so this equals stepping the whole net one time step at a time, and
every neuron state starts at zero inside each call: no hidden state survives between batches.

    audio  -> audio branch  -> s_a --(g_a * W_a)--\
                                                  +--> fusion LIF -> output LIF -> spike count
    visual -> visual branch -> s_v --(g_v * W_v)--/

Fusion kinds: ``concat`` (one projection per modality into the same neurons, summed; equals a Linear on
the concatenation), ``sum`` (one shared projection of g_a*s_a + g_v*s_v), and the multiplicative
``film`` and ``gated`` (training comparisons only: NIR and Loihi cannot express them).
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, field
from typing import Iterator

import snntorch as snn
import torch
from torch import nn

from iemf_neuro.errors import UserError

from .fixed_point import fixed_spikes
from .fused import ZeroResetLIF
from .neurons import initial_state, step

DEPLOYABLE_FUSIONS = ("concat", "sum")
FUSIONS = DEPLOYABLE_FUSIONS + ("film", "gated")
MODALITIES = ("audio", "visual")


NEURON_KERNELS = ("eager", "compiled", "snntorch")
_KERNEL = contextvars.ContextVar("neuron_kernel", default="eager")


@contextlib.contextmanager
def neuron_kernels(kind: str) -> Iterator[None]:
    """How neurons step inside this block: the fused node's loops run eagerly or compiled (``fused.py``), or
    snnTorch's own modules step, one call per time step (the reference export and Lava are checked against)."""
    if kind not in NEURON_KERNELS:
        raise UserError(f"unknown neuron kernel {kind!r}; choose one of {', '.join(NEURON_KERNELS)}")
    token = _KERNEL.set(kind)
    try:
        yield
    finally:
        _KERNEL.reset(token)


def run_neurons(neuron: nn.Module, current: torch.Tensor) -> torch.Tensor:
    """Step a neuron population through ``current[T, B, ...]``; returns spikes of the same shape."""
    kind = _KERNEL.get()
    if kind != "snntorch":
        alpha = neuron.alpha.clamp(0, 1) if isinstance(neuron, snn.Synaptic) else None
        return ZeroResetLIF.apply(current, alpha, neuron.beta.clamp(0, 1), neuron.threshold, kind == "compiled")
    state = initial_state(neuron, current[0])
    spikes = []
    for cur_t in current:
        spk, state = step(neuron, cur_t, state)
        spikes.append(spk)
    return torch.stack(spikes)


def over_time(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a stateless module to every time step at once by folding T into the batch.

    An input that is constant in time by construction (a direct-encoded current, ``expand``-ed over T with
    stride 0) is passed through once and expanded again: the stem's convolution then costs one ANN pass,
    forward and backward, instead of T. BatchNorm sees each sample once instead of T identical times,
    which leaves its batch statistics unchanged.
    """
    T, B = x.shape[:2]
    if T > 1 and x.stride(0) == 0:
        y = module(x[0])
        return y.unsqueeze(0).expand(T, *y.shape)
    y = module(x.reshape(T * B, *x.shape[2:]))
    return y.reshape(T, B, *y.shape[1:])


class SpikingStage(nn.Module):
    """synapse -> neurons. ``synapse`` is a Sequential of Linear, Conv2d, BatchNorm2d, AvgPool2d, Flatten."""

    def __init__(self, synapse: nn.Sequential, neuron: nn.Module):
        super().__init__()
        self.synapse, self.neuron = synapse, neuron

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_neurons(self.neuron, over_time(self.synapse, x))


class ResidualBlock(nn.Module):
    """Spiking BasicBlock: s1 = LIF(conv1(x)); s2 = LIF(conv2(s1) + shortcut(x)).

    The sum is a merge of two synaptic paths into the same neurons, which NIR and Lava express directly.
    """

    def __init__(self, first: SpikingStage, second: SpikingStage, shortcut: nn.Sequential):
        super().__init__()
        self.first, self.second, self.shortcut = first, second, shortcut

    def forward(self, x: torch.Tensor, record: dict | None = None, prefix: str = "") -> torch.Tensor:
        s1 = self.first(x)
        current = over_time(self.second.synapse, s1) + over_time(self.shortcut, x)
        s2 = run_neurons(self.second.neuron, current)
        if record is not None:
            record[f"{prefix}.first"], record[f"{prefix}.second"] = s1, s2
        return s2


class Branch(nn.Module):
    """One modality's encoder: a chain of spiking stages and residual blocks."""

    def __init__(self, blocks: list[nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, record: dict | None = None, prefix: str = "") -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            name = f"{prefix}.{i}"
            if isinstance(block, ResidualBlock):
                x = block(x, record, name)
            else:
                x = block(x)
                if record is not None:
                    record[name] = x
        return x


class Fusion(nn.Module):
    """Merge the two modalities' spikes into the fusion neurons.

    concat: I = g_a * W_a s_a + g_v * W_v s_v + b
    sum:    I = W (g_a * P_a s_a + g_v * P_v s_v) + b  with P_m the modality's (pooling/flatten) readout
    film:   I = (W_g s_a) * (W_v s_v) + W_b s_a + b     (not deployable)
    gated:  z = sigmoid(W_z [s_a; s_v]); I = z * W_a s_a + (1 - z) * W_v s_v + b   (not deployable)

    ``gain`` holds (g_a, g_v): the fusion weighting that export folds into each projection's weights.
    ``gate`` (``gate.FusionGate``, concat/sum only): spiking relays z_m replace the features x_m above, gated per
    sample by the modalities' spiking confidences; None: the static gains alone.
    """

    def __init__(self, kind: str, readouts: dict[str, nn.Sequential], in_dims: dict[str, int], out_dim: int,
                 neuron: nn.Module, gate: nn.Module | None = None):
        super().__init__()
        if kind not in FUSIONS:
            raise UserError(f"unknown fusion {kind!r}; set model.fusion to one of {', '.join(FUSIONS)}")
        if gate is not None and kind not in DEPLOYABLE_FUSIONS:
            raise UserError(f"a fusion gate needs an additive fusion, not {kind!r}; set model.fusion=concat or sum")
        self.kind = kind
        self.readouts = nn.ModuleDict(readouts)
        self.gate = gate
        a, v = (gate.width, gate.width) if gate is not None else (in_dims["audio"], in_dims["visual"])
        if kind == "sum" and a != v:
            raise UserError(f"sum fusion needs equal feature sizes, got audio {a} and visual {v}; "
                            "use model.fusion=concat")
        if kind == "sum":
            self.proj = nn.ModuleDict({"shared": nn.Linear(a, out_dim, bias=False)})
        elif kind == "film":
            self.proj = nn.ModuleDict({"gamma": nn.Linear(a, out_dim, bias=False),
                                       "shift": nn.Linear(a, out_dim, bias=False),
                                       "visual": nn.Linear(v, out_dim, bias=False)})
        else:
            self.proj = nn.ModuleDict({"audio": nn.Linear(a, out_dim, bias=False),
                                       "visual": nn.Linear(v, out_dim, bias=False)})
            if kind == "gated":
                self.proj["gate"] = nn.Linear(a + v, out_dim)
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.register_buffer("gain", torch.ones(2))
        self.neuron = neuron

    def current(self, s_a: torch.Tensor, s_v: torch.Tensor, record: dict | None = None) -> torch.Tensor:
        x_a, x_v = over_time(self.readouts["audio"], s_a), over_time(self.readouts["visual"], s_v)
        if self.gate is not None:
            x_a, x_v = self.gate(x_a, x_v, record)
        return self.mix(x_a, x_v)

    def mix(self, x_a: torch.Tensor, x_v: torch.Tensor) -> torch.Tensor:
        """The fusion current from the two modalities' features (or, gated, their relays' spikes)."""
        g_a, g_v = self.gain[0], self.gain[1]
        p = self.proj
        if self.kind == "concat":
            return g_a * p["audio"](x_a) + g_v * p["visual"](x_v) + self.bias
        if self.kind == "sum":
            return p["shared"](g_a * x_a + g_v * x_v) + self.bias
        if self.kind == "film":
            return p["gamma"](x_a) * p["visual"](x_v) + p["shift"](x_a) + self.bias
        z = torch.sigmoid(p["gate"](torch.cat([x_a, x_v], dim=-1)))
        return z * p["audio"](x_a) + (1 - z) * p["visual"](x_v) + self.bias

    def forward(self, s_a: torch.Tensor, s_v: torch.Tensor, record: dict | None = None) -> torch.Tensor:
        return run_neurons(self.neuron, self.current(s_a, s_v, record))

    def gate_neurons(self) -> dict[str, nn.Module]:
        """The gate's populations by layer name (none without a gate)."""
        return {} if self.gate is None else self.gate.neurons()


@dataclass
class NetOutput:
    counts: torch.Tensor  # [B, classes] output spike counts over T: the prediction is their argmax
    aux_logits: dict[str, torch.Tensor]  # unimodal heads' logits (training signal only)
    fused_logits: torch.Tensor  # [B, classes] fused readout probe's logits (IEMF's fused score; never exported)
    spikes: dict[str, torch.Tensor] = field(default_factory=dict)  # layer -> [T, B, ...] when recorded
    features: dict[str, torch.Tensor] = field(default_factory=dict)  # modality -> encoder spikes [T, B, ...]

    @property
    def prediction(self) -> torch.Tensor:
        return self.counts.argmax(dim=-1)


class IEMFNet(nn.Module):
    """Two spiking encoders, a fusion layer and a spiking classifier, plus auxiliary unimodal heads.

    Inputs are already encoded spike trains / currents ``[T, B, *input_shape]`` (see ``encoding.py``),
    so the exact same tensors can be replayed through NIR and Lava.

    ``aux_detach``: when set, the auxiliary heads read detached encoder spikes, i.e. they become linear
    probes that measure each modality without training the encoders (baselines without auxiliary losses).
    ``fused_head``: a linear probe on the fusion layer's detached mean spike rate, the same form as the
    unimodal heads, so IEMF compares like with like (``training/iemf.py``); it trains only itself and is
    not part of the deployed network.
    ``quant_aware``: when set, the network runs in Loihi fixed point (``fixed_point.fixed_spikes``), the
    network that quantisation-aware training trains and Lava's fixed-point models run.
    """

    aux_detach: bool = False
    quant_aware: bool = False

    def __init__(self, branches: dict[str, Branch], fusion: Fusion, output: SpikingStage,
                 aux_heads: dict[str, nn.Sequential], fused_head: nn.Linear):
        super().__init__()
        self.branches = nn.ModuleDict(branches)
        self.fusion = fusion
        self.output = output
        self.aux_heads = nn.ModuleDict(aux_heads)
        self.fused_head = fused_head

    def forward(self, x_audio: torch.Tensor, x_visual: torch.Tensor, record: bool = False) -> NetOutput:
        if self.quant_aware:
            spikes = fixed_spikes(self, x_audio, x_visual)
            s_a, s_v = (spikes[f"{m}.{len(self.branches[m].blocks) - 1}"] for m in MODALITIES)
            s_f, s_o = spikes["fusion"], spikes["output"]
            spikes = spikes if record else None
        else:
            spikes = {} if record else None
            s_a = self.branches["audio"](x_audio, spikes, "audio")
            s_v = self.branches["visual"](x_visual, spikes, "visual")
            s_f = self.fusion(s_a, s_v, spikes)
            s_o = self.output(s_f)
            if spikes is not None:
                spikes["fusion"], spikes["output"] = s_f, s_o
        features = {"audio": s_a, "visual": s_v}
        aux = {m: self.aux_heads[m]((s.detach() if self.aux_detach else s).mean(dim=0)) for m, s in features.items()}
        fused = self.fused_head(s_f.detach().mean(dim=0))
        return NetOutput(counts=s_o.sum(dim=0), aux_logits=aux, fused_logits=fused, spikes=spikes or {},
                         features=features)

    def neurons(self) -> dict[str, nn.Module]:
        """Every neuron population by its layer name (the names used in recordings, NIR and reports)."""
        out: dict[str, nn.Module] = {}
        for m, branch in self.branches.items():
            for i, block in enumerate(branch.blocks):
                if isinstance(block, ResidualBlock):
                    out[f"{m}.{i}.first"], out[f"{m}.{i}.second"] = block.first.neuron, block.second.neuron
                else:
                    out[f"{m}.{i}"] = block.neuron
        out.update(self.fusion.gate_neurons())
        out["fusion"], out["output"] = self.fusion.neuron, self.output.neuron
        return out
