"""Streaming Lava runner: compile a NIR graph once, run many samples back to back, record every layer.

Samples of T steps stream through one ``run`` call: sample k's step t enters at Lava step ``k*T + t + 1``
and a unit of latency ``lat`` processes it at ``k*T + t + lat + 1``, where its ``LIFReset`` has zeroed
u and v at the start of the window (``converters.nir_to_lava``). The run lasts ``N*T + max_latency``
steps; recordings are shifted back by each unit's latency, so results line up with the graph's own timing.

Data never moves through ``Var.get``: ``StreamSource`` reads the inputs from a ``.npy`` memory map and
``StreamRecorder`` writes each layer's spikes (or voltages) straight into another memory map
(``hardware_targets.lava_stream``). Lava itself runs in one worker process of its own process group
(``hardware_targets.lava_worker``); a watchdog stops it after ``timeout_s``, and on return, also after
Ctrl-C or SIGTERM, the whole group has been stopped: nothing Lava forked outlives the call.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import nir
import numpy as np

from converters.loihi2_ready import ready_plan
from converters.nir_to_lava import LavaPlan, plan_graph
from converters.quantize import Calibration, quantize_inputs, quantize_plan
from iemf_neuro.errors import UserError
from iemf_neuro.models.fixed_point import STATE_SCALE
from iemf_neuro.progress import progress as progress_bar

PRECISIONS = ("float", "fixed")
BUILDS = ("simulation", "loihi2-ready")  # nir_to_lava.build_network, or converters.loihi2_ready
POLL_S = 0.05
DEAD_CHECK_POLLS = 20  # look for dead Lava processes once a second
STOP_GRACE_S = 5.0  # per stage of stopping a worker's group (SIGTERM, then SIGKILL)


@dataclass
class LavaRun:
    """One simulation; arrays are batch-major ``[N, T, ...]`` on the graph's timing."""

    outputs: dict[str, np.ndarray]  # Output node -> spikes (uint8) or voltages (float64)
    spikes: dict[str, np.ndarray]  # spiking neuron node -> uint8 spikes [N, T, *shape]
    voltages: dict[str, np.ndarray]  # non-spiking neuron node -> float64 v [N, T, *shape]
    steps: int  # Lava steps run: N*T + pipeline latency
    latency: int  # pipeline latency in steps (removed from the results)
    samples_per_s: float  # N / wall time of build + compile + run
    wall_s: float
    precision: str = "float"
    quantization: dict[str, Any] = field(default_factory=dict)  # per layer (fixed only)
    deployment: dict[str, Any] = field(default_factory=dict)  # build, processes on chip and on the host


def check_inputs(plan: LavaPlan, inputs: dict[str, Any]) -> tuple[dict[str, np.ndarray], int, int]:
    """One finite ``[N, T, *shape]`` array per Input node, all with the same N and T."""
    expected = sorted(plan.inputs)
    if sorted(inputs) != expected:
        raise UserError(f"inputs {sorted(inputs)} do not match the graph's Input nodes {expected}; pass one "
                        "[N, T, *shape] array per Input node, keyed by its name")
    out, sizes = {}, set()
    for name in expected:
        x = np.asarray(inputs[name])
        shape = plan.inputs[name].shape
        if x.dtype.kind not in "biuf":
            raise UserError(f"input {name!r} has dtype {x.dtype}; pass numeric (float or int) arrays")
        if x.ndim != 2 + len(shape) or tuple(x.shape[2:]) != shape:
            raise UserError(f"input {name!r} has shape {tuple(x.shape)}, expected [N, T, "
                            f"{', '.join(map(str, shape))}]; pass batch-major arrays")
        if not np.all(np.isfinite(x)):
            raise UserError(f"input {name!r} contains NaN or inf; clean the data before simulating")
        sizes.add(x.shape[:2])
        out[name] = x.astype(np.float64)
    if len(sizes) != 1:
        raise UserError(f"inputs disagree on [N, T]: {sorted(sizes)}; give every input the same N and T")
    (n, t), = sizes
    if n < 1 or t < 1:
        raise UserError(f"inputs have N={n}, T={t}; pass at least one sample of at least one step")
    return out, int(n), int(t)


