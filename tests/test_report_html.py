"""Reports are self-contained, escape every string from files, and the CLI writes them from a run directory."""

import base64
import json

import nir
import numpy as np

from hardware_targets.counting import count_graph
from hardware_targets.energy import estimate
from hardware_targets.mapping import map_graph
from hardware_targets.report import write_reports
from hardware_targets.targets import load_target
from pipeline.cli import main

EVIL = "<script>alert('x')</script>"


def lif(n):
    return nir.LIF(tau=np.full(n, 8.0), r=np.full(n, 8.0), v_leak=np.zeros(n), v_threshold=np.ones(n))


def av_graph(rng):
    nodes = {"audio": nir.Input(input_type=np.array([6])), "visual": nir.Input(input_type=np.array([4])),
             "audio.0.syn0": nir.Affine(rng.normal(size=(5, 6)), np.zeros(5)), "audio.0": lif(5),
             "visual.0.syn0": nir.Affine(rng.normal(size=(3, 4)), np.zeros(3)), "visual.0": lif(3),
             "fusion.audio": nir.Linear(rng.normal(size=(4, 5))), "fusion.visual": nir.Linear(rng.normal(size=(4, 3))),
             "fusion": lif(4), "output.syn0": nir.Affine(rng.normal(size=(2, 4)), np.zeros(2)), "output": lif(2),
             "out": nir.Output(output_type=np.array([2]))}
    edges = [("audio", "audio.0.syn0"), ("audio.0.syn0", "audio.0"), ("visual", "visual.0.syn0"),
             ("visual.0.syn0", "visual.0"), ("audio.0", "fusion.audio"), ("visual.0", "fusion.visual"),
             ("fusion.audio", "fusion"), ("fusion.visual", "fusion"), ("fusion", "output.syn0"),
             ("output.syn0", "output"), ("output", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": 1.0})


def run_arrays(rng, n=3, t=5):
    inputs = {"audio": rng.random((n, t, 6)).astype(np.float32), "visual": rng.random((n, t, 4)).astype(np.float32)}
    spikes = {k: (rng.random((n, t, s)) < 0.4).astype(np.uint8)
              for k, s in (("audio.0", 5), ("visual.0", 3), ("fusion", 4), ("output", 2))}
    return inputs, spikes


def test_malicious_config_strings_are_escaped(tmp_path):
    rng = np.random.default_rng(0)
    graph = av_graph(rng)
    inputs, spikes = run_arrays(rng)
    path = tmp_path / "evil.toml"
    path.write_text(f'base = "loihi1"\nname = "evil"\ntitle = "{EVIL}"\ndescription = "{EVIL}"\n'
                    f'[constants.e_spike_j]\nvalue = 1e-12\nkind = "calibrated"\ncitation = "{EVIL}"\n')
    target = load_target(path)
    counts = count_graph(graph, inputs, spikes, source=EVIL)
    mapping = map_graph(graph, target)
    paths = write_reports(tmp_path / "out", {"evil": estimate(counts, mapping, target)}, counts, {"evil": mapping},
                          spikes=spikes)
    page = paths["html"].read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    images = [chunk.split("'")[0] for chunk in page.split("data:image/png;base64,")[1:]]
    assert len(images) == 4 and all(base64.b64decode(b).startswith(b"\x89PNG") for b in images)
    assert "http" not in page.replace("https://", "").split("<body>")[0]  # nothing fetched from outside


def make_run(tmp_path, name, rng, with_sweep=False):
    run = tmp_path / name
    run.mkdir()
    graph = av_graph(rng)
    nir.write(str(run / "model.nir"), graph)
    inputs, spikes = run_arrays(rng)
    np.savez(run / "sim_float.npz", **inputs, **spikes, labels=np.zeros(3))
    if with_sweep:  # the file `evaluate --sweep` writes, from the code that writes it (untrained model, 2 x 2 cells)
        from iemf_neuro.training.config import get_run_config
        from iemf_neuro.training.evaluate import inverse_effectiveness_sweep, save_sweep
        from iemf_neuro.training.trainer import build_net

        config = get_run_config("avdigits-mlp", seed=0)
        result = inverse_effectiveness_sweep(build_net(config), config, "test", audio_snrs_db=(None, 0.0),
                                             image_noise_stds=(0.0, 1.0), progress=False)
        save_sweep(result, run, {})
    return run


def test_cli_energy_writes_reports_and_compares(tmp_path, capsys):
    rng = np.random.default_rng(1)
    run = make_run(tmp_path, "iemf", rng, with_sweep=True)
    plain = make_run(tmp_path, "plain", rng)
    code = main(["energy", str(run), "--target", "loihi2", "--target", "ann-gpu", "--compare", str(plain)])
    out = capsys.readouterr().out
    assert code == 0 and "loihi2" in out and "borrowed" in out and "ann-gpu" in out
    record = json.loads((run / "energy.json").read_text())
    assert record["counts_source"] == "Lava simulation (sim_float.npz)"
    assert set(record["targets"]) == {"loihi2", "ann-gpu"} and set(record["compare"]) == {"loihi2", "ann-gpu"}
    assert record["provenance"]["versions"]["nir"] and record["sweep"].endswith("sweep_test.json")
    assert record["targets"]["loihi2"]["per_branch"].keys() == {"audio", "visual", "fusion"}
    page = (run / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5 and "iemf vs plain" in page
    deployability = record["deployability"]  # biases of zero, plain LIF: all of it on Loihi 2 processes
    assert deployability["host"] == {} and deployability["on_chip"]["fusion"] == "LIFReset"
    assert deployability["on_chip"]["audio->audio.0"] == "Dense" and "<h2>Deployability</h2>" in page
    assert "<h2>Inverse effectiveness</h2>" in page and "sweep_test.json (test split, 4 corruption cells)" in page


def test_a_file_that_is_not_a_sweep_is_named_not_drawn(tmp_path):
    rng = np.random.default_rng(3)
    run = make_run(tmp_path, "r", rng)
    (run / "sweep_test.json").write_text(json.dumps([{"snr_db": 0, "accuracy": 0.5}]))
    assert main(["energy", str(run), "--target", "loihi1"]) == 0
    page = (run / "report.html").read_text()
    assert "Inverse effectiveness</h2>" not in page and "is not a sweep file (expected {split, cells, fit}" in page


def test_cli_missing_model_says_to_export(tmp_path, capsys):
    assert main(["energy", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "iemf-neuro export" in err and err.count("\n") == 1


def test_cli_npz_without_inputs_is_a_user_error(tmp_path, capsys):
    rng = np.random.default_rng(2)
    run = make_run(tmp_path, "r", rng)
    _, spikes = run_arrays(rng)
    np.savez(run / "sim_float.npz", **spikes)
    assert main(["energy", str(run)]) == 2
    assert "lacks the input trains" in capsys.readouterr().err


def test_energy_without_a_simulation_encodes_with_the_runs_seed(tmp_path):
    """Counting falls back to the reference executor; rate-encoded inputs use the run's seed, the default
    of `iemf-neuro simulate RUN_DIR`, so both count the same input spikes."""
    import torch

    from converters.model_to_nir import export_model
    from pipeline.energy import executor_run
    from iemf_neuro.data import load_split
    from iemf_neuro.models import build_model, encode_inputs, get_model_config
    from iemf_neuro.training import RunConfig
    from iemf_neuro.training.checkpoint import checkpoint_paths, save_checkpoint
    from iemf_neuro.training.config import TrainConfig

    cfg = get_model_config("avdigits-mlp", encoding="rate")
    model = build_model(cfg)
    run = tmp_path / "run"
    save_checkpoint(checkpoint_paths(run)["best"], model, RunConfig(cfg.name, cfg, TrainConfig(seed=5)), epoch=0)
    (run / "config.json").write_text(json.dumps({"provenance": {}}))
    inputs, _ = executor_run(run, export_model(model, cfg), samples=3)
    split = load_split("test")
    for seed, same in ((5, True), (0, False)):
        audio, _ = encode_inputs(cfg, split.audio[:3], split.image[:3], torch.Generator().manual_seed(seed))
        assert np.array_equal(inputs["audio"], audio.transpose(0, 1).numpy()) == same


def test_figures_read_in_human_units():
    from hardware_targets.energy import Range
    from hardware_targets.report import human, span

    assert human(2.37e-4, "J") == "237 µJ" and human(0.0106, "s") == "10.6 ms" and human(1.5e-12, "J") == "1.5 pJ"
    assert human(None, "J") == "not modelled"
    assert span(Range(1e-6, 2e-6, 5e-3), "J") == "1 µJ – 5 mJ (nominal 2 µJ)" and span(Range(1, 1, 1), "s") == "1 s"
