"""energy.json, report.md and a self-contained report.html (plots embedded as base64 PNG), plus a printed table.

Every string that comes from a file or a config (target titles, citations, layer names, notes) is escaped
with ``html.escape`` before it reaches the HTML. Files are written atomically.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from iemf_neuro.errors import UserError
from iemf_neuro.provenance import to_jsonable, write_json_atomic, write_text_atomic
from iemf_neuro.sweep_plot import draw_sweep, read_sweep

from .counting import GraphCounts
from .energy import EnergyReport, Stat
from .mapping import Mapping

RASTER_NEURONS = 64  # neurons per layer drawn in the raster


def fmt(stat: Stat | None, unit: str) -> str:
    """``1.23e-06 ± 4.5e-08 J``; 'not modelled' for None."""
    return "not modelled" if stat is None else f"{stat.mean:.3g} ± {stat.std:.2g} {unit}"


def counts_summary(counts: GraphCounts) -> dict[str, Any]:
    """Per layer: mean ± std per sample of every count, and the mean firing rate."""
    out: dict[str, Any] = {}
    for name, layer in counts.layers.items():
        row = {q: asdict(Stat.of(counts.per_sample(q, [name]))) for q in
               ("spikes", "acs", "macs", "synops", "active", "inactive", "dense_macs")}
        row.update(branch=layer.branch, node_type=layer.node_type, neurons=layer.neurons, synapses=layer.synapses,
                   max_fan_in=layer.max_fan_in, sources=layer.sources,
                   firing_rate=float(layer.spikes.mean() / max(layer.neurons, 1)),
                   per_step_synops=layer.synops.mean(axis=0).tolist())
        out[name] = row
    return out


def table(reports: dict[str, EnergyReport]) -> str:
    """The plain-text table the CLI prints."""
    head = ("target", "kinds", "energy/inference", "dynamic", "static", "latency/inference", "cores", "chips")
    rows = [head]
    for r in reports.values():
        rows.append((r.target, ",".join(r.kinds), fmt(r.total, "J"), fmt(r.dynamic, "J"), fmt(r.static, "J"),
                     fmt(r.latency_inference_s, "s"), "-" if r.cores_used is None else str(r.cores_used),
                     "-" if r.chips_needed is None else str(r.chips_needed)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(width: float = 7, height: float = 3.5):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def plot_breakdown(reports: dict[str, EnergyReport], compare: dict[str, EnergyReport] | None,
                   labels: tuple[str, str]) -> str:
    fig, ax = _figure()
    runs = [(labels[0], reports)] + ([(labels[1], compare)] if compare else [])
    components = list(dict.fromkeys(c for _, rs in runs for r in rs.values() for c in r.components))
    groups = [(f"{t}\n{label}" if compare else t, r) for label, rs in runs for t, r in rs.items()]
    x = np.arange(len(groups))
    width = 0.8 / max(len(components), 1)
    for i, comp in enumerate(components):
        vals = [r.components[comp].mean if comp in r.components else 0.0 for _, r in groups]
        errs = [r.components[comp].std if comp in r.components else 0.0 for _, r in groups]
        ax.bar(x + i * width, vals, width, yerr=errs, label=comp)
    ax.set_xticks(x + width * (len(components) - 1) / 2, [g for g, _ in groups])
    ax.set_yscale("log")
    ax.set_ylabel("energy per inference (J)")
    ax.set_title("Energy breakdown (kinds of constants in the table)")
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


def _md_report(reports, counts, compare, labels, sweep_note) -> str:
    lines = ["# Energy, latency and resources", "",
             f"Counts from: **{counts.source}** ({counts.samples} samples, T = {counts.time_steps}).", "",
             "```", table(reports), "```", ""]
    if compare:
        lines += [f"## {labels[0]} vs {labels[1]}", "", f"| target | {labels[0]} | {labels[1]} | ratio |",
                  "|---|---|---|---|"]
        for t, r in reports.items():
            if t in compare:
                o = compare[t]
                ratio = r.total.mean / o.total.mean if o.total.mean else float("nan")
                lines.append(f"| {t} | {fmt(r.total, 'J')} | {fmt(o.total, 'J')} | {ratio:.3g} |")
        lines.append("")
    for r in reports.values():
        lines += [f"## {r.title} (`{r.target}`)", "", r.description, "",
                  f"Kinds of constants used: **{', '.join(r.kinds)}**.", "",
                  "| component | energy per inference |", "|---|---|"]
        lines += [f"| {c} | {fmt(s, 'J')} |" for c, s in r.components.items()]
        lines += ["", "| branch | " + " | ".join(next(iter(r.per_branch.values()))) + " |",
                  "|---" * (1 + len(next(iter(r.per_branch.values())))) + "|"]
        lines += [f"| {b} | " + " | ".join(fmt(s, "J") for s in parts.values()) + " |"
                  for b, parts in r.per_branch.items()]
        lines += ["", "| constant | value | kind | citation |", "|---|---|---|---|"]
        lines += [f"| {k} | {c.value:.4g} | {c.kind} | {c.citation} |" for k, c in r.constants.items()]
        lines += [""] + [f"- {n}" for n in r.notes] + [""]
    lines += [sweep_note, ""]
    return "\n".join(lines)


def _html_table(rows: list[list[Any]], head: list[str]) -> str:
    e = html.escape
    out = ["<table><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows]
    return "\n".join(out + ["</table>"])


def _html_report(reports, counts, compare, labels, images, sweep_note) -> str:
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Energy report</title><style>",
             "body{font-family:sans-serif;max-width:1000px;margin:auto}table{border-collapse:collapse;margin:1em 0}",
             "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}img{max-width:100%}</style></head><body>",
             "<h1>Energy, latency and resources</h1>",
             f"<p>Counts from: <b>{e(counts.source)}</b> ({counts.samples} samples, T = {counts.time_steps}).</p>",
             _html_table([[r.target, ", ".join(r.kinds), fmt(r.total, "J"), fmt(r.dynamic, "J"), fmt(r.static, "J"),
                           fmt(r.latency_inference_s, "s"), r.cores_used, r.chips_needed, r.fits_one_chip]
                          for r in reports.values()],
                         ["target", "kinds", "energy/inference", "dynamic", "static", "latency/inference", "cores",
                          "chips", "fits one chip"])]
    if compare:
        parts.append(f"<h2>{e(labels[0])} vs {e(labels[1])}</h2>")
        parts.append(_html_table([[t, fmt(r.total, "J"), fmt(compare[t].total, "J")]
                                  for t, r in reports.items() if t in compare], ["target", labels[0], labels[1]]))
    for title, b64 in images.items():
        parts.append(f"<h2>{e(title)}</h2><img alt='{e(title)}' src='data:image/png;base64,{b64}'>")
    for r in reports.values():
        parts += [f"<h2>{e(r.title)} ({e(r.target)})</h2><p>{e(r.description)}</p>",
                  f"<p>Kinds of constants used: <b>{e(', '.join(r.kinds))}</b></p>",
                  _html_table([[c, fmt(s, "J")] for c, s in r.components.items()], ["component", "energy"]),
                  _html_table([[b] + [fmt(s, "J") for s in p.values()] for b, p in r.per_branch.items()],
                              ["branch"] + list(next(iter(r.per_branch.values())))),
                  _html_table([[n] + [fmt(s, "J") for s in p.values()] for n, p in r.per_layer.items()],
                              ["layer"] + list(next(iter(r.per_layer.values())))),
                  _html_table([[k, f"{c.value:.4g}", c.kind, c.citation] for k, c in r.constants.items()],
                              ["constant", "value", "kind", "citation"])]
        parts += [f"<p>{e(n)}</p>" for n in r.notes]
    parts += [f"<p>{e(sweep_note)}</p>", "</body></html>"]
    return "\n".join(parts)


def write_reports(out_dir: str | Path, reports: dict[str, EnergyReport], counts: GraphCounts,
                  mappings: dict[str, Mapping] | None = None, *, spikes: dict[str, np.ndarray] | None = None,
                  compare: dict[str, EnergyReport] | None = None, labels: tuple[str, str] = ("this run", "other"),
                  run_dir: str | Path | None = None, provenance: dict[str, Any] | None = None,
                  extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write energy.json, report.md, report.html into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    images = {"Energy breakdown": plot_breakdown(reports, compare, labels),
              "Firing rate per layer": plot_firing(counts)}
    if spikes:
        images["Spike raster"] = plot_raster(spikes)
    sweep = find_sweep(run_dir)
    sweep_image, sweep_note = sweep_section(sweep)
    if sweep_image:
        images["Inverse effectiveness"] = sweep_image
    record = {"provenance": provenance or {}, "counts_source": counts.source, "samples": counts.samples,
              "time_steps": counts.time_steps, "targets": to_jsonable(reports), "counts": counts_summary(counts),
              "mapping": to_jsonable(mappings or {}), "compare": to_jsonable(compare or {}),
              "labels": list(labels), "sweep": str(sweep) if sweep else None, "extra": to_jsonable(extra or {})}
    paths = {"json": out_dir / "energy.json", "md": out_dir / "report.md", "html": out_dir / "report.html"}
    write_json_atomic(paths["json"], record)
    write_text_atomic(paths["md"], _md_report(reports, counts, compare, labels, sweep_note))
    write_text_atomic(paths["html"], _html_report(reports, counts, compare, labels, images, sweep_note))
    return paths
