"""Hardware targets: every cost constant with its value, unit, citation and kind.

A target is a small TOML file (this folder: ``loihi1``, ``loihi2``, ``truenorth``, ``ann_gpu``; users pass
their own with ``--target-file``). Each constant is a table::

    [constants.e_synop_j]
    value = 23.6e-12          # SI units: joules, seconds, watts, bits, counts (the nominal value)
    low = 23.6e-12            # optional range (default: value); a published minimum stays the low end
    high = 47e-12
    kind = "pre-silicon"      # measured | measured-board | pre-silicon | borrowed | calibrated | arithmetic-only | spec | assumption
    citation = "Davies et al. 2018, IEEE Micro 38(1), Table 2"

and every report prints the kind beside the figure, so a borrowed or pre-silicon number is never read as a
measurement. Structural limits (cores, neurons, memory, axons, storage formats) are exact: they take no range.
Every energy and time is non-decreasing in every constant that takes a range (per-op energies and times,
static power, barrier times), so evaluating the model with all of them at ``low`` (``high``) gives the low
(high) end of every figure. A user file may set ``base = "loihi2"`` to override only some constants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from iemf_neuro.errors import UserError

HERE = Path(__file__).resolve().parent
KINDS = ("measured", "measured-board", "pre-silicon", "borrowed", "calibrated", "arithmetic-only", "spec",
         "assumption")
MODELS = ("neuromorphic", "ann")
PARTITIONERS = ("minimal", "power-of-two")  # how a layer is split over cores (see mapping.py)
ALIASES = {"ann-gpu": "ann_gpu"}

# What each cost model reads; (name, description). Optional constants may be absent.
NEUROMORPHIC_REQUIRED = {
    "e_synop_j": "energy per binary synaptic op (J)",
    "e_graded_synop_j": "energy per graded (multiply-accumulate) synaptic op (J)",
    "e_update_active_j": "energy per active neuron update (J)",
    "e_update_inactive_j": "energy per inactive neuron update (J)",
    "e_spike_j": "energy per spike message (J)",
    "static_power_w": "static (idle) power per chip (W)",
    "cores_per_chip": "neuro cores per chip",
    "cores_per_tile": "cores sharing one mesh router (barrier time grows with tiles)",
    "neurons_per_core": "neurons (compartments) per core",
    "synaptic_memory_bits": "synaptic memory per core (bits)",
    "dense_synapse_bits": "bits of synaptic memory one stored synapse takes at the chip's weight precision",
    "conv_weight_bits": "bits per shared convolution kernel weight; 0 = the chip stores every synapse",
    "axon_header_bits": "synaptic memory per input axon per core (bits)",
    "max_input_axons": "distinct source neurons one core can receive from",
    "max_output_axons": "(neuron, destination core) routes one core can send",
}
NEUROMORPHIC_OPTIONAL = {
    "t_synop_s": "time per synaptic op (s)",
    "t_update_active_s": "time per active neuron update (s)",
    "t_update_inactive_s": "time per inactive neuron update (s)",
    "t_spike_s": "time per spike message (s)",
    "t_barrier_1tile_s": "barrier sync over 1 tile (s)",
    "t_barrier_32tiles_s": "barrier sync over 32 tiles (s)",
    "t_step_s": "fixed time per step (s): a clocked tick instead of the per-op time model",
}
TIMING = ("t_synop_s", "t_update_active_s", "t_update_inactive_s", "t_spike_s", "t_barrier_1tile_s",
          "t_barrier_32tiles_s")
ANN_REQUIRED = {
    "e_mac_j": "energy per multiply-accumulate in the datapath (J)",
    "e_add_j": "energy per add (pooling) in the datapath (J)",
    "e_weight_read_j": "energy to read one weight from on-chip memory, once per inference (J)",
    "platform_idle_power_w": "idle power of the platform that runs the ANN (W)",
    "platform_dynamic_power_w": "power above idle while it runs one inference (W)",
    "platform_overhead_s": "fixed time per batch-1 inference (launch, transfers) (s)",
    "platform_s_per_mac": "time per multiply-accumulate at batch 1 (s)",
}
COUNT_CONSTANTS = ("cores_per_chip", "cores_per_tile", "neurons_per_core", "synaptic_memory_bits",
                   "max_input_axons", "max_output_axons")  # whole numbers, no range
FORMAT_CONSTANTS = ("dense_synapse_bits", "conv_weight_bits", "axon_header_bits")  # no range: the mapper reads value
NO_RANGE = COUNT_CONSTANTS + FORMAT_CONSTANTS


@dataclass(frozen=True)
class Constant:
    """One number a cost model uses, its range, and where it comes from."""

    value: float  # nominal, SI units (J, s, W), bits or a count
    kind: str  # one of KINDS
    citation: str  # source, table, conditions
    low: float | None = None  # low end of the range (None: = value)
    high: float | None = None  # high end of the range (None: = value)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        object.__setattr__(self, "low", self.value if self.low is None else self.low)
        object.__setattr__(self, "high", self.value if self.high is None else self.high)
        if not self.low <= self.value <= self.high:
            raise ValueError(f"range {self.low} <= {self.value} <= {self.high} is out of order")

    def at(self, end: str) -> float:
        """The value at one end of the range: "low", "nominal" or "high"."""
        return {"low": self.low, "nominal": self.value, "high": self.high}[end]


@dataclass(frozen=True)
class Target:
    """A hardware target: a cost model (``neuromorphic`` or ``ann``) and its constants."""

    name: str  # identifier used on the command line, e.g. "loihi2"
    title: str  # human name
    model: str  # "neuromorphic" | "ann"
    description: str  # one paragraph: what is and is not modelled
    constants: dict[str, Constant] = field(default_factory=dict)
    partitioner: str = "minimal"  # minimal | power-of-two (Lava's Loihi 2 tiling)
    source: str = "built-in"  # file it was read from

    def value(self, key: str) -> float | None:
        c = self.constants.get(key)
        return None if c is None else c.value

    def at(self, end: str, only: str | None = None) -> "Target":
        """This target with every constant (or only ``only``) at the ``end`` of its range."""
        moved = {k: replace(c, value=c.at(end)) if only in (None, k) else c for k, c in self.constants.items()}
        return replace(self, constants=moved)

    def ranged(self) -> list[str]:
        """Constants whose range is not a single point."""
        return [k for k, c in self.constants.items() if c.low != c.high]

    def kinds(self) -> list[str]:
        """The distinct kinds of constants used, in KINDS order (printed in every report)."""
        used = {c.kind for c in self.constants.values()}
        return [k for k in KINDS if k in used]


def builtin_names() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.toml"))


def _read(path: Path) -> dict[str, Any]:
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            import tomli

            return tomli.loads(text)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
            if not isinstance(data, dict):
                raise UserError(f"{path} must hold a mapping at top level; see docs/energy.md for the format")
            return data
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - tomli/yaml raise their own types; both mean the same here
        raise UserError(f"{path} is not valid {path.suffix[1:].upper()} ({str(exc).splitlines()[0]}); "
                        "fix the syntax (see docs/energy.md for a target file)") from exc
    raise UserError(f"target file {path} must end in .toml, .yaml or .yml")


def _constant(where: str, key: str, raw: Any) -> Constant:
    if not isinstance(raw, dict):
        raise UserError(f"{where}: constant {key!r} must be a table with value, kind and citation")
    unknown = set(raw) - {"value", "kind", "citation", "low", "high"}
    missing = {"value", "kind", "citation"} - set(raw)
    if unknown or missing:
        raise UserError(f"{where}: constant {key!r} needs exactly value, kind, citation and optionally low, high "
                        f"(missing {sorted(missing)}, unknown {sorted(unknown)})")
    numbers = {f: raw[f] for f in ("value", "low", "high") if f in raw}
    for field_, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise UserError(f"{where}: constant {key!r} {field_} {value!r} must be a finite number >= 0")
    value = numbers["value"]
    if key in COUNT_CONSTANTS and (value < 1 or int(value) != value):
        raise UserError(f"{where}: constant {key!r} value {value!r} must be a whole number >= 1")
    if key in NO_RANGE and len(numbers) > 1:
        raise UserError(f"{where}: constant {key!r} is a structural limit and takes no low/high; remove them")
    low, high = numbers.get("low", value), numbers.get("high", value)
    if not low <= value <= high:
        raise UserError(f"{where}: constant {key!r} needs low <= value <= high (got {low}, {value}, {high})")
    if raw["kind"] not in KINDS:
        raise UserError(f"{where}: constant {key!r} kind {raw['kind']!r} is not one of {', '.join(KINDS)}")
    if not isinstance(raw["citation"], str) or not raw["citation"].strip():
        raise UserError(f"{where}: constant {key!r} needs a non-empty citation string (say where it comes from)")
    return Constant(float(value), raw["kind"], raw["citation"].strip(), float(low), float(high))


def target_from_dict(data: dict[str, Any], where: str = "target") -> Target:
    """Validate a parsed target file; a ``base`` key starts from that built-in target and overrides it."""
    known = {"name", "title", "model", "description", "constants", "base", "partitioner"}
    unknown = set(data) - known
    if unknown:
        raise UserError(f"{where}: unknown keys {sorted(unknown)}; valid keys: {sorted(known)}")
    base = load_target(data["base"]) if "base" in data else None
    raw_constants = data.get("constants", {})
    if not isinstance(raw_constants, dict):
        raise UserError(f"{where}: 'constants' must be a table of tables")
    constants = dict(base.constants) if base else {}
    constants.update({k: _constant(where, k, v) for k, v in raw_constants.items()})
    fields_ = {k: data.get(k, getattr(base, k) if base else None)
               for k in ("name", "title", "model", "description", "partitioner")}
    if fields_["partitioner"] not in (None, *PARTITIONERS):
        raise UserError(f"{where}: partitioner {fields_['partitioner']!r} is not one of {', '.join(PARTITIONERS)}")
    for key in ("name", "model"):
        if not isinstance(fields_[key], str) or not fields_[key]:
            raise UserError(f"{where}: missing {key!r}; add e.g. name = \"mychip\" and model = \"neuromorphic\"")
    if fields_["model"] not in MODELS:
        raise UserError(f"{where}: model {fields_['model']!r} is not one of {', '.join(MODELS)}")
    required = NEUROMORPHIC_REQUIRED if fields_["model"] == "neuromorphic" else ANN_REQUIRED
    allowed = {**required, **(NEUROMORPHIC_OPTIONAL if fields_["model"] == "neuromorphic" else {})}
    missing = sorted(set(required) - set(constants))
    if missing:
        raise UserError(f"{where}: missing constants {missing}; a {fields_['model']} target needs "
                        f"{sorted(required)} (see docs/energy.md)")
    extra = sorted(set(constants) - set(allowed))
    if extra:
        raise UserError(f"{where}: unknown constants {extra}; a {fields_['model']} target accepts {sorted(allowed)}")
    if fields_["model"] == "neuromorphic" and "t_step_s" not in constants:
        absent = [k for k in TIMING if k not in constants]
        if absent:
            raise UserError(f"{where}: latency needs either t_step_s or all of {list(TIMING)} (missing {absent})")
    return Target(name=fields_["name"], title=fields_["title"] or fields_["name"], model=fields_["model"],
                  description=fields_["description"] or "", constants=constants,
                  partitioner=fields_["partitioner"] or "minimal", source=where)


def load_target(name_or_path: str | Path) -> Target:
    """A built-in target by name (``loihi1``, ``loihi2``, ``truenorth``, ``ann-gpu``) or a TOML/YAML file."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in (".toml", ".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise UserError(f"target file {path} does not exist; pass an existing .toml/.yaml file")
        return target_from_dict(_read(path), where=str(path))
    stem = ALIASES.get(text, text)
    builtin = HERE / f"{stem}.toml"
    if not builtin.is_file():
        names = ", ".join(n.replace("_", "-") for n in builtin_names())
        raise UserError(f"unknown target {text!r}; choose one of {names} or pass a .toml/.yaml file")
    target = target_from_dict(_read(builtin), where=f"built-in target {stem}")
    return replace(target, source="built-in")
