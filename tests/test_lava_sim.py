"""Lava simulation of NIR graphs: spike-for-spike against the reference executor, fixed point, errors, cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nir
import numpy as np
import pytest
from cases import STEPS, conv_pool_if, recurrent_cuba, small_graph, small_inputs, unequal_merge

from converters.nir_executor import run_graph
from converters.nir_to_lava import plan_graph
from converters.quantize import quantize_weights
from hardware_targets.lava_sim import simulate_graph
from iemf_neuro.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "iemf-neuro")


def executor_spikes(graph, inputs):
    ref = run_graph(graph, inputs)
    return {k: v.numpy() for k, v in ref.spikes.items()}, {k: v.numpy() for k, v in ref.outputs.items()}


@pytest.mark.parametrize("make", [recurrent_cuba, conv_pool_if, unequal_merge])
def test_float_matches_executor_spike_for_spike(make):
    rng = np.random.default_rng(1)
    graph = make(rng)
    inputs = {n: rng.uniform(0, 1.5, (4, 9, *np.atleast_1d(node.input_type["input"])))
              for n, node in graph.nodes.items() if isinstance(node, nir.Input)}
    ref_spikes, ref_out = executor_spikes(graph, inputs)
    run = simulate_graph(graph, inputs, progress=False)
    for name, spikes in run.spikes.items():
        assert spikes.shape == ref_spikes[name].shape
        assert ref_spikes[name].sum() > 0, f"{name} never spikes: the comparison would be vacuous"
        np.testing.assert_array_equal(spikes, ref_spikes[name].astype(np.uint8), err_msg=name)
    for name, out in run.outputs.items():
        np.testing.assert_allclose(out, ref_out[name], rtol=0, atol=1e-12)
    assert run.steps == 4 * 9 + run.latency


def test_stopping_a_run_spares_the_resource_tracker():
    """Stopping a run's Lava processes spares multiprocessing's resource tracker, which Lava's shared
    memory starts and which must outlive the run: a second run would otherwise warn that it died."""
    code = ("import numpy as np\nfrom cases import recurrent_cuba\n"
            "from hardware_targets.lava_sim import simulate_graph\n"
            "graph = recurrent_cuba(np.random.default_rng(1))\n"
            "inputs = {'in': np.random.default_rng(2).uniform(0, 1.5, (2, 5, 4))}\n"
            "for _ in range(2):\n    simulate_graph(graph, inputs, progress=False)\nprint('done')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0 and "done" in proc.stdout, proc.stderr[-2000:]
    assert "resource_tracker" not in proc.stderr, proc.stderr[-2000:]


def test_latencies_delay_the_shallow_branch():
    plan = plan_graph(unequal_merge(np.random.default_rng(0)))
    assert plan.units["a2"].latency == 2 and plan.units["v1"].latency == 1 and plan.units["m"].latency == 3
    delays = {(p.src, p.dst): p.delay for p in plan.projections}
    assert delays[("v1", "m")] == 1 and delays[("a2", "m")] == 0
    rec = plan_graph(recurrent_cuba(np.random.default_rng(0)))
    assert [p.recurrent for p in rec.projections if p.src == p.dst == "cuba"] == [True]


def test_fixed_point_tracks_float():
    rng = np.random.default_rng(2)
    graph = unequal_merge(rng)
    inputs = {"a": rng.uniform(0, 1, (6, 12, 5)), "v": rng.uniform(0, 1, (6, 12, 3))}
    ref_spikes, _ = executor_spikes(graph, inputs)
    run = simulate_graph(graph, inputs, precision="fixed", progress=False)
    for name, spikes in run.spikes.items():
        agreement = (spikes == ref_spikes[name]).mean()
        assert agreement > 0.9, f"{name}: fixed point agrees on only {agreement:.3f} of spike entries"
    for layer, q in run.quantization.items():
        assert q["threshold_rel_error"] < 1e-3
        assert all(p["weight_rel_error"] < 0.02 for p in q["projections"].values())


def test_power_of_two_gain_lives_in_the_exponent():
    w = np.random.default_rng(3).normal(size=(8, 8))
    m1, e1, _ = quantize_weights(w)
    m2, e2, _ = quantize_weights(w * 4.0)
    np.testing.assert_array_equal(m1, m2)
    assert e2 == e1 + 2
    assert np.all(m1 % 2 == 0) and m1.max() <= 254 and m1.min() >= -256


def test_unsupported_nodes_name_the_node():
    rng = np.random.default_rng(0)
    g = recurrent_cuba(rng)
    g.nodes["cuba"] = nir.CubaLIF(tau_syn=np.full(6, 2.0), tau_mem=np.full(6, 8.0), r=np.full(6, 8.0),
                                  v_leak=np.zeros(6), v_threshold=np.ones(6), v_reset=np.full(6, 0.5),
                                  w_in=np.full(6, 2.0))
    with pytest.raises(UserError, match="'cuba'.*v_reset"):
        plan_graph(g)
    g = recurrent_cuba(rng)
    g.nodes["rec"] = nir.Delay(delay=np.ones(6))
    with pytest.raises(UserError, match="Delay node 'rec'"):
        plan_graph(g)


def test_bad_inputs_are_user_errors():
    graph = recurrent_cuba(np.random.default_rng(0))
    with pytest.raises(UserError, match="Input nodes"):
        simulate_graph(graph, {"x": np.zeros((1, 3, 4))}, progress=False)
    with pytest.raises(UserError, match="shape"):
        simulate_graph(graph, {"in": np.zeros((1, 3, 5))}, progress=False)
    bad = np.zeros((1, 3, 4))
    bad[0, 1, 2] = np.nan
    with pytest.raises(UserError, match="NaN"):
        simulate_graph(graph, {"in": bad}, progress=False)


def _cli(*args, **kw):
    return subprocess.run([CLI, *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=300, **kw)


def test_cli_graph_form(tmp_path):
    rng = np.random.default_rng(4)
    graph = recurrent_cuba(rng)
    nir.write(tmp_path / "g.nir", graph)
    x = rng.uniform(0, 1.5, (3, 7, 4))
    np.savez(tmp_path / "x.npz", **{"in": x})
    res = _cli("simulate", tmp_path / "g.nir", "--inputs", tmp_path / "x.npz", "--steps", 7, "--out",
               tmp_path / "o.npz", "--no-progress")
    assert res.returncode == 0, res.stderr
    out = np.load(tmp_path / "o.npz")
    ref, _ = executor_spikes(graph, {"in": x})
    np.testing.assert_array_equal(out["out"], ref["cuba"])
    np.testing.assert_array_equal(out["count/cuba"], ref["cuba"].sum(axis=(1, 2)))
    conv = small_graph()  # a (2, 4, 4) convolution layer: counts are per sample, over steps and all neurons
    nir.write(tmp_path / "conv.nir", conv)
    np.savez(tmp_path / "xc.npz", **small_inputs(samples=3))
    res = _cli("simulate", tmp_path / "conv.nir", "--inputs", tmp_path / "xc.npz", "--steps", STEPS, "--out",
               tmp_path / "oc.npz", "--no-progress")
    assert res.returncode == 0, res.stderr
    ref, _ = executor_spikes(conv, small_inputs(samples=3))
    with np.load(tmp_path / "oc.npz") as out_conv:
        for layer, spikes in ref.items():
            np.testing.assert_array_equal(out_conv[f"count/{layer}"], spikes.reshape(3, -1).sum(axis=1))
    np.savez(tmp_path / "bad.npz", wrong=x)
    res = _cli("simulate", tmp_path / "g.nir", "--inputs", tmp_path / "bad.npz", "--steps", 7, "--out",
               tmp_path / "b.npz")
    assert res.returncode == 2 and "Input nodes" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    (tmp_path / "corrupt.nir").write_bytes(b"not a nir file")
    res = _cli("simulate", tmp_path / "corrupt.nir", "--inputs", tmp_path / "x.npz", "--steps", 7, "--out",
               tmp_path / "c.npz")
    assert res.returncode == 2 and "NIR file" in res.stderr
    assert not (tmp_path / "b.npz").exists() and not (tmp_path / "c.npz").exists()


def _descendants(pid: int) -> set[int]:
    out, frontier = set(), [pid]
    while frontier:
        p = frontier.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = {int(c) for c in (task / "children").read_text().split()}
            except OSError:
                continue
            frontier.extend(kids - out)
            out |= kids
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_killed_simulation_leaves_no_children_and_no_output(tmp_path, sig, interruptible):
    rng = np.random.default_rng(5)
    graph = recurrent_cuba(rng)
    nir.write(tmp_path / "g.nir", graph)
    np.savez(tmp_path / "x.npz", **{"in": rng.uniform(0, 1, (4000, 10, 4))})
    proc = subprocess.Popen([CLI, "simulate", str(tmp_path / "g.nir"),
                             "--inputs", str(tmp_path / "x.npz"), "--steps", "10", "--out", str(tmp_path / "o.npz"),
                             "--no-progress"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=interruptible)
    children: set[int] = set()
    deadline = time.monotonic() + 180
    while len(children) < 5 and time.monotonic() < deadline and proc.poll() is None:  # wait for Lava's forks
        children |= _descendants(proc.pid)
        time.sleep(0.2)
    assert proc.poll() is None, f"the simulation exited early: {proc.communicate()[1].decode()[-2000:]}"
    assert len(children) >= 5, "the simulation never started its Lava processes"
    time.sleep(1.0)
    children |= _descendants(proc.pid)
    assert proc.poll() is None, "the simulation finished before it could be interrupted"
    os.kill(proc.pid, sig)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    time.sleep(0.5)
    assert not [c for c in children if _alive(c)], "Lava child processes outlived the interrupted simulation"
    assert not list(tmp_path.glob("o*.npz")) and not list(tmp_path.glob(".o.npz*"))
