"""energy.json, report.md and a self-contained report.html (plots embedded as base64 PNG), plus a printed table.

Every string that comes from a file or a config (target titles, citations, layer names, notes) is escaped
with ``html.escape`` before it reaches the HTML. Files are written atomically.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from converters.nir_io import read_graph
from converters.nir_semantics import graph_metadata
from iemf_neuro.errors import UserError
from iemf_neuro.provenance import to_jsonable, write_json_atomic, write_text_atomic
from iemf_neuro.sweep_plot import draw_sweep, read_sweep

from .counting import GraphCounts
from .energy import EnergyReport, Range, Stat
from .mapping import Mapping

RASTER_NEURONS = 64  # neurons per layer drawn in the raster


PREFIXES = ((1e-12, "p"), (1e-9, "n"), (1e-6, "µ"), (1e-3, "m"), (1.0, ""))


def human(value: float | None, unit: str) -> str:
    """``2.37e-4`` J -> ``237 µJ``; ``0.0106`` s -> ``10.6 ms``; None -> 'not modelled'."""
    if value is None:
        return "not modelled"
    scale, prefix = next(((f, p) for f, p in reversed(PREFIXES) if abs(value) >= f), PREFIXES[0])
    return f"{value / scale:.3g} {prefix}{unit}"


def span(r: Range | None, unit: str) -> str:
    """A range as ``low–high unit (nominal x)``."""
    if r is None:
        return "not modelled"
    if r.low == r.high:
        return human(r.nominal, unit)
    return f"{human(r.low, unit)} – {human(r.high, unit)} (nominal {human(r.nominal, unit)})"


def fmt(stat: Stat | None, unit: str) -> str:
    """Mean ± std over samples in human units (a std at rounding level reads 0); 'not modelled' for None."""
    if stat is None:
        return "not modelled"
    std = stat.std if stat.std > 1e-9 * abs(stat.mean) else 0.0
    return f"{human(stat.mean, unit)} ± {human(std, unit) if std else 0}"


UNITS = {"_j": "J", "_s": "s", "_w": "W"}


def constant_value(key: str, value: float) -> str:
    """A constant in human units by its name's suffix (_j, _s, _w); counts and bits as whole numbers."""
    unit = next((u for suffix, u in UNITS.items() if key.endswith(suffix)), None)
    if unit:
        return human(value, unit)
    return f"{int(value):,}" if value == int(value) else f"{value:.4g}"


def _constant_rows(r: EnergyReport) -> list[list[str]]:
    return [[k, constant_value(k, c.value),
             "-" if c.low == c.high else f"{constant_value(k, c.low)} – {constant_value(k, c.high)}",
             c.kind, c.citation] for k, c in r.constants.items()]


def counts_summary(counts: GraphCounts) -> dict[str, Any]:
    """Per layer: mean ± std per sample of every count, the mean firing rate and the equivalent ANN's ops."""
    out: dict[str, Any] = {}
    for name, layer in counts.layers.items():
        row = {q: asdict(Stat.of(counts.per_sample(q, [name]))) for q in
               ("spikes", "acs", "macs", "synops", "active", "inactive", "dense_macs")}
        row.update(branch=layer.branch, node_type=layer.node_type, neurons=layer.neurons, synapses=layer.synapses,
                   max_fan_in=layer.max_fan_in, sources=layer.sources,
                   firing_rate=float(layer.spikes.mean() / max(layer.neurons, 1)),
                   per_step_synops=layer.synops.mean(axis=0).tolist(),
                   ann=asdict(counts.ann[name]) if name in counts.ann else None)
        out[name] = row
    return out


def _headline(r: EnergyReport, level: str) -> str:
    """A level's range in human units; 'does not fit' where `estimate` gave no figure (the network breaks a
    limit of the target)."""
    rng, unit = {"core": (r.core_range, "J"), "system": (r.system_range, "J"), "latency": (r.latency_range, "s")}[level]
    return "does not fit" if rng is None else span(rng, unit)


