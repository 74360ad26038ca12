"""Streaming Lava runner: compile a NIR graph once, run many samples back to back, record every layer.

Samples of T steps stream through one ``run`` call: sample k's step t enters at Lava step ``k*T + t + 1``
and a unit of latency ``lat`` processes it at ``k*T + t + lat + 1``, where its ``LIFReset`` has zeroed
u and v at the start of the window (``converters.nir_to_lava``). The run lasts ``N*T + max_latency``
steps; recordings are shifted back by each unit's latency, so results line up with the graph's own timing.

Data never moves through ``Var.get``: ``StreamSource`` reads the inputs from a ``.npy`` memory map and
``StreamRecorder`` writes each layer's spikes (or voltages) straight into another memory map. A watchdog
stops the run after ``timeout_s``; the runtime is always stopped and every child process it forked is
joined (or killed) before the call returns, also on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Any, Iterator

import nir
import numpy as np

from converters.nir_to_lava import LavaPlan, build_network, plan_graph
from converters.quantize import QuantizedPlan, quantize_inputs, quantize_plan
from iemf_neuro.errors import UserError
from iemf_neuro.progress import progress as progress_bar

PRECISIONS = ("float", "fixed")
POLL_S = 0.05
STOP_GRACE_S = 10.0


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


_PROCS: dict[str, Any] = {}


def _stream_types() -> dict[str, Any]:
    """StreamSource / StreamRecorder and their float and fixed-point models, defined on first use."""
    if _PROCS:
        return _PROCS
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.model.py.model import PyLoihiProcessModel
    from lava.magma.core.model.py.ports import PyInPort, PyOutPort
    from lava.magma.core.model.py.type import LavaPyType
    from lava.magma.core.process.ports.ports import InPort, OutPort
    from lava.magma.core.process.process import AbstractProcess
    from lava.magma.core.resources import CPU
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

    class StreamSource(AbstractProcess):
        """Sends ``data[k, t]`` at Lava step ``k*T + t + 1`` from a ``[N, T, size]`` .npy file, zeros after."""

        def __init__(self, *, path: str, shape: tuple[int, ...]):
            super().__init__(path=path, shape=shape)
            self.s_out = OutPort(shape=shape)

    class StreamRecorder(AbstractProcess):
        """Writes what arrives at step ``k*T + t + latency + 1`` to ``[N, T, size]`` row (k, t) of a .npy
        memory map; optionally the last step seen to a progress file (watchdog and progress bar)."""

        def __init__(self, *, path: str, shape: tuple[int, ...], latency: int, progress: str = ""):
            super().__init__(path=path, shape=shape, latency=latency, progress=progress)
            self.s_in = InPort(shape=shape)

    class SourceModel(PyLoihiProcessModel):
        def __init__(self, proc_params):
            super().__init__(proc_params)
            self.data = np.load(proc_params["path"], mmap_mode="r")
            self.zero = np.zeros(self.data.shape[2:], dtype=self.data.dtype)

        def run_spk(self):
            k, t = divmod(self.time_step - 1, self.data.shape[1])
            self.s_out.send(np.array(self.data[k, t]) if k < self.data.shape[0] else self.zero)

    class RecorderModel(PyLoihiProcessModel):
        def __init__(self, proc_params):
            super().__init__(proc_params)
            self.out = np.load(proc_params["path"], mmap_mode="r+")
            self.latency = proc_params["latency"]
            path = proc_params["progress"]
            self.progress = np.load(path, mmap_mode="r+") if path else None

        def run_spk(self):
            data = self.s_in.recv()
            k, t = divmod(self.time_step - 1 - self.latency, self.out.shape[1])
            if 0 <= k < self.out.shape[0]:
                self.out[k, t] = data
            if self.progress is not None:
                self.progress[0] = self.time_step

    models = {}
    for prec, dtype in (("float", float), ("fixed", np.int32)):
        tag_name = "floating_pt" if prec == "float" else "fixed_pt"
        src = type(f"PyStreamSource{prec.title()}", (SourceModel,),
                   {"s_out": LavaPyType(PyOutPort.VEC_DENSE, dtype), "__module__": __name__})
        rec = type(f"PyStreamRecorder{prec.title()}", (RecorderModel,),
                   {"s_in": LavaPyType(PyInPort.VEC_DENSE, dtype), "__module__": __name__})
        for proc, model in ((StreamSource, src), (StreamRecorder, rec)):
            models[(proc, prec)] = implements(proc=proc, protocol=LoihiProtocol)(
                requires(CPU)(tag(tag_name)(model)))
    _PROCS.update(StreamSource=StreamSource, StreamRecorder=StreamRecorder, models=models)
    return _PROCS


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


class _Interrupts:
    """Ctrl-C / SIGTERM while Lava runs, raised only where it is safe.

    Raised wherever the signal lands, the interrupt can hit Lava's launch inside a fork hook, where Python
    prints "Exception ignored" and the run carries on, or between a fork and multiprocessing's record of the
    child, which then escapes reaping. So the handler only takes note, and ``check()`` (before the launch and
    in the progress loop) raises KeyboardInterrupt once a signal has arrived. A second signal raises at once,
    for a launch that hangs, unless cleanup has begun (``shield()``): stopping and reaping must finish.
    Lava's forked children inherit the handler; there it hands the signal to the handler that was in place
    before, so ``terminate()`` still stops them. A signal that was ignored stays ignored.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: list[int] = []
        self.shielded = False
        self._owner = os.getpid()
        self._previous: dict[int, Any] = {}

    def check(self) -> None:
        if self.received:
            raise KeyboardInterrupt(f"signal {self.received[0]}")

    def shield(self) -> None:
        self.shielded = True

    def _handle(self, signum, frame) -> None:
        if os.getpid() != self._owner:
            signal.signal(signum, self._previous[signum])
            os.kill(os.getpid(), signum)
            return
        self.received.append(signum)
        if len(self.received) > 1 and not self.shielded:
            self.check()

    @contextlib.contextmanager
    def installed(self) -> Iterator["_Interrupts"]:
        """Install the handler (main thread only), restore the previous ones after, then ``check()``."""
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                if signal.getsignal(sig) not in (signal.SIG_IGN, None):
                    self._previous[sig] = signal.signal(sig, self._handle)
        try:
            yield self
        finally:
            self._restore(list(self._previous.items()))
        self.check()

    def _restore(self, handlers: list[tuple[int, Any]]) -> None:
        """Each restore in the finally of the one before: a signal landing between two cannot skip the rest."""
        if handlers:
            try:
                signal.signal(*handlers[0])
            finally:
                self._restore(handlers[1:])


