"""The small Lava Process/ProcessModel pairs that ``nir_to_lava.build_network`` adds to Lava's own.

    SynapseDense / SynapseSparse   Dense / Sparse whose output carries a bias each step; on recurrent edges the
                                   value in flight at the target's window start is replaced by the bias alone
    SynapseConv                    the same for a ``nir_to_lava.ConvChain``: convolutions, pools and a trailing
                                   Linear run as weight-sharing ops in one process (one step, like a Dense),
                                   so memory grows with the kernel, not with the image squared
    LIFPerNeuron                   LIFReset with one du, dv and vth per neuron (heterogeneous populations)
    LIVoltage                      LIFPerNeuron that never spikes and sends its membrane voltage v (LI, CubaLI)
    DelayLine                      out[step] = in[step - delay]: aligns branches of unequal depth
    PyConvFloat64 / PyConvFixed    CPU models for Lava's own Conv process (the hardware-ready build): Lava's
                                   float model computes in float32 and its fixed one ignores weight_exp,
                                   which the chip applies; these do what the chip does, in float64 / integers

Each has a float model and a bit-accurate fixed-point model. ``MODELS`` maps (process class, precision) to
the model for these and for the Lava processes used as they are, so a build names every model and Lava
skips its slow directory search. Imports Lava at module level: import this module only where Lava runs.
"""

from __future__ import annotations

import numpy as np
import torch
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.conv.process import Conv
from lava.proc.dense.models import (PyDelayDenseModelBitAcc, PyDelayDenseModelFloat, PyDenseModelBitAcc,
                                    PyDenseModelFloat)
from lava.proc.dense.process import DelayDense, Dense
from lava.proc.lif.models import PyLifResetModelBitAcc, PyLifResetModelFloat
from lava.proc.lif.process import LIFReset
from lava.proc.sparse.models import PySparseModelBitAcc, PySparseModelFloat
from lava.proc.sparse.process import Sparse


def _synapse_vars(proc: AbstractProcess, bias: np.ndarray, reset_interval: int, reset_offset: int) -> None:
    proc.bias = Var(shape=(proc.a_out.shape[0],), init=bias)
    proc.proc_params["reset_interval"] = reset_interval
    proc.proc_params["reset_offset"] = reset_offset


class SynapseDense(Dense):
    """Dense with a per-step bias; with ``reset_interval`` > 0 (recurrent edges) the value in flight at the
    target's window start is the bias alone (no spike of the previous sample crosses into the next)."""

    def __init__(self, *, weights, bias, reset_interval=0, reset_offset=0, **kwargs):
        super().__init__(weights=weights, **kwargs)
        _synapse_vars(self, bias, reset_interval, reset_offset)


class SynapseSparse(Sparse):
    """Sparse with the bias and window reset of ``SynapseDense``."""

    def __init__(self, *, weights, bias, reset_interval=0, reset_offset=0, **kwargs):
        super().__init__(weights=weights, **kwargs)
        _synapse_vars(self, bias, reset_interval, reset_offset)


class _SynapseStep:
    """a_buff <- W s + bias; at a recurrent window start, the buffered value sent now is the bias only."""

    def run_spk(self):
        interval = self.proc_params["reset_interval"]
        if interval and self.time_step % interval == self.proc_params["reset_offset"] % interval:
            self.a_buff = np.zeros_like(self.a_buff) + self.bias
        super().run_spk()
        self.a_buff = self.a_buff + self.bias


class PySynapseDenseFloat(_SynapseStep, PyDenseModelFloat):
    bias: np.ndarray = LavaPyType(np.ndarray, float)


class PySynapseDenseFixed(_SynapseStep, PyDenseModelBitAcc):
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32)


class PySynapseSparseFloat(_SynapseStep, PySparseModelFloat):
    bias: np.ndarray = LavaPyType(np.ndarray, float)


class PySynapseSparseFixed(_SynapseStep, PySparseModelBitAcc):
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32)


