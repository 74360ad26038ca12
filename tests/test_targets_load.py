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
    assert per_op and all(target.constants[k].kind == "borrowed" for k in per_op)
    assert target.constants["static_power_w"].kind == "measured-board"
    assert target.value("neurons_per_core") * target.value("cores_per_chip") == 2**20  # 1 M neurons per chip


def test_loihi1_published_constants_verbatim():
    v = load_target("loihi1").value
    assert (v("e_synop_j"), v("e_update_active_j"), v("e_update_inactive_j"), v("e_spike_j")) == \
        (23.6e-12, 81e-12, 52e-12, 1.7e-12)
    assert (v("t_synop_s"), v("t_barrier_1core_s"), v("t_barrier_32cores_s")) == (3.5e-9, 113e-9, 465e-9)


def test_toml_override_of_a_builtin(tmp_path):
    path = tmp_path / "cal.toml"
    path.write_text('base = "loihi2"\nname = "loihi2-cal"\n[constants.e_synop_j]\nvalue = 5e-12\n'
                    'kind = "calibrated"\ncitation = "our board, 2024"\n')
    target = load_target(path)
    assert target.name == "loihi2-cal" and target.value("e_synop_j") == 5e-12
    assert target.value("e_spike_j") == 1.7e-12 and "calibrated" in target.kinds()


def test_yaml_target(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("name: gpu8\nmodel: ann\nconstants:\n  e_mac_j: {value: 0.23e-12, kind: arithmetic-only, "
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
