"""The Lava half of a simulation: ``python -m hardware_targets.lava_worker WORKDIR``.

Lava forks one OS process per process model and shares memory between them. Run in a child of its own
process group (``hardware_targets.lava_sim``), all of that can be stopped by signalling the group, on any
POSIX system, without tracking Lava's processes; and the worker's fresh interpreter imports Lava whatever
the caller did before (a training run, torch.compile's workers, another multiprocessing start method).

WORKDIR holds ``job.pkl`` (plan, quantisation, N, T, precision, and for the hardware-ready build its
``converters.loihi2_ready.ReadyPlan``), ``in_NAME.npy`` inputs and the ``rec_NAME.npy`` / ``progress.npy``
memory maps the recorders fill (the hardware-ready build uses Lava's own I/O processes instead: it runs in
chunks, counts progress itself and copies the sinks' buffers into the memory maps at the end); the worker
names its multiprocessing temporary folder in ``tempdir.txt`` so that the caller can remove it after a
SIGKILL. A UserError is written to ``error.txt`` and ends the worker with exit code 2. A caller killed
outright (SIGKILL) cannot stop the group, so the worker watches its parent and, once it is gone, stops,
removes WORKDIR and exits.
"""

from __future__ import annotations

import multiprocessing.util
import os
import pickle
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from iemf_neuro.errors import UserError

POLL_S = 0.05
CHUNKS = 50  # the hardware-ready build runs in about this many blocking chunks (progress, parent check)


class CallerGone(Exception):
    """The process that started the run died without stopping it (SIGKILL): nobody will read the results."""


def run_job(workdir: Path, parent: int) -> None:
    """Build, compile and run the job in ``workdir`` to its last step, or until ``parent`` is gone."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    from converters.nir_to_lava import build_network

    from .lava_stream import MODELS, StreamRecorder, StreamSource

    job = pickle.loads((workdir / "job.pkl").read_bytes())
    if job.get("ready") is not None:
        return run_ready_job(workdir, parent, job)
    plan, quant, n, steps, precision = job["plan"], job["quant"], job["n"], job["steps"], job["precision"]
    net = build_network(plan, steps, precision, quant)
    extra = []
    for name, ports in net.input_ports.items():
        src = StreamSource(path=str(workdir / f"in_{name}.npy"), shape=(plan.units[name].size,))
        for port in ports:
            src.s_out.connect(port)
        extra.append(src)
    deepest = max(net.spike_ports, key=lambda name: plan.units[name].latency)
    for name, port in net.spike_ports.items():
        rec = StreamRecorder(path=str(workdir / f"rec_{name}.npy"), shape=(plan.units[name].size,),
                             latency=plan.units[name].latency,
                             progress=str(workdir / "progress.npy") if name == deepest else "")
        port.connect(rec.s_in)
        extra.append(rec)
    model_map = net.model_map()
    for proc in extra:
        model_map[proc] = model_map[type(proc)] = MODELS[(type(proc), precision)]
    cfg = Loihi2SimCfg(select_tag="floating_pt" if precision == "float" else "fixed_pt",
                       exception_proc_model_map=model_map)
    anchor, total = extra[0], n * steps + plan.max_latency
    counter = np.load(workdir / "progress.npy", mmap_mode="r")
    anchor.run(condition=RunSteps(num_steps=total, blocking=False), run_cfg=cfg)
    try:
        while int(counter[0]) < total:  # a caller killed with SIGKILL cannot stop us: stop with it
            if os.getppid() != parent:
                raise CallerGone
            time.sleep(POLL_S)
        anchor.wait()
    finally:
        anchor.stop()


def run_ready_job(workdir: Path, parent: int, job: dict) -> None:
    """The hardware-ready build, fed by Lava's source RingBuffer and read by its sink RingBuffer and Monitor
    (the I/O Lava provides at a chip's boundary); results go to the same memory maps as a streaming run's."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io import sink, source
    from lava.proc.monitor.process import Monitor

    from converters.lava_processes import MODELS
    from converters.loihi2_ready import build_ready_network

    ready, plan, n, steps, precision = job["ready"], job["plan"], job["n"], job["steps"], job["precision"]
    net = build_ready_network(ready, plan, steps)
    total = n * steps + plan.max_latency
    io, sinks, monitors = [], {}, {}
    for name, ports in net["inputs"].items():
        flat = np.load(workdir / f"in_{name}.npy").reshape(n * steps, -1)[:, ready.orders[name]]
        data = np.zeros(ready.shapes[name] + (total,))
        data[..., :n * steps] = np.moveaxis(flat.reshape((n * steps,) + ready.shapes[name]), 0, -1)
        src = source.RingBuffer(data=data)
        for port, flatten in ports:
            (src.s_out.flatten() if flatten else src.s_out).connect(port)
        io.append(src)
    for name, port in net["records"].items():
        sinks[name] = sink.RingBuffer(shape=ready.shapes[name], buffer=total)
        port.connect(sinks[name].a_in)
        io.append(sinks[name])
    for name, proc in net["probed"].items():
        monitors[name] = Monitor()
        monitors[name].probe(proc.v, total)
    tag = "floating_pt" if precision == "float" else "fixed_pt"
    model_map = {}
    for proc in net["processes"]:
        model_map[proc] = model_map[type(proc)] = MODELS[(type(proc), precision)]
    io_models = {(source.RingBuffer, "float"): source.PySendModelFloat,
                 (source.RingBuffer, "fixed"): source.PySendModelFixed,
                 (sink.RingBuffer, "float"): sink.PyReceiveModelFloat,
                 (sink.RingBuffer, "fixed"): sink.PyReceiveModelFixed}
    for proc in io:
        model_map[proc] = model_map[type(proc)] = io_models[(type(proc), precision)]
    cfg = Loihi2SimCfg(select_tag=tag, exception_proc_model_map=model_map)
    counter = np.load(workdir / "progress.npy", mmap_mode="r+")
    anchor, done = net["processes"][0], 0
    try:
        while done < total:
            if os.getppid() != parent:
                raise CallerGone
            chunk = min(max(steps, total // CHUNKS), total - done)
            anchor.run(condition=RunSteps(num_steps=chunk), run_cfg=cfg)
            done += chunk
            counter[0] = done
        buffers = {name: s.data.get() for name, s in sinks.items()}
        buffers.update({name: np.moveaxis(m.get_data()[net["probed"][name].name]["v"], 0, -1)
                        for name, m in monitors.items()})
    finally:
        anchor.stop()
    for name, data in buffers.items():
        unit, lava_shape = plan.units[name], ready.shapes[name]
        by_step = np.moveaxis(data.reshape(lava_shape + (total,)), -1, 0).reshape(total, -1)
        nir_flat = np.empty_like(by_step)
        nir_flat[:, ready.orders[name]] = by_step
        rec = np.load(workdir / f"rec_{name}.npy", mmap_mode="r+")
        rec[:] = nir_flat[unit.latency:unit.latency + n * steps].reshape(rec.shape)
        rec.flush()


def main(argv: list[str]) -> int:
    workdir, parent = Path(argv[0]), os.getppid()
    (workdir / "tempdir.txt").write_text(multiprocessing.util.get_temp_dir())  # Lava's forks share it
    try:
        run_job(workdir, parent)
    except UserError as exc:
        (workdir / "error.txt").write_text(str(exc))
        return 2
    except CallerGone:
        shutil.rmtree(workdir, ignore_errors=True)  # the caller would have removed it
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
