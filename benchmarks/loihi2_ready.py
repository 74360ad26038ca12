"""The hardware-ready build against the simulation build on trained networks, in float and fixed point.

For seed 0 of avdigits-mlp (the demo's config) and avdigits-cnn: the first SAMPLES test samples through
``simulate_graph`` twice, ``build="simulation"`` and ``build="loihi2-ready"`` (only processes Loihi 2 runs on
chip, ``converters.loihi2_ready``), float and fixed point (weight exponents calibrated as the CLI does by
default). Prints every layer's differing spike entries, the processes on chip and on the host, and the wall
time of each build.

    .venv/bin/python benchmarks/loihi2_ready.py

Trains what it needs (seeded, cached under runs/bench-*). The last line is
``hardware-ready vs simulation build: X differing spike entries of Y; host processes: Z``.
"""

from __future__ import annotations

from support.inputs import encoded
from support.trained_run import trained_run

from converters.model_to_nir import export_model
from hardware_targets.lava_sim import simulate_graph
from iemf_neuro.training.checkpoint import load_run

CONFIGS = ("avdigits-mlp", "avdigits-cnn")
SAMPLES = 30
MODALITIES = ("audio", "visual")


def compare(config_name: str, precision: str) -> tuple[int, int, dict]:
    run = load_run(trained_run(config_name, 0))
    x = encoded(run, "test")
    inputs = {m: x[m][:SAMPLES] for m in MODALITIES}
    calibration = {m: v for m, v in encoded(run, "train", calibration=True).items() if m in MODALITIES} \
        if precision == "fixed" else None
    graph = export_model(run.model, run.model_config)
    sim = simulate_graph(graph, inputs, precision, progress=False, calibration=calibration)
    ready = simulate_graph(graph, inputs, precision, progress=False, calibration=calibration, build="loihi2-ready")
    differ = {k: int((ready.spikes[k] != v).sum()) for k, v in sim.spikes.items()}
    entries = sum(v.size for v in sim.spikes.values())
    print(f"{config_name:<14}{precision:<7}differing {differ}  spikes {sum(int(v.sum()) for v in sim.spikes.values())}"
          f"  wall: simulation {sim.wall_s:.1f} s, ready {ready.wall_s:.1f} s", flush=True)
    print(f"{'':<21}on chip: {ready.deployment['on_chip']}", flush=True)
    print(f"{'':<21}host: {ready.deployment['host'] or 'none'}", flush=True)
    return sum(differ.values()), entries, ready.deployment["host"]


def main() -> None:
    print(f"hardware-ready vs simulation build, seed 0, first {SAMPLES} AV-Digits test samples\n")
    total = differing = host = 0
    for config_name in CONFIGS:
        for precision in ("float", "fixed"):
            d, n, h = compare(config_name, precision)
            differing, total, host = differing + d, total + n, host + len(h)
    print(f"\nhardware-ready vs simulation build: {differing} differing spike entries of {total:,}; "
          f"host processes: {host}")


if __name__ == "__main__":
    main()
