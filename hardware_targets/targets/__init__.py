"""Hardware targets: every cost constant with its value, unit, citation and kind.

A target is a small TOML file (this folder: ``loihi1``, ``loihi2``, ``truenorth``, ``ann_gpu``; users pass
their own with ``--target-file``). Each constant is a table::

    [constants.e_synop_j]
    value = 23.6e-12          # SI units: joules, seconds, watts, counts
    kind = "pre-silicon"      # measured | measured-board | pre-silicon | borrowed | calibrated | arithmetic-only | spec | assumption
    citation = "Davies et al. 2018, IEEE Micro 38(1), Table 2"

and every report prints the kind beside the figure, so a borrowed or pre-silicon number is never read as a
measurement. A user file may set ``base = "loihi2"`` to override only some constants of a built-in target.
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
ALIASES = {"ann-gpu": "ann_gpu"}

# What each cost model reads; (name, description). Optional constants may be absent.
NEUROMORPHIC_REQUIRED = {
    "e_synop_j": "energy per binary synaptic op (J)",
    "e_graded_synop_j": "energy per graded (multiply-accumulate) synaptic op (J)",
    "e_update_active_j": "energy per active neuron update (J)",
    "e_update_inactive_j": "energy per inactive neuron update (J)",
    "e_spike_j": "energy per spike message (J)",
    "static_power_w": "static power per chip (W)",
    "cores_per_chip": "neuro cores per chip",
    "neurons_per_core": "neurons (compartments) per core",
    "synapses_per_core": "synapses per core (synaptic memory)",
}
NEUROMORPHIC_OPTIONAL = {
    "t_synop_s": "time per synaptic op (s)",
    "t_update_active_s": "time per active neuron update (s)",
    "t_update_inactive_s": "time per inactive neuron update (s)",
    "t_spike_s": "time per spike message (s)",
    "t_barrier_1core_s": "barrier sync over 1 core (s)",
    "t_barrier_32cores_s": "barrier sync over 32 cores (s)",
    "t_step_s": "fixed time per step (s): a clocked tick instead of the per-op time model",
    "max_fan_in": "largest fan-in (synapses into one neuron)",
}
ANN_REQUIRED = {"e_mac_j": "energy per multiply-accumulate (J)"}
COUNT_CONSTANTS = ("cores_per_chip", "neurons_per_core", "synapses_per_core", "max_fan_in")


@dataclass(frozen=True)
class Constant:
    """One number a cost model uses, and where it comes from."""

    value: float  # SI units (J, s, W) or a count
    kind: str  # one of KINDS
    citation: str  # source, table, conditions

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class Target:
    """A hardware target: a cost model (``neuromorphic`` or ``ann``) and its constants."""

    name: str  # identifier used on the command line, e.g. "loihi2"
    title: str  # human name
    model: str  # "neuromorphic" | "ann"
    description: str  # one paragraph: what is and is not modelled
    constants: dict[str, Constant] = field(default_factory=dict)
    source: str = "built-in"  # file it was read from

    def value(self, key: str) -> float | None:
        c = self.constants.get(key)
        return None if c is None else c.value

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
    unknown = set(raw) - {"value", "kind", "citation"}
    missing = {"value", "kind", "citation"} - set(raw)
    if unknown or missing:
        raise UserError(f"{where}: constant {key!r} needs exactly value, kind, citation "
                        f"(missing {sorted(missing)}, unknown {sorted(unknown)})")
    value = raw["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise UserError(f"{where}: constant {key!r} value {value!r} must be a finite number >= 0")
    if key in COUNT_CONSTANTS and (value < 1 or int(value) != value):
        raise UserError(f"{where}: constant {key!r} value {value!r} must be a whole number >= 1")
    if raw["kind"] not in KINDS:
        raise UserError(f"{where}: constant {key!r} kind {raw['kind']!r} is not one of {', '.join(KINDS)}")
    if not isinstance(raw["citation"], str) or not raw["citation"].strip():
        raise UserError(f"{where}: constant {key!r} needs a non-empty citation string (say where it comes from)")
    return Constant(float(value), raw["kind"], raw["citation"].strip())


def target_from_dict(data: dict[str, Any], where: str = "target") -> Target:
    """Validate a parsed target file; a ``base`` key starts from that built-in target and overrides it."""
    known = {"name", "title", "model", "description", "constants", "base"}
    unknown = set(data) - known
    if unknown:
        raise UserError(f"{where}: unknown keys {sorted(unknown)}; valid keys: {sorted(known)}")
    base = load_target(data["base"]) if "base" in data else None
    raw_constants = data.get("constants", {})
    if not isinstance(raw_constants, dict):
        raise UserError(f"{where}: 'constants' must be a table of tables")
    constants = dict(base.constants) if base else {}
    constants.update({k: _constant(where, k, v) for k, v in raw_constants.items()})
    fields_ = {k: data.get(k, getattr(base, k) if base else None) for k in ("name", "title", "model", "description")}
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
        timing = ("t_synop_s", "t_update_active_s", "t_update_inactive_s", "t_spike_s", "t_barrier_1core_s",
                  "t_barrier_32cores_s")
        absent = [k for k in timing if k not in constants]
        if absent:
            raise UserError(f"{where}: latency needs either t_step_s or all of {list(timing)} (missing {absent})")
    return Target(name=fields_["name"], title=fields_["title"] or fields_["name"], model=fields_["model"],
                  description=fields_["description"] or "", constants=constants, source=where)


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
