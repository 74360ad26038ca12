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


def compare(config_name: str) -> tuple[int, int, int]:
    """(differing spike entries, spike entries, host processes) of one config, float and fixed together."""
    run = load_run(trained_run(config_name, 0))
    x = encoded(run, "test")
    inputs = {m: x[m][:SAMPLES] for m in MODALITIES}
    calibration = {m: v for m, v in encoded(run, "train", calibration=True).items() if m in MODALITIES}
    graph = export_model(run.model, run.model_config)
    differing = total = host = 0
    for precision in ("float", "fixed"):
        calib = calibration if precision == "fixed" else None
        sim = simulate_graph(graph, inputs, precision, progress=False, calibration=calib)
        ready = simulate_graph(graph, inputs, precision, progress=False, calibration=calib, build="loihi2-ready")
        differ = {k: int((ready.spikes[k] != v).sum()) for k, v in sim.spikes.items()}
        print(f"{config_name:<14}{precision:<7}differing {differ}  spikes "
              f"{sum(int(v.sum()) for v in sim.spikes.values())}  wall: simulation {sim.wall_s:.1f} s, ready "
              f"{ready.wall_s:.1f} s", flush=True)
        print(f"{'':<21}on chip: {ready.deployment['on_chip']}", flush=True)
        print(f"{'':<21}host: {ready.deployment['host'] or 'none'}", flush=True)
        differing += sum(differ.values())
        total += sum(v.size for v in sim.spikes.values())
        host += len(ready.deployment["host"])
    return differing, total, host


def main() -> None:
    print(f"hardware-ready vs simulation build, seed 0, first {SAMPLES} AV-Digits test samples\n")
    counts = [compare(config_name) for config_name in CONFIGS]
    differing, total, host = (sum(c[i] for c in counts) for i in range(3))
    print(f"\nhardware-ready vs simulation build: {differing} differing spike entries of {total:,}; "
          f"host processes: {host}")


if __name__ == "__main__":
    main()
