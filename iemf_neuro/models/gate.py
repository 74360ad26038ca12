"""A dynamic, per-sample fusion gate built only from what NIR and Loihi express: LIF populations, Linear/Affine
synapses and inhibitory (negative) weights.

A multiplicative gate ``z * W s`` (Fusion kind ``gated``) has no NIR form. Here each modality's confidence is read
by a spiking population, gate populations driven by those readouts inhibit a relay per modality, and the relays'
spikes replace the modality's features as the fusion layer's input: a silent gate passes its modality, a firing
one holds the relay below threshold. Per modality m (o: the other one), with C classes, P = ``GATE_NEURONS``,
D = fusion_dim::

    x_m                                            the modality's features (branch spikes after Fusion.readouts)
    r_m = LIF(H_m x_m + h_m)                       confidence, C neurons; H_m, h_m: the aux head's Linear (shared,
                                                   so the auxiliary loss trains it to classify the modality)
    full:     q_m = LIF(U_ma r_a + U_mv r_v + c_m)  P gate neurons per modality, reading both confidences
    relative: q_m = LIF(U_m (r_o - r_m) + c_m)      driven only by the difference of the confidences
    common:   q   = LIF(U_a r_a + U_v r_v + c)      one gate pool acting on both modalities
    z_m = LIF(W_m x_m + b_m - |K_m| q_m)           relay, D neurons, inhibited by its gate (full, relative)
    z_m = LIF(W_m x_m + b_m + K_m q)               common: signed, so a gate that fires when both are weak can
                                                   raise both modalities' drive
    fusion: I = g_a V_a z_a + g_v V_v z_v + b      Fusion's own formula, the relays in place of the features

Every population reads earlier populations' whole spike trains (a DAG, no same-step cycle), like the rest of the
network; Lava's per-hop latency is equalised by the converter's delay lines (x_m reaches z_m 2 steps later).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from iemf_neuro.errors import UserError

from .config import GATES
from .network import MODALITIES, run_neurons
from .neurons import NeuronConfig, make_neuron

GATE_NEURONS = 8  # P: neurons of one gate pool


@dataclass
class GateInput:
    """One synapse into a gate population: ``weight @ spikes[source]``, the sign included."""

    source: str  # "audio"/"visual": that modality's features x_m; else a gate population's layer name
    weight: torch.Tensor  # [out, in]: what the forward, the NIR export and fixed point all use


@dataclass
class GateLayer:
    """A gate population and its synapses; the bias rides on the first synapse, as the exporter writes it."""

    neuron: nn.Module
    inputs: list[GateInput]
    bias: torch.Tensor

    def current(self, spikes: dict[str, torch.Tensor]) -> torch.Tensor:
        """Summed in edge order, exactly as the NIR executor sums them (Affine first, then each Linear)."""
        total = F.linear(spikes[self.inputs[0].source], self.inputs[0].weight, self.bias)
        for inp in self.inputs[1:]:
            total = total + F.linear(spikes[inp.source], inp.weight)
        return total


class FusionGate(nn.Module):
    """Confidence, gate and relay populations between the encoders and the fusion layer (module docstring)."""

    def __init__(self, kind: str, heads: dict[str, nn.Linear], in_dims: dict[str, int], width: int,
                 neuron: NeuronConfig):
        super().__init__()
        if kind not in GATES[1:]:
            raise UserError(f"unknown fusion gate {kind!r}; set model.gate to one of {', '.join(GATES)}")
        self.kind, self.width = kind, width
        classes = heads["audio"].out_features
        pools = ("common",) if kind == "common" else MODALITIES
        self.confidence = nn.ModuleDict(heads)
        self.drive = nn.ModuleDict({g: nn.Linear(classes * (1 if kind == "relative" else 2), GATE_NEURONS)
                                    for g in pools})
        self.relay = nn.ModuleDict({m: nn.Linear(in_dims[m], width) for m in MODALITIES})
        # K_m [D, P] starts at 0.3, away from 0 where abs() has no gradient: a gate spike takes 0.3 off every relay
        self.inhibit = nn.ParameterDict({m: nn.Parameter(torch.full((width, GATE_NEURONS), 0.3)) for m in MODALITIES})
        self.cells = nn.ModuleDict({
            "confidence": nn.ModuleDict({m: make_neuron(neuron, (classes,)) for m in MODALITIES}),
            "gate": nn.ModuleDict({g: make_neuron(neuron, (GATE_NEURONS,)) for g in pools}),
            "relay": nn.ModuleDict({m: make_neuron(neuron, (width,)) for m in MODALITIES})})

    def layers(self) -> dict[str, GateLayer]:
        """The gate's populations by layer name, in forward (topological) order."""
        out = {}
        for m, head in self.confidence.items():
            out[f"fusion.confidence.{m}"] = GateLayer(self.cells["confidence"][m], [GateInput(m, head.weight)],
                                                      head.bias)
        for g, drive in self.drive.items():
            if self.kind == "relative":
                other = MODALITIES[1 - MODALITIES.index(g)]
                inputs = [GateInput(f"fusion.confidence.{g}", -drive.weight),
                          GateInput(f"fusion.confidence.{other}", drive.weight)]
            else:
                inputs = [GateInput(f"fusion.confidence.{m}", w) for m, w in zip(MODALITIES, drive.weight.chunk(2, 1))]
            out[f"fusion.gate.{g}"] = GateLayer(self.cells["gate"][g], inputs, drive.bias)
        for m, relay in self.relay.items():
            k = self.inhibit[m]
            gate = GateInput("fusion.gate.common", k) if self.kind == "common" else GateInput(f"fusion.gate.{m}",
                                                                                              -k.abs())
            out[f"fusion.relay.{m}"] = GateLayer(self.cells["relay"][m], [GateInput(m, relay.weight), gate],
                                                 relay.bias)
        return out

    def neurons(self) -> dict[str, nn.Module]:
        return {name: layer.neuron for name, layer in self.layers().items()}

    def forward(self, x_a: torch.Tensor, x_v: torch.Tensor,
                record: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Features [T, B, n_m] -> the relays' spikes [T, B, D]; every population's spikes go into ``record``."""
        spikes = {"audio": x_a, "visual": x_v}
        for name, layer in self.layers().items():
            spikes[name] = run_neurons(layer.neuron, layer.current(spikes))
            if record is not None:
                record[name] = spikes[name]
        return spikes["fusion.relay.audio"], spikes["fusion.relay.visual"]


def build_gate(kind: str, heads: dict[str, nn.Sequential], in_dims: dict[str, int], width: int,
               neuron: NeuronConfig) -> FusionGate | None:
    """The gate ``model.gate`` asks for (None for "none"), its confidence readouts the aux heads' last Linear."""
    if kind == "none":
        return None
    return FusionGate(kind, {m: heads[m][-1] for m in MODALITIES}, in_dims, width, neuron)