def _stop_runtime(proc: Any) -> None:
    """proc.stop() in a helper thread, so a wedged runtime cannot hang the caller."""
    def stop() -> None:
        with contextlib.suppress(Exception):
            proc.stop()

    worker = threading.Thread(target=stop, daemon=True)
    worker.start()
    worker.join(STOP_GRACE_S)


def _child_pids() -> set[int]:
    """This process's direct children (zombies included), read from /proc; empty without /proc."""
    me, found = os.getpid(), set()
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2:].split()[1]) == me:
                    found.add(int(entry.name))
    return found


def _children() -> set[int]:
    """Pids of this process's children: from /proc, and multiprocessing's (the only ones without /proc)."""
    return _child_pids() | {c.pid for c in multiprocessing.active_children()}


def _reap(before: set[int]) -> None:
    """Join, then terminate, then kill every child started since ``before`` (``_children()`` then):
    multiprocessing's children first, then any child it has no record of. Assumes, as the CLI is, that no
    other thread of this process starts children meanwhile."""
    children = [c for c in multiprocessing.active_children() if c.pid not in before]
    deadline = time.monotonic() + 2.0
    for child in children:
        multiprocessing.Process.join(child, max(0.0, deadline - time.monotonic()))
    for child in children:
        if child.is_alive():
            child.terminate()
            multiprocessing.Process.join(child, 1.0)
        if child.is_alive():
            child.kill()
            multiprocessing.Process.join(child, 1.0)
    for pid in _child_pids() - before - {c.pid for c in children}:  # multiprocessing's own: reaped above
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            if _waited(pid, 1.0):
                break


