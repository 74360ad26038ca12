"""The reference executor against hand-written numpy loops on hand-built graphs."""

import nir
import numpy as np
import pytest
import torch

from converters.nir_executor import run_graph
from iemf_neuro.errors import UserError

META = {"dt": 1.0, "reset": "zero"}


def full(shape, value):
    return np.full(shape, float(value))


def lif_node(shape, beta, thr=1.0):
    tau = 1.0 / (1.0 - beta)
    return nir.LIF(tau=full(shape, tau), r=full(shape, tau), v_leak=full(shape, 0), v_threshold=full(shape, thr))


def np_lif(current, beta, thr=1.0):
    """v = beta v + I; s = v > thr; v <- 0 where s.  current: [N, T, ...]."""
    v = np.zeros_like(current[:, 0])
    out = np.zeros_like(current)
    for t in range(current.shape[1]):
        v = beta * v + current[:, t]
        s = v > thr
        v = np.where(s, 0.0, v)
        out[:, t] = s
    return out


def test_recurrent_cuba_lif_with_bias():
    rng = np.random.default_rng(0)
    n_in, n, N, T = 3, 5, 4, 12
    W, b, Wr = rng.normal(size=(n, n_in)), rng.normal(size=n) * 0.3, rng.normal(size=(n, n)) * 0.6
    alpha, beta = 0.5, 0.75
    cuba = nir.CubaLIF(tau_syn=full(n, 2), tau_mem=full(n, 4), r=full(n, 4), v_leak=full(n, 0),
                       v_threshold=full(n, 1), w_in=full(n, 2))
    g = nir.NIRGraph(nodes={"in": nir.Input(np.array([n_in])), "ff": nir.Affine(W, b), "lif": cuba,
                            "rec": nir.Linear(Wr), "out": nir.Output(np.array([n]))},
                     edges=[("in", "ff"), ("ff", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")],
                     metadata=META)
    x = rng.random((N, T, n_in)) * 2
    run = run_graph(g, {"in": x})
    u, v, s_prev = np.zeros((N, n)), np.zeros((N, n)), np.zeros((N, n))
    expected = np.zeros((N, T, n))
    for t in range(T):
        current = (x[:, t] @ W.T + b) + s_prev @ Wr.T
        u = alpha * u + current
        v = beta * v + u
        s = v > 1.0
        v = np.where(s, 0.0, v)
        expected[:, t] = s_prev = s
    assert expected.sum() > 5 and expected.sum() < expected.size - 5
    np.testing.assert_array_equal(run.spikes["lif"].numpy(), expected)
    np.testing.assert_array_equal(run.outputs["out"].numpy(), expected)


def np_conv2d(x, w, b, pad):
    N, C, H, W = x.shape
    O, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((N, O, H + 2 * pad - k + 1, W + 2 * pad - k + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = np.einsum("ncij,ocij->no", xp[:, :, i:i + k, j:j + k], w) + b
    return out


def test_conv2d_sumpool_if():
    rng = np.random.default_rng(1)
    N, T = 3, 6
    w, b = rng.normal(size=(2, 1, 3, 3)) * 0.5, rng.normal(size=2) * 0.1
    shape = (2, 3, 3)
    g = nir.NIRGraph(nodes={"in": nir.Input(np.array([1, 6, 6])),
                            "conv": nir.Conv2d((6, 6), w, 1, 1, 1, 1, b),
                            "pool": nir.SumPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
                            "if": nir.IF(r=full(shape, 1), v_threshold=full(shape, 1)),
                            "out": nir.Output(np.array(shape))},
                     edges=[("in", "conv"), ("conv", "pool"), ("pool", "if"), ("if", "out")], metadata=META)
    x = (rng.random((N, T, 1, 6, 6)) < 0.5).astype(float)
    run = run_graph(g, {"in": x}, dt=0.5)  # IF: v += r dt I
    v = np.zeros((N, *shape))
    expected = np.zeros((N, T, *shape))
    for t in range(T):
        c = np_conv2d(x[:, t], w, b, 1)
        pooled = c.reshape(N, 2, 3, 2, 3, 2).sum(axis=(3, 5))
        v = v + 0.5 * pooled
        s = v > 1.0
        v = np.where(s, 0.0, v)
        expected[:, t] = s
    assert 0 < expected.sum() < expected.size
    np.testing.assert_array_equal(run.spikes["if"].numpy(), expected)


def test_two_inputs_merge_with_unequal_depth_and_flatten():
    rng = np.random.default_rng(2)
    N, T = 4, 10
    wa1, ba1 = rng.normal(size=(6, 8)), rng.normal(size=6) * 0.2
    wa2, wb = rng.normal(size=(5, 6)), rng.normal(size=(5, 3))
    g = nir.NIRGraph(nodes={"a": nir.Input(np.array([2, 4])), "b": nir.Input(np.array([3])),
                            "flat": nir.Flatten(np.array([2, 4]), start_dim=0, end_dim=-1),
                            "a1": nir.Affine(wa1, ba1), "la": lif_node(6, 0.5),
                            "a2": nir.Linear(wa2), "bw": nir.Linear(wb), "merge": lif_node(5, 0.875),
                            "out": nir.Output(np.array([5]))},
                     edges=[("a", "flat"), ("flat", "a1"), ("a1", "la"), ("la", "a2"), ("a2", "merge"),
                            ("b", "bw"), ("bw", "merge"), ("merge", "out")], metadata=META)
    xa, xb = rng.random((N, T, 2, 4)) * 1.5, rng.random((N, T, 3))
    run = run_graph(g, {"a": torch.as_tensor(xa), "b": xb})
    s_a = np_lif(xa.reshape(N, T, 8) @ wa1.T + ba1, 0.5)
    expected = np_lif(s_a @ wa2.T + xb @ wb.T, 0.875)
    assert 0 < expected.sum() < expected.size and 0 < s_a.sum()
    np.testing.assert_array_equal(run.spikes["la"].numpy(), s_a)
    np.testing.assert_array_equal(run.spikes["merge"].numpy(), expected)
    run32 = run_graph(g, {"a": xa, "b": xb}, dtype=torch.float32)
    assert run32.spikes["merge"].dtype == torch.float32


def test_flatten_indices_exclude_batch():
    g = nir.NIRGraph(nodes={"in": nir.Input(np.array([2, 3, 4])), "flat": nir.Flatten(np.array([2, 3, 4]), 1, 2),
                            "out": nir.Output(np.array([2, 12]))},
                     edges=[("in", "flat"), ("flat", "out")], metadata=META)
    x = np.arange(2 * 24, dtype=float).reshape(2, 1, 2, 3, 4).repeat(2, axis=1)
    out = run_graph(g, {"in": x}).outputs["out"]
    assert out.shape == (2, 2, 2, 12)
    np.testing.assert_array_equal(out.numpy(), x.reshape(2, 2, 2, 12))


def test_li_outputs_voltage_and_delay_shifts():
    n = 2
    g = nir.NIRGraph(nodes={"in": nir.Input(np.array([n])), "d": nir.Delay(np.array([0.0, 2.0])),
                            "li": nir.LI(tau=full(n, 2), r=full(n, 2), v_leak=full(n, 0)),
                            "out": nir.Output(np.array([n]))},
                     edges=[("in", "d"), ("d", "li"), ("li", "out")], metadata=META)
    x = np.zeros((1, 5, n))
    x[0, 0] = 1.0
    run = run_graph(g, {"in": x}, record_voltages=True)
    np.testing.assert_array_equal(run.spikes["li"][0, :, 0].numpy(), [1, 0.5, 0.25, 0.125, 0.0625])
    np.testing.assert_array_equal(run.spikes["li"][0, :, 1].numpy(), [0, 0, 1, 0.5, 0.25])
    np.testing.assert_array_equal(run.voltages["li"].numpy(), run.spikes["li"].numpy())


def test_cycle_without_neuron_is_rejected():
    g = nir.NIRGraph(nodes={"in": nir.Input(np.array([2])), "w1": nir.Linear(np.eye(2)), "w2": nir.Linear(np.eye(2)),
                            "out": nir.Output(np.array([2]))},
                     edges=[("in", "w1"), ("w1", "w2"), ("w2", "w1"), ("w2", "out")], metadata=META, type_check=False)
    with pytest.raises(UserError, match="no neuron node"):
        run_graph(g, {"in": np.zeros((1, 2, 2))})


def test_bad_inputs_and_unsupported_nodes():
    g = nir.NIRGraph(nodes={"in": nir.Input(np.array([2])), "i": nir.I(r=np.ones(2)), "out": nir.Output(np.array([2]))},
                     edges=[("in", "i"), ("i", "out")], metadata=META)
    with pytest.raises(UserError, match="'i' has type I"):
        run_graph(g, {"in": np.zeros((1, 2, 2))})
    g2 = nir.NIRGraph(nodes={"in": nir.Input(np.array([2])), "l": lif_node(2, 0.5), "out": nir.Output(np.array([2]))},
                      edges=[("in", "l"), ("l", "out")], metadata=META)
    with pytest.raises(UserError, match=r"expected \[N, T, 2\]"):
        run_graph(g2, {"in": np.zeros((1, 2, 3))})
    with pytest.raises(UserError, match="Input nodes"):
        run_graph(g2, {"x": np.zeros((1, 2, 2))})


def test_two_neuron_loop_reads_previous_step_inside_the_cycle():
    """in -> a -> w_ab -> b -> w_ba -> a: both edges leaving a neuron inside the cycle carry step t-1."""
    rng = np.random.default_rng(3)
    N, T, n = 3, 9, 4
    w_in, w_ab, w_ba = rng.normal(size=(n, 2)) + 0.5, rng.normal(size=(n, n)) + 0.8, rng.normal(size=(n, n))
    g = nir.NIRGraph(nodes={"in": nir.Input(np.array([2])), "w_in": nir.Linear(w_in), "a": lif_node(n, 0.5),
                            "w_ab": nir.Linear(w_ab), "b": lif_node(n, 0.75), "w_ba": nir.Linear(w_ba),
                            "out": nir.Output(np.array([n]))},
                     edges=[("in", "w_in"), ("w_in", "a"), ("a", "w_ab"), ("w_ab", "b"), ("b", "w_ba"), ("w_ba", "a"),
                            ("b", "out")], metadata=META)
    x = rng.random((N, T, 2))
    run = run_graph(g, {"in": x})
    va, vb, sa, sb = (np.zeros((N, n)) for _ in range(4))
    exp_a, exp_b = np.zeros((N, T, n)), np.zeros((N, T, n))
    for t in range(T):
        va = 0.5 * va + (x[:, t] @ w_in.T + sb @ w_ba.T)
        vb = 0.75 * vb + sa @ w_ab.T
        sa, sb = (va > 1.0).astype(float), (vb > 1.0).astype(float)
        va, vb = np.where(sa > 0, 0.0, va), np.where(sb > 0, 0.0, vb)
        exp_a[:, t], exp_b[:, t] = sa, sb
    assert exp_a.sum() > 0 and exp_b.sum() > 0
    np.testing.assert_array_equal(run.spikes["a"].numpy(), exp_a)
    np.testing.assert_array_equal(run.spikes["b"].numpy(), exp_b)
