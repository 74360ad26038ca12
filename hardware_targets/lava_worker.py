"""The Lava half of a simulation: ``python -m hardware_targets.lava_worker WORKDIR``.

Lava forks one OS process per process model and shares memory between them. Run in a child of its own
process group (``hardware_targets.lava_sim``), all of that can be stopped by signalling the group, on any
POSIX system, without tracking Lava's processes; and the worker's fresh interpreter imports Lava whatever
the caller did before (a training run, torch.compile's workers, another multiprocessing start method).

WORKDIR holds ``job.pkl`` (plan, quantisation, N, T, precision), ``in_NAME.npy`` inputs and the
``rec_NAME.npy`` / ``progress.npy`` memory maps the recorders fill; the worker names its multiprocessing
temporary folder in ``tempdir.txt`` so that the caller can remove it after a SIGKILL. A UserError is written to
``error.txt`` and ends the worker with exit code 2. A caller killed outright (SIGKILL) cannot stop the
group, so the worker watches its parent and, once it is gone, stops, removes WORKDIR and exits.
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


class CallerGone(Exception):
    """The process that started the run died without stopping it (SIGKILL): nobody will read the results."""


def run_job(workdir: Path, parent: int) -> None:
    """Build, compile and run the job in ``workdir`` to its last step, or until ``parent`` is gone."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    from converters.nir_to_lava import build_network

    from .lava_stream import MODELS, StreamRecorder, StreamSource

    job = pickle.loads((workdir / "job.pkl").read_bytes())
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
