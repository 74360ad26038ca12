"""Built-in targets carry citations and honest kinds; user files override them or fail with one line."""

import pytest

from hardware_targets.targets import KINDS, load_target
from iemf_neuro.errors import UserError


@pytest.mark.parametrize("name", ["loihi1", "loihi2", "truenorth", "ann-gpu"])
def test_builtin_targets_load_with_citations(name):
    target = load_target(name)
    assert target.constants and all(c.citation and c.kind in KINDS for c in target.constants.values())


def test_loihi2_never_claims_measured_per_op_figures():
    target = load_target("loihi2")
    per_op = [k for k in target.constants if k.startswith(("e_", "t_"))]
    assert per_op and all(target.constants[k].kind in ("borrowed", "calibrated") for k in per_op)
    assert target.constants["t_synop_s"].kind == "calibrated"  # fitted to PilotNet's measured step time
    assert target.constants["static_power_w"].kind == "measured-board"
    assert target.constants["neurons_per_core"].kind == "calibrated"  # Lava's partition, not the brief's 8,192


def test_every_range_is_ordered_and_published_bounds_stay_bounds():
    for name in ("loihi1", "loihi2", "truenorth", "ann-gpu"):
        assert all(c.low <= c.value <= c.high for c in load_target(name).constants.values())
    e, t = load_target("loihi1").constants["e_synop_j"], load_target("loihi1").constants["t_synop_s"]
    assert e.low == e.value == 23.6e-12 < e.high  # Davies: a minimum
    assert t.low < t.value == t.high == 3.5e-9  # Davies: a maximum


def test_loihi1_published_constants_verbatim():
    v = load_target("loihi1").value
    assert (v("e_synop_j"), v("e_update_active_j"), v("e_update_inactive_j"), v("e_spike_j")) == \
        (23.6e-12, 81e-12, 52e-12, 1.7e-12)
    assert (v("t_synop_s"), v("t_barrier_1tile_s"), v("t_barrier_32tiles_s")) == (3.5e-9, 113e-9, 465e-9)
    assert (v("max_input_axons"), v("max_output_axons"), v("synaptic_memory_bits")) == (4096, 4096, 2**20)
    c = load_target("loihi1").constants  # high ends: two north-south tile hops (Davies 2018, Table 2)
    assert c["e_spike_j"].high == pytest.approx(1.7e-12 + 2 * 4.2e-12)
    assert c["t_spike_s"].high == pytest.approx(2.1e-9 + 2 * 6.5e-9)


def test_truenorth_claims_no_measurement_it_has_not_confirmed():
    c = load_target("truenorth").constants
    assert {c[k].kind for k in ("static_power_w", "e_synop_j", "e_update_active_j", "e_update_inactive_j",
                                "e_spike_j")} == {"assumption"}


def test_toml_override_of_a_builtin(tmp_path):
    path = tmp_path / "cal.toml"
    path.write_text('base = "loihi2"\nname = "loihi2-cal"\n[constants.e_synop_j]\nvalue = 5e-12\n'
                    'kind = "calibrated"\ncitation = "our board, 2024"\n')
    target = load_target(path)
    assert target.name == "loihi2-cal" and target.value("e_synop_j") == 5e-12
    assert target.value("e_spike_j") == 1.7e-12 and "calibrated" in target.kinds()


def test_yaml_target(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("base: ann-gpu\nname: gpu8\nconstants:\n  e_mac_j: {value: 0.23e-12, kind: arithmetic-only, "
                    "citation: 'Horowitz 2014, 8-bit int mult + add'}\n")
    assert load_target(path).value("e_mac_j") == 0.23e-12


@pytest.mark.parametrize("body,message", [
    ('base = "loihi2"\n[constants.e_synop_j]\nvalue = 5e-12\nkind = "measured"\n', "needs exactly value, kind, citation"),
    ('base = "loihi2"\n[constants.e_synop_j]\nvalue = 5e-12\nkind = "guess"\ncitation = "x"\n', "kind 'guess'"),
    ('base = "loihi2"\n[constants.e_synop_j]\nvalue = -1\nkind = "measured"\ncitation = "x"\n', "finite number >= 0"),
    ('base = "loihi2"\n[constants.e_warp_j]\nvalue = 1\nkind = "measured"\ncitation = "x"\n', "unknown constants"),
    ('base = "loihi2"\ncolour = "red"\n', "unknown keys"),
    ('name = "x"\nmodel = "neuromorphic"\n', "missing constants"),
    ('name = "x"\nmodel = "quantum"\n', "model 'quantum'"),
    ('base = "loihi2"\n[constants.neurons_per_core]\nvalue = 2.5\nkind = "spec"\ncitation = "x"\n', "whole number"),
    ('base = "loihi2"\n[constants.e_spike_j]\nvalue = 1\nlow = 2\nkind = "spec"\ncitation = "x"\n', "low <= value"),
    ('base = "loihi2"\n[constants.cores_per_chip]\nvalue = 1\nhigh = 2\nkind = "spec"\ncitation = "x"\n', "no low/high"),
    ('base = "loihi2"\n[constants.dense_synapse_bits]\nvalue = 9\nlow = 8\nkind = "spec"\ncitation = "x"\n',
     "no low/high"),
    ('base = "loihi2"\npartitioner = "greedy"\n', "partitioner 'greedy'"),
    ("name = [unclosed\n", "not valid TOML"),
])
def test_invalid_target_files_fail_with_one_line(tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(UserError, match=message) as info:
        load_target(path)
    assert "\n" not in str(info.value)


def test_unknown_target_name_lists_choices():
    with pytest.raises(UserError, match="choose one of .*ann-gpu.*loihi1"):
        load_target("loihi9")