def _waited(pid: int, timeout_s: float) -> bool:
    """waitpid ``pid`` for up to ``timeout_s``; True once it is gone."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def _allow_lava_fork() -> None:
    """Lava calls ``multiprocessing.set_start_method('fork')`` unforced at import, which raises once anything
    (a training run in the same process, say) has fixed the start method; clear it so the import succeeds."""
    if "lava.magma.runtime.message_infrastructure.multiprocessing" not in sys.modules:
        multiprocessing.set_start_method(None, force=True)


def _run(plan: LavaPlan, data: dict[str, np.ndarray], n: int, steps: int, precision: str,
         quant: QuantizedPlan | None, workdir: Path, timeout_s: float | None, progress: bool,
         interrupts: _Interrupts) -> int:
    """Build, compile and run; returns the number of Lava steps. Recordings land in ``workdir``."""
    _allow_lava_fork()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    procs = _stream_types()
    net = build_network(plan, steps, precision, quant)
    extra = []
    for name, ports in net.input_ports.items():
        src = procs["StreamSource"](path=str(workdir / f"in_{name}.npy"), shape=(plan.units[name].size,))
        for port in ports:
            src.s_out.connect(port)
        extra.append(src)
    deepest = max(net.spike_ports, key=lambda n: plan.units[n].latency)
    total = n * steps + plan.max_latency
    for name, port in net.spike_ports.items():
        rec = procs["StreamRecorder"](path=str(workdir / f"rec_{name}.npy"), shape=(plan.units[name].size,),
                                      latency=plan.units[name].latency,
                                      progress=str(workdir / "progress.npy") if name == deepest else "")
        port.connect(rec.s_in)
        extra.append(rec)
    model_map = net.model_map()
    for proc in extra:
        model_map[proc] = model_map[type(proc)] = procs["models"][(type(proc), precision)]
    cfg = Loihi2SimCfg(select_tag="floating_pt" if precision == "float" else "fixed_pt",
                       exception_proc_model_map=model_map)
    counter = np.load(workdir / "progress.npy", mmap_mode="r")
    anchor = extra[0]
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        interrupts.check()
        anchor.run(condition=RunSteps(num_steps=total, blocking=False), run_cfg=cfg)
        with progress_bar(total=total, desc=f"lava {precision}", unit="step", enabled=progress) as bar:
            while int(counter[0]) < total:
                interrupts.check()
                if deadline is not None and time.monotonic() > deadline:
                    raise UserError(f"Lava simulation exceeded timeout_s={timeout_s:g} after {int(counter[0])} of "
                                    f"{total} steps; raise the timeout or simulate fewer samples")
                bar.update(int(counter[0]) - bar.n)
                time.sleep(POLL_S)
            bar.update(total - bar.n)
        anchor.wait()
    finally:
        interrupts.shield()
        _stop_runtime(anchor)
    return total


def simulate_graph(graph: nir.NIRGraph, inputs: dict[str, np.ndarray], precision: str = "float",
                   dt: float | None = None, timeout_s: float | None = None, progress: bool = True) -> LavaRun:
    """Simulate ``graph`` in Lava on ``inputs[name] -> [N, T, *shape]`` (one per Input node).

    precision: "float" (float64 models, spike-for-spike with the reference executor) or "fixed"
    (bit-accurate Loihi models on quantised parameters, see ``converters.quantize``).
    """
    if precision not in PRECISIONS:
        raise UserError(f"precision {precision!r} is not supported; choose one of {', '.join(PRECISIONS)}")
    start = time.perf_counter()
    plan = plan_graph(graph, dt)
    data, n, steps = check_inputs(plan, inputs)
    quant = quantize_plan(plan, data) if precision == "fixed" else None
    workdir = Path(tempfile.mkdtemp(prefix="iemf-lava-"))
    resource_tracker.ensure_running()  # Lava's shared memory needs it: a child that must outlive the run
    before = _children()
    try:
        for name, x in data.items():
            flat = x.reshape(n, steps, -1)
            np.save(workdir / f"in_{name}.npy", quantize_inputs(flat, quant.inputs[name]) if quant else flat)
        for name, unit in plan.neurons.items():
            dtype = np.uint8 if unit.neuron.spiking else (np.float64 if quant is None else np.int32)
            np.lib.format.open_memmap(workdir / f"rec_{name}.npy", mode="w+", dtype=dtype,
                                      shape=(n, steps, unit.size)).flush()
        np.save(workdir / "progress.npy", np.zeros(1, dtype=np.int64))
        with _Interrupts().installed() as interrupts:
            try:
                total = _run(plan, data, n, steps, precision, quant, workdir, timeout_s, progress, interrupts)
            finally:
                interrupts.shield()
                _reap(before)
        spikes, voltages = {}, {}
        for name, unit in plan.neurons.items():
            rec = np.load(workdir / f"rec_{name}.npy").reshape(n, steps, *unit.shape)
            if unit.neuron.spiking:
                spikes[name] = rec
            else:
                scale = 1.0 if quant is None else 64.0 * quant.layers[name].lam
                voltages[name] = rec.astype(np.float64) / scale
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    outputs = {}
    for out, unit in plan.outputs.items():
        outputs[out] = spikes.get(unit, voltages.get(unit, data.get(unit)))
    wall = time.perf_counter() - start
    return LavaRun(outputs=outputs, spikes=spikes, voltages=voltages, steps=total, latency=plan.max_latency,
                   samples_per_s=n / wall, wall_s=wall, precision=precision,
                   quantization=quant.report(plan) if quant else {})
