"""The two host processes of a streaming run: ``StreamSource`` feeds inputs, ``StreamRecorder`` records a layer.

Data never moves through ``Var.get``: the source reads ``[N, T, size]`` from a ``.npy`` memory map and the
recorder writes straight into another one, so a run of any length costs one compile. Imports Lava at module
level: only ``hardware_targets.lava_worker`` imports this module.
"""

from __future__ import annotations

import numpy as np
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
    """Writes what arrives at step ``k*T + t + latency + 1`` to ``[N, T, size]`` row (k, t) of a .npy memory
    map; optionally the last step seen to a progress file (the caller's watchdog and progress bar)."""

    def __init__(self, *, path: str, shape: tuple[int, ...], latency: int, progress: str = ""):
        super().__init__(path=path, shape=shape, latency=latency, progress=progress)
        self.s_in = InPort(shape=shape)


class _SourceModel(PyLoihiProcessModel):
    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.data = np.load(proc_params["path"], mmap_mode="r")
        self.zero = np.zeros(self.data.shape[2:], dtype=self.data.dtype)

    def run_spk(self):
        k, t = divmod(self.time_step - 1, self.data.shape[1])
        self.s_out.send(np.array(self.data[k, t]) if k < self.data.shape[0] else self.zero)


class _RecorderModel(PyLoihiProcessModel):
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


@implements(proc=StreamSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyStreamSourceFloat(_SourceModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)


@implements(proc=StreamSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyStreamSourceFixed(_SourceModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)


@implements(proc=StreamRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyStreamRecorderFloat(_RecorderModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)


@implements(proc=StreamRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyStreamRecorderFixed(_RecorderModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)


MODELS = {(StreamSource, "float"): PyStreamSourceFloat, (StreamSource, "fixed"): PyStreamSourceFixed,
          (StreamRecorder, "float"): PyStreamRecorderFloat, (StreamRecorder, "fixed"): PyStreamRecorderFixed}
