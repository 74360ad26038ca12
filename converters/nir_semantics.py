"""NIR neuron nodes -> discrete-time parameters at a step dt: the one place that defines the discretisation.

NIR is continuous-time and stores neither dt nor the reset rule. Everything that simulates a NIR graph here
(the reference executor, the Lava builder, the fixed-point quantiser) takes its per-step parameters from
``discretize`` so that they cannot disagree. Forward Euler at step dt, current first::

    u[t] = alpha * u[t-1] + in_gain * I[t]      (no current state, i.e. alpha = 0: u[t] = in_gain * I[t])
    v[t] = (beta * v[t-1] + u[t]) + leak
    s[t] = v[t] > threshold;  v[t] <- v_reset where s[t]      (reset in the same step)

with, per NIR node type (tau = tau_mem for the Cuba kinds)::

    LIF, LI:         alpha = 0,              beta = 1 - dt/tau, in_gain = r dt/tau,                  leak = v_leak dt/tau
    CubaLIF, CubaLI: alpha = 1 - dt/tau_syn, beta = 1 - dt/tau, in_gain = (w_in dt/tau_syn)(r dt/tau), same leak
    IF:              alpha = 0,              beta = 1,          in_gain = r dt,                       leak = 0

For the Cuba kinds NIR scales the input into the current (w_in dt/tau_syn) and the current into the
membrane (r dt/tau); both are linear, so their product is applied once, at the input: a Lava LIF
(u <- u(1-du) + a_in; v <- v(1-dv) + u + bias) then takes in_gain into its weights unchanged.

The exporter's convention (``docs/nir.md``) is dt = 1, tau = dt/(1-beta), r = tau/dt, w_in = tau_syn/dt,
v_leak = 0, v_reset = 0: with decays 1 - 2**-k every value above is exact and in_gain == 1.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import nir
import numpy as np

from iemf_neuro.errors import UserError

METADATA_KEY = "iemf_neuro"  # graph metadata entry holding our JSON record (see docs/nir.md)
RESETS = ("zero",)  # v <- v_reset in the step of the spike; the only rule NIR's equations describe


@dataclass(frozen=True)
class NeuronKind:
    """A NIR neuron type as discretised here: its kind name and the fields it must carry."""

    kind: str
    fields: tuple[str, ...]


NEURON_KINDS = {nir.LIF: NeuronKind("lif", ("tau", "r", "v_leak", "v_threshold", "v_reset")),
                nir.CubaLIF: NeuronKind("cuba", ("tau_mem", "tau_syn", "r", "v_leak", "v_threshold", "v_reset",
                                                  "w_in")),
                nir.IF: NeuronKind("if", ("r", "v_threshold", "v_reset")),
                nir.LI: NeuronKind("li", ("tau", "r", "v_leak")),
                nir.CubaLI: NeuronKind("cubali", ("tau_mem", "tau_syn", "r", "v_leak", "w_in"))}
NEURON_TYPES = tuple(NEURON_KINDS)


@dataclass(frozen=True)
class DiscreteNeuron:
    """Per-step parameters of one neuron population; every array has the population's shape."""

    kind: str  # "lif" | "cuba" | "if" | "li" | "cubali"
    alpha: np.ndarray  # current decay per step (0 where there is no current state)
    beta: np.ndarray  # membrane decay per step (1 for IF)
    in_gain: np.ndarray  # synaptic input -> current gain
    leak: np.ndarray  # added to v every step
    threshold: np.ndarray | None  # None: non-spiking (LI, CubaLI), the output is v
    v_reset: np.ndarray | None  # v after a spike (None when non-spiking)

    @property
    def spiking(self) -> bool:
        return self.threshold is not None

    @property
    def has_current(self) -> bool:
        return self.kind in ("cuba", "cubali")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.beta.shape)


def is_neuron(node: nir.NIRNode) -> bool:
    return isinstance(node, NEURON_TYPES)


def _param(node: nir.NIRNode, name: str, what: str) -> np.ndarray:
    value = np.asarray(getattr(node, name), dtype=np.float64)
    if not np.all(np.isfinite(value)):
        raise UserError(f"{what}: parameter {name} has NaN/inf values; export finite parameters")
    return value