@contextlib.contextmanager
def _deferred_signals() -> Iterator[None]:
    """Ctrl-C / SIGTERM during cleanup are noted and raised after it: a half-stopped group would outlive us.
    A signal that was ignored stays ignored; off the main thread, handlers cannot change and nothing is."""
    received: list[int] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) not in (signal.SIG_IGN, None):
                previous[sig] = signal.signal(sig, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise KeyboardInterrupt(f"signal {received[0]}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we may not signal: it exists
        return True
    return True


def _dead_member(pgid: int) -> int | None:
    """A process of the worker's group that has died unreaped (a zombie), if any: Lava does not notice that one
    of its process models was killed (by the kernel's out-of-memory killer, say) and waits for it forever."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue
        if state == "Z" and int(group) == pgid:
            return int(stat.parent.name)
    return None


def _stop_group(worker: subprocess.Popen) -> None:
    """Stop the worker's process group: a finished worker's stragglers get a grace to exit (multiprocessing's
    resource tracker cleans Lava's shared memory after its last user), a running one SIGTERM; SIGKILL after
    STOP_GRACE_S for whatever is left. Returns once the worker is reaped and its group is empty."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if worker.poll() is None or sig == signal.SIGKILL:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, sig)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline:
            if worker.poll() is not None and not _group_alive(worker.pid):
                return
            time.sleep(POLL_S)
    worker.wait()


def _remove_worker_tempdir(workdir: Path) -> None:
    """A worker stopped by SIGKILL never runs multiprocessing's exit hook that removes its pymp-* folder."""
    record = workdir / "tempdir.txt"
    if record.is_file():
        shutil.rmtree(record.read_text(), ignore_errors=True)


def _run(workdir: Path, total: int, precision: str, timeout_s: float | None, progress: bool) -> None:
    """Run the job in ``workdir`` in a Lava worker of its own process group; the group is gone on return."""
    log = open(workdir / "worker.log", "wb")
    worker = subprocess.Popen([sys.executable, "-m", "hardware_targets.lava_worker", str(workdir)],
                              stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                              preexec_fn=os.setpgrp)
    log.close()
    counter = np.load(workdir / "progress.npy", mmap_mode="r")
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        with progress_bar(total=total, desc=f"lava {precision}", unit="step", enabled=progress) as bar:
            polls = 0
            while worker.poll() is None:
                if deadline is not None and time.monotonic() > deadline:
                    raise UserError(f"Lava simulation exceeded timeout_s={timeout_s:g} after {int(counter[0])} of "
                                    f"{total} steps; raise the timeout or simulate fewer samples")
                polls += 1
                dead = _dead_member(worker.pid) if polls % DEAD_CHECK_POLLS == 0 and counter[0] < total else None
                if dead is not None:
                    raise UserError(f"a Lava process (pid {dead}) died after {int(counter[0])} of {total} steps, "
                                    "killed from outside (out of memory?); free memory or simulate fewer samples")
                bar.update(int(counter[0]) - bar.n)
                time.sleep(POLL_S)
            bar.update(int(counter[0]) - bar.n)
    finally:
        with _deferred_signals():
            _stop_group(worker)
            _remove_worker_tempdir(workdir)
    if worker.returncode == 2 and (workdir / "error.txt").is_file():
        raise UserError((workdir / "error.txt").read_text())
    if worker.returncode != 0 or int(counter[0]) < total:
        tail = (workdir / "worker.log").read_text(errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"the Lava worker stopped after {int(counter[0])} of {total} steps (exit code "
                           f"{worker.returncode}): {tail[0] if tail else 'no output'}")


def simulate_graph(graph: nir.NIRGraph, inputs: dict[str, np.ndarray], precision: str = "float",
                   dt: float | None = None, timeout_s: float | None = None, progress: bool = True,
                   calibration: dict[str, np.ndarray] | None = None, build: str = "simulation",
                   allow_host: bool = False) -> LavaRun:
    """Simulate ``graph`` in Lava on ``inputs[name] -> [N, T, *shape]`` (one per Input node).

    precision: "float" (float64 models, spike-for-spike with the reference executor) or "fixed"
    (bit-accurate Loihi models on quantised parameters, see ``converters.quantize``; ``calibration``,
    inputs shaped like ``inputs``, tunes the weight exponents to the float network's spikes on them).
    build: "simulation", or "loihi2-ready" (only processes Loihi 2 runs on chip, ``converters.loihi2_ready``;
    ``allow_host`` keeps what has no on-chip form on host processes instead of refusing it).
    """
    if precision not in PRECISIONS:
        raise UserError(f"precision {precision!r} is not supported; choose one of {', '.join(PRECISIONS)}")
    if build not in BUILDS:
        raise UserError(f"build {build!r} is not supported; choose one of {', '.join(BUILDS)}")
    start = time.perf_counter()
    plan = plan_graph(graph, dt)
    data, n, steps = check_inputs(plan, inputs)
    quant = None
    if precision == "fixed":
        calib = None if calibration is None else Calibration.from_graph(graph, check_inputs(plan, calibration)[0])
        quant = quantize_plan(plan, data, calib)
    ready = ready_plan(plan, precision, quant, allow_host) if build == "loihi2-ready" else None
    workdir = Path(tempfile.mkdtemp(prefix="iemf-lava-"))
    try:
        for name, x in data.items():
            flat = x.reshape(n, steps, -1)
            np.save(workdir / f"in_{name}.npy", quantize_inputs(flat, quant.inputs[name]) if quant else flat)
        for name, unit in plan.neurons.items():
            dtype = np.uint8 if unit.neuron.spiking else (np.float64 if quant is None else np.int32)
            np.lib.format.open_memmap(workdir / f"rec_{name}.npy", mode="w+", dtype=dtype,
                                      shape=(n, steps, unit.size)).flush()
        np.save(workdir / "progress.npy", np.zeros(1, dtype=np.int64))
        job = {"plan": plan, "quant": quant, "n": n, "steps": steps, "precision": precision, "ready": ready}
        (workdir / "job.pkl").write_bytes(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
        total = n * steps + plan.max_latency
        _run(workdir, total, precision, timeout_s, progress)
        spikes, voltages = {}, {}
        for name, unit in plan.neurons.items():
            rec = np.load(workdir / f"rec_{name}.npy").reshape(n, steps, *unit.shape)
            if unit.neuron.spiking:
                spikes[name] = rec
            else:
                scale = 1.0 if quant is None else STATE_SCALE * quant.layers[name].lam
                voltages[name] = rec.astype(np.float64) / scale
    finally:
        with _deferred_signals():
            shutil.rmtree(workdir, ignore_errors=True)
    outputs = {}
    for out, unit in plan.outputs.items():
        outputs[out] = spikes.get(unit, voltages.get(unit, data.get(unit)))
    wall = time.perf_counter() - start
    return LavaRun(outputs=outputs, spikes=spikes, voltages=voltages, steps=total, latency=plan.max_latency,
                   samples_per_s=n / wall, wall_s=wall, precision=precision,
                   quantization=quant.report(plan) if quant else {},
                   deployment=ready.summary() if ready else {"build": "simulation"})