class SynapseConv(AbstractProcess):
    """``a_out = chain(s_in) * 2**weight_exp + bias`` (fixed: the flooring shift of Lava's Dense), buffered one
    step and reset on recurrent edges as ``SynapseDense``. The ops are stateless process parameters."""

    def __init__(self, *, chain, bias, weight_exp=0, reset_interval=0, reset_offset=0, name=None):
        super().__init__(chain=chain, weight_exp=weight_exp, name=name)
        self.s_in = InPort(shape=(chain.in_size,))
        self.a_out = OutPort(shape=(chain.out_size,))
        self.a_buff = Var(shape=(chain.out_size,), init=0)
        _synapse_vars(self, bias, reset_interval, reset_offset)


class _ConvStep(PyLoihiProcessModel):
    """Sends the buffered value, then buffers ``chain(s_in)`` (zero input: zero, without the ops)."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        torch.set_num_threads(1)  # one of many Lava processes: their threads would only contend for the cores
        self.chain = proc_params["chain"]
        self.scale = 2.0 ** proc_params["weight_exp"]

    def run_spk(self):
        self.a_out.send(self.a_buff)
        s_in = self.s_in.recv()
        acc = self.chain.apply(s_in[None])[0] if s_in.any() else np.zeros(self.a_buff.shape)
        self.a_buff = self.accumulated(acc)


@implements(proc=SynapseConv, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySynapseConvFloat(_SynapseStep, _ConvStep):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_buff: np.ndarray = LavaPyType(np.ndarray, float)
    bias: np.ndarray = LavaPyType(np.ndarray, float)

    def accumulated(self, acc):
        return acc


@implements(proc=SynapseConv, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySynapseConvFixed(_SynapseStep, _ConvStep):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=16)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32)

    def accumulated(self, acc):
        """Integer sums (exact in float64) shifted as ``iemf_neuro.models.fixed_point.shift``."""
        return np.floor(acc * self.scale).astype(np.int32)


class LIFPerNeuron(LIFReset):
    """LIFReset whose du, dv and vth are per-neuron Vars (Lava declares one per population), for populations
    with heterogeneous time constants or thresholds. Its models are Lava's LIFReset models with these Vars
    typed as arrays: their arithmetic is elementwise numpy, so it broadcasts per neuron as it stands."""

    def __init__(self, *, shape, du, dv, vth, **kwargs):
        super().__init__(shape=shape, du=du, dv=dv, vth=vth, **kwargs)
        self.du = Var(shape=shape, init=du)
        self.dv = Var(shape=shape, init=dv)
        self.vth = Var(shape=shape, init=vth)


class PyLIFPerNeuronFloat(PyLifResetModelFloat):
    du: np.ndarray = LavaPyType(np.ndarray, float)
    dv: np.ndarray = LavaPyType(np.ndarray, float)
    vth: np.ndarray = LavaPyType(np.ndarray, float)


class PyLIFPerNeuronFixed(PyLifResetModelBitAcc):
    du: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
    dv: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=17)


class LIVoltage(LIFPerNeuron):
    """LIFPerNeuron that never spikes and sends its membrane voltage v each step (LI / CubaLI outputs)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.v_out = OutPort(shape=self.s_out.shape)


class _VoltageStep:
    def spiking_activation(self):
        return np.zeros(self.v.shape, dtype=bool)

    def run_spk(self):
        super().run_spk()
        self.v_out.send(self.v)


class PyLIVoltageFloat(_VoltageStep, PyLIFPerNeuronFloat):
    v_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)


class PyLIVoltageFixed(_VoltageStep, PyLIFPerNeuronFixed):
    v_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)


class DelayLine(AbstractProcess):
    """out[step] = in[step - delay] (delay >= 1): aligns branches of unequal depth before a merge."""

    def __init__(self, *, shape: tuple[int, ...], delay: int):
        super().__init__(shape=shape, delay=delay)
        self.s_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.buffer = Var(shape=(delay,) + tuple(shape), init=0)


class _DelayStep(PyLoihiProcessModel):
    def run_spk(self):
        self.s_out.send(self.buffer[0])
        self.buffer = np.concatenate([self.buffer[1:], self.s_in.recv()[None]])