def _decay(tau: np.ndarray, dt: float, what: str, name: str) -> np.ndarray:
    if np.any(tau <= 0):
        raise UserError(f"{what}: {name} must be positive; fix the node's time constants")
    if np.any(tau < dt):
        raise UserError(f"{what}: {name}={tau.min()} is below dt={dt}, so forward Euler would give a "
                        f"negative decay; simulate with dt <= {tau.min()}")
    return 1.0 - dt / tau


def discretize(node: nir.NIRNode, dt: float, name: str = "node") -> DiscreteNeuron:
    """The per-step parameters of a NIR neuron node at step ``dt`` (equations in the module docstring)."""
    what = f"neuron node {name!r} ({type(node).__name__})"
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise UserError(f"dt={dt!r} is not a positive number; pass a positive time step")
    if not is_neuron(node):
        raise UserError(f"node {name!r} of type {type(node).__name__} is not a neuron; "
                        f"neuron types are {', '.join(t.__name__ for t in NEURON_TYPES)}")
    if isinstance(node, nir.IF):
        r = _param(node, "r", what)
        beta, in_gain, leak = np.ones_like(r), r * dt, np.zeros_like(r)
        alpha = np.zeros_like(r)
    else:
        tau = _param(node, "tau_mem" if isinstance(node, (nir.CubaLIF, nir.CubaLI)) else "tau", what)
        r, v_leak = _param(node, "r", what), _param(node, "v_leak", what)
        beta = _decay(tau, dt, what, "tau")
        in_gain, leak = r * dt / tau, v_leak * dt / tau
        alpha = np.zeros_like(tau)
        if isinstance(node, (nir.CubaLIF, nir.CubaLI)):
            tau_syn = _param(node, "tau_syn", what)
            alpha = _decay(tau_syn, dt, what, "tau_syn")
            in_gain = (_param(node, "w_in", what) * dt / tau_syn) * in_gain
    threshold = v_reset = None
    if isinstance(node, (nir.LIF, nir.CubaLIF, nir.IF)):
        threshold, v_reset = _param(node, "v_threshold", what), _param(node, "v_reset", what)
    shapes = {a.shape for a in (alpha, beta, in_gain, leak) + ((threshold, v_reset) if threshold is not None else ())}
    if len(shapes) != 1:
        raise UserError(f"{what}: parameters have different shapes {sorted(shapes)}; give every parameter "
                        "one value per neuron")
    return DiscreteNeuron(NEURON_KINDS[type(node)].kind, alpha, beta, in_gain, leak, threshold, v_reset)


def graph_metadata(graph: nir.NIRGraph) -> dict[str, Any]:
    """Our metadata record of a graph (``{}`` for graphs written by other tools), with ``dt`` and ``reset``."""
    meta = graph.metadata if isinstance(graph.metadata, dict) else {}
    record: dict[str, Any] = {}
    if METADATA_KEY in meta:
        text = meta[METADATA_KEY]
        text = text.decode() if isinstance(text, bytes) else str(text)
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"graph metadata {METADATA_KEY!r} is not valid JSON ({exc.msg}); re-export the "
                            "model with `iemf-neuro export`") from exc
    for key in ("dt", "reset"):
        if key in meta:
            value = meta[key]
            value = value.decode() if isinstance(value, bytes) else value
            record[key] = float(value) if key == "dt" else str(value)
    return record


def graph_dt(graph: nir.NIRGraph, override: float | None = None) -> float:
    """The simulation step: ``override`` if given, else the ``dt`` recorded in the graph's metadata."""
    if override is not None:
        dt = override
    else:
        dt = graph_metadata(graph).get("dt")
        if dt is None:
            raise UserError("the NIR graph records no dt (not exported by iemf-neuro); pass dt explicitly "
                            "(e.g. the step its exporter assumed)")
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise UserError(f"dt={dt!r} is not a positive number; pass a positive time step")
    return float(dt)


def graph_reset(graph: nir.NIRGraph) -> str:
    """The reset rule recorded in the metadata ("zero" when absent: NIR's own v <- v_reset)."""
    reset = graph_metadata(graph).get("reset", "zero")
    if reset not in RESETS:
        raise UserError(f"graph reset semantics {reset!r} are not supported; supported: {', '.join(RESETS)} "
                        "(re-export with reset-to-v_reset neurons)")
    return reset
