"""Cases shared by the test modules (importable from the subprocesses some tests start): small NIR graphs and
their inputs, the in-process CLI and its one-line error check, and reproducible hypothesis settings."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import nir
import numpy as np
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from pipeline.cli import main

FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=False,
                phases=(Phase.explicit, Phase.generate),  # no shrinking: a failure reports its input at once
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def fuzz(examples: int) -> settings:
    """Reproducible (derandomized, no example database), no per-example deadline, ``examples`` inputs."""
    return settings(FUZZ, max_examples=examples)


STEPS = 4
TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=16)


def neuron(kind: str, shape: tuple[int, ...], tau: float = 2.0):
    """A LIF (tau = 2: beta = 1/2) or CubaLIF population with exporter-style parameters (r = tau)."""
    full = lambda v: np.full(shape, v, dtype=np.float64)  # noqa: E731
    if kind == "lif":
        return nir.LIF(tau=full(tau), r=full(tau), v_leak=full(0), v_threshold=full(1), v_reset=full(0))
    return nir.CubaLIF(tau_mem=full(tau), tau_syn=full(tau), r=full(tau), v_leak=full(0), v_threshold=full(1),
                       v_reset=full(0), w_in=full(tau))


def small_graph(seed: int = 0) -> nir.NIRGraph:
    """Two inputs, a convolution, a recurrent CubaLIF fusion layer, a LIF output: every check has a target."""
    rng = np.random.default_rng(seed)
    nodes = {
        "audio": nir.Input(input_type={"input": np.array([6])}),
        "visual": nir.Input(input_type={"input": np.array([1, 4, 4])}),
        "visual.0.syn0": nir.Conv2d(input_shape=(4, 4), weight=rng.normal(0, 1, (2, 1, 3, 3)), stride=1,
                                    padding=1, dilation=1, groups=1, bias=np.zeros(2)),
        "visual.0": neuron("lif", (2, 4, 4)),
        "fusion.visual.syn0": nir.Flatten(start_dim=0, end_dim=-1, input_type={"input": np.array([2, 4, 4])}),
        "fusion.audio": nir.Affine(weight=rng.normal(0, 1, (5, 6)), bias=np.full(5, 0.1)),
        "fusion.visual": nir.Linear(weight=rng.normal(0, 0.5, (5, 32))),
        "fusion": neuron("cuba", (5,)),
        "fusion.rec": nir.Linear(weight=rng.normal(0, 0.3, (5, 5))),
        "output.syn0": nir.Affine(weight=rng.normal(0, 1, (3, 5)), bias=np.zeros(3)),
        "output": neuron("lif", (3,)),
        "output.spikes": nir.Output(output_type={"output": np.array([3])}),
    }
    edges = [("visual", "visual.0.syn0"), ("visual.0.syn0", "visual.0"), ("visual.0", "fusion.visual.syn0"),
             ("fusion.visual.syn0", "fusion.visual"), ("audio", "fusion.audio"), ("fusion.audio", "fusion"),
             ("fusion.visual", "fusion"), ("fusion", "fusion.rec"), ("fusion.rec", "fusion"),
             ("fusion", "output.syn0"), ("output.syn0", "output"), ("output", "output.spikes")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": 1.0, "reset": "zero"}, type_check=False)


def small_inputs(samples: int = 2, steps: int = STEPS, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"audio": rng.uniform(0, 1, (samples, steps, 6)), "visual": rng.uniform(0, 1, (samples, steps, 1, 4, 4))}


def recurrent_cuba(rng: np.random.Generator) -> nir.NIRGraph:
    """One recurrent CubaLIF population with a biased input projection."""
    n = 6
    return nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([4])}),
        "fc": nir.Affine(weight=rng.normal(0, 0.6, (n, 4)), bias=rng.normal(0, 0.2, n)),
        "cuba": nir.CubaLIF(tau_syn=np.full(n, 2.0), tau_mem=np.full(n, 8.0), r=np.full(n, 8.0),
                            v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n), w_in=np.full(n, 2.0)),
        "rec": nir.Linear(weight=rng.normal(0, 0.4, (n, n))),
        "out": nir.Output(output_type={"output": np.array([n])}),
    }, edges=[("in", "fc"), ("fc", "cuba"), ("cuba", "rec"), ("rec", "cuba"), ("cuba", "out")],
        metadata={"dt": 1.0})


def lif(n: int, tau=8.0, thr=1.0):
    return nir.LIF(tau=np.full(n, tau), r=np.full(n, tau), v_leak=np.zeros(n), v_threshold=np.full(n, thr),
                   v_reset=np.zeros(n))


def conv_pool_if(rng):
    return nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([1, 6, 6])}),
        "conv": nir.Conv2d(input_shape=(6, 6), weight=rng.normal(0, 0.5, (2, 1, 3, 3)), stride=1, padding=1,
                           dilation=1, groups=1, bias=rng.normal(0, 0.1, 2)),
        "if1": nir.IF(r=np.ones((2, 6, 6)), v_threshold=np.ones((2, 6, 6)), v_reset=np.zeros((2, 6, 6))),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "if2": nir.IF(r=np.ones((2, 3, 3)), v_threshold=np.full((2, 3, 3), 2.0), v_reset=np.zeros((2, 3, 3))),
        "out": nir.Output(output_type={"output": np.array([2, 3, 3])}),
    }, edges=[("in", "conv"), ("conv", "if1"), ("if1", "pool"), ("pool", "if2"), ("if2", "out")],
        metadata={"dt": 1.0})


def unequal_merge(rng):
    """audio: 2 neuron layers, visual: 1, merged in one population (latencies 2 and 1 -> a delay line)."""
    return nir.NIRGraph(nodes={
        "a": nir.Input(input_type={"input": np.array([5])}),
        "v": nir.Input(input_type={"input": np.array([3])}),
        "a1_w": nir.Affine(weight=rng.normal(0, 0.8, (6, 5)), bias=rng.normal(0, 0.1, 6)), "a1": lif(6),
        "a2_w": nir.Linear(weight=rng.normal(0, 0.8, (6, 6))), "a2": lif(6, tau=4.0),
        "v1_w": nir.Affine(weight=rng.normal(0, 0.8, (4, 3)), bias=np.zeros(4)), "v1": lif(4),
        "m_a": nir.Affine(weight=rng.normal(0, 0.7, (5, 6)), bias=rng.normal(0, 0.1, 5)),
        "m_v": nir.Linear(weight=rng.normal(0, 0.7, (5, 4))), "m": lif(5),
        "li_w": nir.Linear(weight=rng.normal(0, 0.7, (3, 5))),
        "li": nir.LI(tau=np.full(3, 2.0), r=np.full(3, 2.0), v_leak=np.zeros(3)),
        "out": nir.Output(output_type={"output": np.array([3])}),
    }, edges=[("a", "a1_w"), ("a1_w", "a1"), ("a1", "a2_w"), ("a2_w", "a2"), ("v", "v1_w"), ("v1_w", "v1"),
              ("a2", "m_a"), ("m_a", "m"), ("v1", "m_v"), ("m_v", "m"), ("m", "li_w"), ("li_w", "li"),
              ("li", "out")], metadata={"dt": 1.0})


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``iemf-neuro ARGV`` in-process; (exit code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


def assert_one_line_error(code: int, stderr: str) -> None:
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr


def simulate_argv(graph: Path, inputs: Path, out: Path) -> list[str]:
    return ["simulate", str(graph), "--inputs", str(inputs), "--steps", str(STEPS), "--out", str(out),
            "--no-progress"]


def grads_after_step(method: str):
    """One training step of avdigits-mlp with ``method`` at lr 0 on fixed random data (seeded generators): the
    network, every parameter's gradient after the step's modulation, and the step's statistics."""
    import torch

    from iemf_neuro.training.config import get_run_config
    from iemf_neuro.training.trainer import StepContext, build_net, train_step

    config = get_run_config("avdigits-mlp", method=method)
    net = build_net(config)
    ctx = StepContext(net, net, config, torch.optim.SGD(net.parameters(), lr=0.0), torch.Generator().manual_seed(5),
                      torch.Generator().manual_seed(9))
    data = torch.Generator().manual_seed(1)
    audio, image = torch.rand(32, 32, 32, generator=data), torch.rand(32, 8, 8, generator=data)
    labels = torch.randint(0, 10, (32,), generator=data)
    stats = train_step(ctx, audio, image, labels, epoch=0)
    return net, {n: p.grad.clone() for n, p in net.named_parameters()}, stats