@implements(proc=DelayLine, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyDelayLineFloat(_DelayStep):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    buffer: np.ndarray = LavaPyType(np.ndarray, float)


@implements(proc=DelayLine, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyDelayLineFixed(_DelayStep):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)
    buffer: np.ndarray = LavaPyType(np.ndarray, np.int32)


class _LavaConvStep(PyLoihiProcessModel):
    """Lava's Conv: sends the buffered value, then buffers the convolution of s_in [W, H, C] with the kernel
    [C_out, kw, kh, C_in / groups], which Lava flips spatially (a convolution, not a correlation)."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        torch.set_num_threads(1)
        self.kernel = None  # the weights as torch correlates them, made once (they are static)

    def run_spk(self):
        self.a_out.send(self.a_buf)
        s_in = self.s_in.recv()
        if not s_in.any():
            self.a_buf = np.zeros(self.a_buf.shape, dtype=self.a_buf.dtype)
            return
        if self.kernel is None:
            self.kernel = torch.from_numpy(np.ascontiguousarray(self.weight[:, ::-1, ::-1].transpose(0, 3, 2, 1),
                                                                dtype=np.float64))
        x = torch.from_numpy(np.asarray(s_in, dtype=np.float64).transpose(2, 1, 0))[None]
        acc = torch.nn.functional.conv2d(x, self.kernel, None, tuple(self.stride[::-1]), tuple(self.padding[::-1]),
                                         tuple(self.dilation[::-1]), int(self.groups[0]))[0].numpy().transpose(2, 1, 0)
        self.a_buf = self.accumulated(acc)


class _ConvVars:
    kernel_size: np.ndarray = LavaPyType(np.ndarray, np.int8, precision=8)
    stride: np.ndarray = LavaPyType(np.ndarray, np.int8, precision=8)
    padding: np.ndarray = LavaPyType(np.ndarray, np.int8, precision=8)
    dilation: np.ndarray = LavaPyType(np.ndarray, np.int8, precision=8)
    groups: np.ndarray = LavaPyType(np.ndarray, np.int8, precision=8)
    num_message_bits: np.ndarray = LavaPyType(np.ndarray, np.int8, precision=5)
    weight_exp: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)
    num_weight_bits: np.ndarray = LavaPyType(np.ndarray, np.int8, precision=5)


@implements(proc=Conv, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyConvFloat64(_ConvVars, _LavaConvStep):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_buf: np.ndarray = LavaPyType(np.ndarray, float)
    weight: np.ndarray = LavaPyType(np.ndarray, float)

    def accumulated(self, acc):
        return acc


@implements(proc=Conv, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyConvFixed(_ConvVars, _LavaConvStep):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    a_buf: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    weight: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)

    def accumulated(self, acc):
        """Integer sums (exact in float64), shifted by weight_exp as Dense's bit-accurate model does."""
        return np.floor(acc * 2.0 ** int(self.weight_exp[0])).astype(np.int32)


MODELS = {
    (SynapseDense, "float"): PySynapseDenseFloat, (SynapseDense, "fixed"): PySynapseDenseFixed,
    (SynapseSparse, "float"): PySynapseSparseFloat, (SynapseSparse, "fixed"): PySynapseSparseFixed,
    (SynapseConv, "float"): PySynapseConvFloat, (SynapseConv, "fixed"): PySynapseConvFixed,
    (LIFPerNeuron, "float"): PyLIFPerNeuronFloat, (LIFPerNeuron, "fixed"): PyLIFPerNeuronFixed,
    (LIVoltage, "float"): PyLIVoltageFloat, (LIVoltage, "fixed"): PyLIVoltageFixed,
    (DelayLine, "float"): PyDelayLineFloat, (DelayLine, "fixed"): PyDelayLineFixed,
    (LIFReset, "float"): PyLifResetModelFloat, (LIFReset, "fixed"): PyLifResetModelBitAcc,
    (Dense, "float"): PyDenseModelFloat, (Dense, "fixed"): PyDenseModelBitAcc,
    (Sparse, "float"): PySparseModelFloat, (Sparse, "fixed"): PySparseModelBitAcc,
    (DelayDense, "float"): PyDelayDenseModelFloat, (DelayDense, "fixed"): PyDelayDenseModelBitAcc,
    (Conv, "float"): PyConvFloat64, (Conv, "fixed"): PyConvFixed,
}