def table(reports: dict[str, EnergyReport]) -> str:
    """The plain-text table the CLI prints: one row per target, the three levels and the resources."""
    head = ("target", "fits", "operations", "core energy", "system energy", "latency", "cores", "chips")
    rows = [head]
    for r in reports.values():
        ops = ", ".join(f"{k} {v.mean:,.0f}" for k, v in r.operations.items())
        rows.append((r.target, "yes" if r.fits else "NO", ops, _headline(r, "core"), _headline(r, "system"),
                     _headline(r, "latency"), "-" if r.cores_used is None else str(r.cores_used),
                     "-" if r.chips_needed is None else str(r.chips_needed)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def accuracy_chain(run_dir: str | Path | None, fixed_dir: str | Path | None = None) -> dict[str, float]:
    """snnTorch -> Lava float -> Lava fixed test accuracy, from whichever of the run's files exist; snnTorch's on
    the samples and condition Lava ran (sim_float.json), else training's clean test; the fixed point one from
    ``fixed_dir`` (the run whose fixed-point network is deployed) when given."""
    found: dict[str, float] = {}
    if run_dir is None:
        return found
    sim_float = Path(run_dir) / "sim_float.json"
    snn = (sim_float, ("accuracy", "snntorch")) if sim_float.is_file() else (Path(run_dir) / "test_metrics.json",
                                                                             ("accuracy",))
    for key, path, keys in (("snnTorch", *snn),
                            ("Lava float", sim_float, ("accuracy", "lava")),
                            ("Lava fixed point", Path(fixed_dir or run_dir) / "sim_fixed.json", ("accuracy", "lava"))):
        try:
            value: Any = json.loads(path.read_text())
            for k in keys:
                value = value[k]
            found[key] = float(value)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def verdict(reports: dict[str, EnergyReport], accuracy: dict[str, float] | None = None,
            condition: str | None = None) -> str:
    """One paragraph a reader can take in at a glance: accuracy through the toolchain (under ``condition``, in
    words), then per target the core and system energy per inference (ranges), latency, resources and the
    constant that dominates."""
    parts = []
    if accuracy:
        parts.append("Test accuracy" + (f" ({condition})" if condition else "") + " "
                     + " → ".join(f"{k} {v:.1%}" for k, v in accuracy.items()) + ".")
    targets = []
    for r in reports.values():
        if r.system_range is None:
            targets.append(f"{r.target} does not fit ({'; '.join(r.violations)}), so it gets no figure")
            continue
        where = f"{r.cores_used} cores on {r.chips_needed} chip{'s' if r.chips_needed > 1 else ''}, " \
            if r.chips_needed is not None else ""
        dom = (r.dominant.get("system") or [("", 0.0)])[0]
        targets.append(f"{r.target} {span(r.core_range, 'J')} core, {span(r.system_range, 'J')} system in "
                       f"{human(r.latency_range.nominal, 's')} ({where}{'/'.join(r.kinds)} constants"
                       + (f"; range driven by {dom[0]}, {dom[1]:.0%}" if dom[0] else "") + ")")
    parts.append("Energy per inference, core (dynamic) and system (with idle power over the latency): "
                 + "; ".join(targets) + ".")
    for level in ("core", "system"):
        ranges = {t: r.core_range if level == "core" else r.system_range for t, r in reports.items()}
        fitting = {t: rg.nominal for t, rg in ranges.items() if rg is not None}
        if len(fitting) > 1:
            best, worst = min(fitting, key=fitting.get), max(fitting, key=fitting.get)
            parts.append(f"At the {level} level {best} is lowest, {fitting[worst] / fitting[best]:,.1f}x below "
                         f"{worst} (nominal constants).")
    return " ".join(parts)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(width: float = 7, height: float = 3.5, ncols: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width, height))


COLOURS = {"synaptic_ops": "#1f77b4", "neuron_updates": "#ff7f0e", "spikes": "#2ca02c", "static": "#7f7f7f",
           "macs": "#9467bd", "adds": "#8c564b", "weight_reads": "#e377c2", "platform_dynamic": "#bcbd22",
           "platform_idle": "#c7c7c7"}


def plot_levels(reports: dict[str, EnergyReport], compare: dict[str, EnergyReport] | None,
                labels: tuple[str, str]) -> str:
    """Per target: operations per inference, then stacked energy bars at the core and system levels with
    whiskers from the low to the high end."""
    fig, axes = _figure(15, 4, ncols=3)
    runs = [(labels[0], reports)] + ([(labels[1], compare)] if compare else [])
    groups = [(f"{t}\n{label}" if compare else t, r) for label, rs in runs for t, r in rs.items()]
    ops = list(dict.fromkeys(k for _, r in groups for k in r.operations))
    bottom = np.zeros(len(groups))
    for op in ops:
        vals = np.array([r.operations[op].mean if op in r.operations else 0.0 for _, r in groups])
        axes[0].bar(range(len(groups)), vals, bottom=bottom, label=op)
        bottom += vals
    axes[0].set_xticks(range(len(groups)), [g for g, _ in groups], fontsize=8)
    axes[0].set_yscale("log")
    axes[0].set_ylim(1, max(bottom.max(), 1) * 3)
    axes[0].set_ylabel("operations per inference")
    axes[0].set_title("operations (no constants)")
    axes[0].legend(fontsize=7)
    for ax, level in zip(axes[1:], ("core", "system")):
        comps = list(dict.fromkeys(c for _, r in groups for c in (r.components or {})
                                   if level == "system" or c not in ("static", "platform_dynamic", "platform_idle")))
        bottom = np.zeros(len(groups))
        for comp in comps:
            vals = np.array([r.components[comp].mean * 1e6 if comp in (r.components or {}) else 0.0
                             for _, r in groups])
            if level == "system" and any(r.model == "ann" for _, r in groups):
                vals = np.array([0.0 if r.model == "ann" and comp in ("macs", "adds", "weight_reads") else v
                                 for (_, r), v in zip(groups, vals)])
            ax.bar(range(len(groups)), vals, bottom=bottom, label=comp, color=COLOURS.get(comp))
            bottom += vals
        rng = [(r.core_range if level == "core" else r.system_range) for _, r in groups]
        for i, rg in enumerate(rng):
            if rg is not None:
                ax.plot([i, i], [rg.low * 1e6, rg.high * 1e6], color="black", lw=1.5)
            else:
                ax.text(i, 0.03, "does not fit", rotation=90, ha="center", va="bottom", fontsize=8,
                        transform=ax.get_xaxis_transform())
        ax.set_xticks(range(len(groups)), [g for g, _ in groups], fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("µJ per inference")
        ax.set_title(f"{level} energy (bars nominal, whiskers low–high)")
        ax.legend(fontsize=7)
    return _png(fig)


def plot_cores(reports: dict[str, EnergyReport]) -> str:
    """Cores per layer for each neuromorphic target."""
    fig, ax = _figure(8, 3.5)
    chips = [r for r in reports.values() if r.cores_per_layer]
    layers = list(dict.fromkeys(n for r in chips for n in r.cores_per_layer))
    width = 0.8 / max(len(chips), 1)
    for i, r in enumerate(chips):
        ax.bar(np.arange(len(layers)) + i * width, [r.cores_per_layer.get(n, 0) for n in layers], width,
               label=f"{r.target}{'' if r.fits else ' (does not fit)'}")
    ax.set_xticks(np.arange(len(layers)) + width * (len(chips) - 1) / 2, layers, rotation=30, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("cores")
    ax.set_title("Cores per layer")
    ax.legend(fontsize=8)
    return _png(fig)


def plot_firing(counts: GraphCounts) -> str:
    fig, ax = _figure()
    names = list(counts.layers)
    rates = [counts.layers[n].spikes.sum(1) / (counts.layers[n].neurons * counts.time_steps) for n in names]
    ax.bar(names, [r.mean() for r in rates], yerr=[r.std() for r in rates])
    ax.set_ylabel("spikes per neuron per step")
    ax.set_title("Firing rate per layer")
    ax.tick_params(axis="x", rotation=45)
    return _png(fig)


def plot_raster(spikes: dict[str, np.ndarray], sample: int = 0) -> str:
    fig, ax = _figure(7, 4.5)
    offset, ticks = 0, []
    for name, arr in spikes.items():
        s = np.asarray(arr[sample]).reshape(arr.shape[1], -1)[:, :RASTER_NEURONS]
        t, n = np.nonzero(s)
        ax.scatter(t, n + offset, s=4, marker="|")
        ticks.append((offset + s.shape[1] / 2, name))
        offset += s.shape[1] + 4
    ax.set_yticks([p for p, _ in ticks], [n for _, n in ticks])
    ax.set_xlabel("time step")
    ax.set_title(f"Spike raster, sample {sample} (first {RASTER_NEURONS} neurons per layer)")
    return _png(fig)


def find_sweep(run_dir: str | Path | None) -> Path | None:
    """The run's ``evaluate --sweep`` file: sweep_test.json first, else another split's."""
    if run_dir is None:
        return None
    found = sorted(Path(run_dir).glob("sweep_*.json"), key=lambda p: (p.name != "sweep_test.json", p.name))
    return found[0] if found else None


def sweep_section(sweep: Path | None) -> tuple[str | None, str]:
    """The inverse-effectiveness figure (base64 PNG, or None) and the sentence that goes with it."""
    if sweep is None:
        return None, "No inverse-effectiveness sweep in the run directory (run 'iemf-neuro evaluate RUN_DIR --sweep')."
    try:
        data = read_sweep(sweep)
    except UserError as exc:
        return None, str(exc)
    fig, ax = _figure(6, 4)
    draw_sweep(fig, ax, data["cells"], data["fit"])
    fit = data["fit"]
    trend = "larger where the stronger cue is weaker" if fit["slope"] < 0 else "not larger where cues are weaker"
    return _png(fig), (f"Inverse effectiveness from {sweep.name} ({data['split']} split, {len(data['cells'])} "
                       f"corruption cells): multisensory gain {trend}, slope {fit['slope']:.3f}, "
                       f"r {fit['pearson_r']:.2f}.")


def deployed_fusion(run_dir: str | Path | None) -> dict[str, Any] | None:
    """How the deployed network (RUN_DIR/model.nir) weights its modalities: the folded ``gains``, how they were
    chosen (``calibration``, None for given gains) and the on-chip ``gate``; None without a readable model.nir."""
    path = Path(run_dir) / "model.nir" if run_dir is not None else None
    if path is None or not path.is_file():
        return None
    try:
        record = graph_metadata(read_graph(path))
        return {"gains": record["fusion"]["gains"], "calibration": record.get("fusion_calibration"),
                "gate": record.get("model_config", {}).get("gate", "none")}
    except (UserError, KeyError, TypeError):
        return None


def fusion_note(run_dir: str | Path | None) -> str | None:
    """``deployed_fusion`` in one sentence."""
    fusion = deployed_fusion(run_dir)
    if fusion is None:
        return None
    gains, calibration, gate = fusion["gains"], fusion["calibration"], fusion["gate"]
    how = (f"chosen by the {calibration['rule']} rule on the {calibration['condition'].get('split', 'val')} split "
           f"for the deployment condition {condition_text(calibration['condition'])}") if calibration \
        else "unity: no static weighting"
    return (f"Fusion gains folded into the projections: audio {gains['audio']:g}, visual {gains['visual']:g} ({how}); "
            + ("no on-chip gate." if gate == "none" else f"on-chip gate '{gate}' weights each sample."))


def tested_condition(run_dir: str | Path | None) -> str | None:
    """The condition the run's Lava simulation ran under, in words (None without one)."""
    try:
        return condition_text(json.loads((Path(run_dir) / "sim_float.json").read_text())["corruption"])
    except (TypeError, OSError, ValueError, KeyError):
        return None


def condition_text(condition: dict[str, Any]) -> str:
    """A deployment condition (Corruption fields) in words: "audio 0 dB SNR, image noise 0.5", or "clean"."""
    parts = [f"audio {condition['audio_snr_db']:g} dB SNR" if condition.get("audio_snr_db") is not None else None,
             f"image noise {condition['image_noise_std']:g}" if condition.get("image_noise_std") else None,
             f"image occlusion {condition['image_occlusion']:g}" if condition.get("image_occlusion") else None]
    return ", ".join(p for p in parts if p) or "clean"


def _level_rows(r: EnergyReport) -> list[list[str]]:
    ops = ", ".join(f"{k.replace('_', ' ')} {v.mean:,.0f}" for k, v in r.operations.items())
    dom = {lv: ", ".join(f"{k} {share:.0%}" for k, share in r.dominant.get(lv, [])) or "-" for lv in ("core", "system")}
    return [["operations", ops, "-", "none (counts)"],
            ["core", _headline(r, "core"), fmt(r.core, "J") if r.core else "-", dom["core"]],
            ["system", _headline(r, "system"), fmt(r.system, "J") if r.system else "-", dom["system"]],
            ["latency", _headline(r, "latency"), fmt(r.latency_inference_s, "s") if r.latency_inference_s else "-",
             "-"]]


DEPLOY_HEAD = ["process", "Lava process", "where", "Loihi 2 cores"]


def deployability_rows(deployment: dict[str, Any], reports: dict[str, EnergyReport]) -> list[list[Any]]:
    """The hardware-ready build's processes: on chip (with the Loihi 2 mapper's cores for neuron layers) or
    on the host, and why."""
    if "unavailable" in deployment:
        return []
    cores = reports["loihi2"].cores_per_layer if "loihi2" in reports else {}
    rows = [[name, cls, "chip", cores.get(name, "-")] for name, cls in deployment["on_chip"].items()]
    return rows + [[name, "host process", f"host: {why}", "-"] for name, why in deployment["host"].items()]


def deployability_note(deployment: dict[str, Any]) -> str:
    if "unavailable" in deployment:
        return f"No hardware-ready build: {deployment['unavailable']}"
    host = deployment["host"]
    return (f"Hardware-ready build (simulate --build loihi2-ready), decided on the float build: "
            f"{len(deployment['on_chip'])} processes on chip, {len(host)} on the host"
            + (" (listed with the reason)." if host else ": the whole network runs on Loihi 2 processes; the host "
               "only feeds and reads it.") + " In fixed point a neuron whose leak and projection biases together "
            "exceed the 13-bit bias mantissa would keep those projections on the host (simulate says so).")


CONSTANT_HEAD = ["constant", "nominal", "range", "kind", "citation"]
LEVEL_HEAD = ["level", "per inference (range)", "nominal, mean ± std over samples", "dominant constants"]


def _md_table(rows: list[list[Any]], head: list[str]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"] + \
        ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _md_report(reports, counts, compare, labels, sweep_note, summary, deployment) -> str:
    lines = ["# Energy, latency and resources", "", summary, "",
             f"Counts from: **{counts.source}** ({counts.samples} samples, T = {counts.time_steps}).", "",
             "```", table(reports), "```", ""]
    if compare:
        lines += [f"## {labels[0]} vs {labels[1]} (system level)", ""]
        lines += _md_table([[t, _headline(r, "system"), _headline(compare[t], "system")]
                            for t, r in reports.items() if t in compare], ["target", labels[0], labels[1]])
        lines.append("")
    for r in reports.values():
        lines += [f"## {r.title} (`{r.target}`)", "", r.description, "",
                  f"Kinds of constants used: **{', '.join(r.kinds)}**. Fits: **{'yes' if r.fits else 'no'}**.", ""]
        lines += [f"- does not fit: {v}" for v in r.violations] + ([""] if r.violations else [])
        lines += _md_table(_level_rows(r), LEVEL_HEAD) + [""]
        if r.cores_per_layer:
            lines += _md_table([[n, c] for n, c in r.cores_per_layer.items()], ["layer", "cores"]) + [""]
        if r.components is not None:
            lines += _md_table([[c, fmt(s, "J")] for c, s in r.components.items()], ["component", "nominal energy"])
        lines += [""] + _md_table(_constant_rows(r), CONSTANT_HEAD)
        lines += [""] + [f"- {n}" for n in r.notes] + [""]
    if deployment:
        rows = deployability_rows(deployment, reports)
        lines += ["## Deployability", "", deployability_note(deployment), ""]
        lines += (_md_table(rows, DEPLOY_HEAD) + [""]) if rows else []
    lines += [sweep_note, ""]
    return "\n".join(lines)


def _html_table(rows: list[list[Any]], head: list[str]) -> str:
    e = html.escape
    out = ["<table><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows]
    return "\n".join(out + ["</table>"])


def _html_report(reports, counts, compare, labels, images, sweep_note, summary, deployment) -> str:
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Energy report</title><style>",
             "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse;margin:1em 0}",
             "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}img{max-width:100%}",
             ".verdict{background:#f4f6fa;border-left:4px solid #447;padding:8px 12px}</style></head><body>",
             "<h1>Energy, latency and resources</h1>", f"<p class='verdict'>{e(summary)}</p>",
             f"<p>Counts from: <b>{e(counts.source)}</b> ({counts.samples} samples, T = {counts.time_steps}). "
             "Every figure is a range: the model with all constants at their low and high ends; a target the "
             "network does not fit gets no energy figure.</p>",
             _html_table([[r.target, "yes" if r.fits else "NO: " + "; ".join(r.violations), ", ".join(r.kinds),
                           _headline(r, "core"), _headline(r, "system"), _headline(r, "latency"),
                           r.cores_used if r.cores_used is not None else "-",
                           r.chips_needed if r.chips_needed is not None else "-"] for r in reports.values()],
                         ["target", "fits", "kinds", "core energy", "system energy", "latency", "cores", "chips"])]
    if compare:
        parts.append(f"<h2>{e(labels[0])} vs {e(labels[1])}</h2>")
        parts.append(_html_table([[t, _headline(r, "system"), _headline(compare[t], "system")]
                                  for t, r in reports.items() if t in compare], ["target", labels[0], labels[1]]))
    for title, b64 in images.items():
        parts.append(f"<h2>{e(title)}</h2><img alt='{e(title)}' src='data:image/png;base64,{b64}'>")
    for r in reports.values():
        parts += [f"<h2>{e(r.title)} ({e(r.target)})</h2><p>{e(r.description)}</p>",
                  f"<p>Kinds of constants used: <b>{e(', '.join(r.kinds))}</b></p>"]
        parts += [f"<p><b>Does not fit:</b> {e(v)}</p>" for v in r.violations]
        parts.append(_html_table(_level_rows(r), LEVEL_HEAD))
        if r.components is not None:
            parts += [_html_table([[c, fmt(s, "J")] for c, s in r.components.items()], ["component", "nominal energy"]),
                      _html_table([[b] + [fmt(s, "J") for s in p.values()] for b, p in r.per_branch.items()],
                                  ["branch"] + list(next(iter(r.per_branch.values())))),
                      _html_table([[n, r.cores_per_layer.get(n, "-")] + [fmt(s, "J") for s in p.values()]
                                   for n, p in r.per_layer.items()],
                                  ["layer", "cores"] + list(next(iter(r.per_layer.values()))))]
        elif r.cores_per_layer:
            parts.append(_html_table([[n, c] for n, c in r.cores_per_layer.items()], ["layer", "cores"]))
        parts.append(_html_table(_constant_rows(r), CONSTANT_HEAD))
        parts += [f"<p>{e(n)}</p>" for n in r.notes]
    if deployment:
        rows = deployability_rows(deployment, reports)
        parts += ["<h2>Deployability</h2>", f"<p>{e(deployability_note(deployment))}</p>"]
        parts += [_html_table(rows, DEPLOY_HEAD)] if rows else []
    parts += [f"<p>{e(sweep_note)}</p>", "</body></html>"]
    return "\n".join(parts)


def write_reports(out_dir: str | Path, reports: dict[str, EnergyReport], counts: GraphCounts,
                  mappings: dict[str, Mapping] | None = None, *, spikes: dict[str, np.ndarray] | None = None,
                  compare: dict[str, EnergyReport] | None = None, labels: tuple[str, str] = ("this run", "other"),
                  run_dir: str | Path | None = None, provenance: dict[str, Any] | None = None,
                  extra: dict[str, Any] | None = None, deployment: dict[str, Any] | None = None,
                  fixed_dir: str | Path | None = None) -> dict[str, Path]:
    """Write energy.json, report.md, report.html into ``out_dir``; returns their paths. ``deployment``: the
    hardware-ready build's ``ReadyPlan.summary()`` (the "Deployability" section)."""
    out_dir = Path(out_dir)
    images = {"Energy per inference by level": plot_levels(reports, compare, labels)}
    if any(r.cores_per_layer for r in reports.values()):
        images["Cores per layer"] = plot_cores(reports)
    images["Firing rate per layer"] = plot_firing(counts)
    if spikes:
        images["Spike raster"] = plot_raster(spikes)
    sweep = find_sweep(run_dir)
    sweep_image, sweep_note = sweep_section(sweep)
    fusion = fusion_note(run_dir)
    if sweep_image:
        images["Inverse effectiveness"] = sweep_image
    accuracy = accuracy_chain(run_dir, fixed_dir)
    summary = verdict(reports, accuracy, tested_condition(run_dir)) + (f" {fusion}" if fusion else "")
    record = {"provenance": provenance or {}, "verdict": summary, "accuracy": accuracy,
              "counts_source": counts.source, "samples": counts.samples,
              "time_steps": counts.time_steps, "targets": to_jsonable(reports), "counts": counts_summary(counts),
              "mapping": to_jsonable(mappings or {}), "compare": to_jsonable(compare or {}),
              "labels": list(labels), "sweep": str(sweep) if sweep else None, "fusion": fusion,
              "extra": to_jsonable(extra or {}),
              "deployability": deployment}
    paths = {"json": out_dir / "energy.json", "md": out_dir / "report.md", "html": out_dir / "report.html"}
    write_json_atomic(paths["json"], record)
    write_text_atomic(paths["md"], _md_report(reports, counts, compare, labels, sweep_note, summary, deployment))
    write_text_atomic(paths["html"], _html_report(reports, counts, compare, labels, images, sweep_note, summary,
                                                  deployment))
    return paths


def energy_summary(t: dict[str, Any]) -> dict[str, Any]:
    """One target of energy.json in short: its three levels with their low/high ends, and whether the network
    fits (why not, if not)."""
    out: dict[str, Any] = {"fits": t["fits"], "violations": t["violations"], "kinds": t["kinds"],
                           "operations_per_inference": {k: v["mean"] for k, v in t["operations"].items()}}
    for level in ("core", "system"):  # None where energy.estimate gave no figure (the network does not fit)
        out[f"{level}_energy_j"] = t[f"{level}_range"]
    out["latency_s"] = t["latency_range"]
    out["cores"], out["chips"] = t["cores_used"], t["chips_needed"]
    return out
