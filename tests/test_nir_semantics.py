"""Discretisation of NIR neurons: the exporter's convention is exact, other conventions keep their gains."""

import nir
import numpy as np
import pytest

from converters.nir_semantics import discretize, graph_dt, graph_metadata, graph_reset
from iemf_neuro.errors import UserError


def lif(tau, r, v_leak=0.0, thr=1.0, n=3):
    full = lambda v: np.full(n, float(v))  # noqa: E731
    return nir.LIF(tau=full(tau), r=full(r), v_leak=full(v_leak), v_threshold=full(thr))


@pytest.mark.parametrize("k", [1, 2, 3, 5, 10])
def test_our_convention_is_exact(k):
    beta = 1 - 2.0 ** -k
    tau = 1.0 / (1 - beta)
    p = discretize(lif(tau, r=tau), dt=1.0)
    assert p.kind == "lif" and p.spiking and not p.has_current
    assert np.all(p.beta == beta) and np.all(p.in_gain == 1.0) and np.all(p.leak == 0.0)
    assert np.all(p.alpha == 0.0) and np.all(p.v_reset == 0.0) and p.shape == (3,)


def test_norse_style_r_keeps_its_input_gain():
    p = discretize(lif(tau=8.0, r=1.0, v_leak=2.0), dt=0.5)
    np.testing.assert_allclose(p.beta, 1 - 0.5 / 8)
    np.testing.assert_allclose(p.in_gain, 0.5 / 8)
    np.testing.assert_allclose(p.leak, 2.0 * 0.5 / 8)


def test_cuba_gain_is_product_of_current_and_membrane_gains():
    n = np.ones(2)
    node = nir.CubaLIF(tau_syn=4 * n, tau_mem=8 * n, r=3 * n, v_leak=0 * n, v_threshold=n, w_in=2 * n)
    p = discretize(node, dt=2.0)
    np.testing.assert_allclose(p.alpha, 1 - 2 / 4)
    np.testing.assert_allclose(p.beta, 1 - 2 / 8)
    np.testing.assert_allclose(p.in_gain, (2 * 2 / 4) * (3 * 2 / 8))
    assert p.kind == "cuba" and p.has_current


def test_if_li_cubali():
    n = np.ones(2)
    p_if = discretize(nir.IF(r=3 * n, v_threshold=n), dt=0.5)
    assert np.all(p_if.beta == 1) and np.allclose(p_if.in_gain, 1.5) and p_if.spiking
    p_li = discretize(nir.LI(tau=4 * n, r=4 * n, v_leak=0 * n), dt=1.0)
    assert not p_li.spiking and p_li.threshold is None and np.all(p_li.beta == 0.75)
    p_cli = discretize(nir.CubaLI(tau_syn=2 * n, tau_mem=4 * n, r=4 * n, v_leak=0 * n, w_in=2 * n), dt=1.0)
    assert p_cli.kind == "cubali" and np.all(p_cli.alpha == 0.5) and np.all(p_cli.in_gain == 1)


def test_bad_parameters_raise_user_errors():
    with pytest.raises(UserError, match="negative decay"):
        discretize(lif(tau=0.5, r=1.0), dt=1.0)
    with pytest.raises(UserError, match="NaN/inf"):
        discretize(lif(tau=np.inf, r=1.0), dt=1.0)
    with pytest.raises(UserError, match="not a neuron"):
        discretize(nir.Linear(np.eye(2)), dt=1.0, name="w")
    with pytest.raises(UserError, match="positive"):
        discretize(lif(tau=2.0, r=2.0), dt=0.0)


def graph(metadata):
    return nir.NIRGraph(nodes={"in": nir.Input(np.array([3])), "lif": lif(2.0, 2.0), "out": nir.Output(np.array([3]))},
                        edges=[("in", "lif"), ("lif", "out")], metadata=metadata)


def test_graph_dt_reads_metadata_or_override():
    assert graph_dt(graph({"dt": 1.0})) == 1.0
    assert graph_dt(graph({"dt": 1.0}), override=0.25) == 0.25
    with pytest.raises(UserError, match="records no dt"):
        graph_dt(graph({}))
    assert graph_metadata(graph({"dt": 2.0, "reset": "zero", "iemf_neuro": '{"time_steps": 4}'})) == \
        {"dt": 2.0, "reset": "zero", "time_steps": 4}


def test_unsupported_reset_raises():
    assert graph_reset(graph({})) == "zero"
    with pytest.raises(UserError, match="subtract"):
        graph_reset(graph({"reset": "subtract"}))
