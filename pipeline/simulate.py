"""Simulate in Lava: a trained run over its own dataset, checked spike for spike against snnTorch, or any
NIR file on given inputs.

The snnTorch reference runs in float64, like Lava's float models, on the very input trains Lava gets, so
any spike that differs is a conversion fault rather than rounding (docs/lava.md). A quantisation-aware run
in fixed point is checked against its own fixed-point forward instead (any differing spike is a fault), and
its agreement with the float forward is reported beside. Fixed point of other runs calibrates its weight
exponents on ``calibration_samples`` training samples (``converters.quantize``).
Writes RUN_DIR/sim_<precision>.json (accuracies, per-layer counts and mismatches, provenance) and
RUN_DIR/sim_<precision>.npz (the input trains under the Input node names and every layer's spikes under
its node name, [N, T, ...]; the format `iemf-neuro energy` counts from).
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from converters.model_to_nir import export_model
from converters.nir_io import read_graph
from converters.nir_semantics import graph_metadata
from converters.nir_to_lava import plan_graph
from converters.quantize import CALIBRATION_SAMPLES, Calibration, calibration_indices, quantize_plan, simulate_fixed
from hardware_targets.lava_sim import LavaRun, simulate_graph
from iemf_neuro.data.corruption import Corruption
from iemf_neuro.errors import UserError
from iemf_neuro.models import encode_inputs
from iemf_neuro.models.network import MODALITIES
from iemf_neuro.models.reference import fixed_point_reference, reference_spikes
from iemf_neuro.provenance import atomic_path, provenance, write_json_atomic
from iemf_neuro.training.checkpoint import load_run
from iemf_neuro.training.data import load_dataset


@dataclass(frozen=True)
class SimulationRequest:
    precision: str = "float"  # float | fixed
    split: str = "test"  # train | val | test
    limit: int | None = None  # first N samples only
    audio_snr_db: float | None = None  # corruption of the audio (None: clean)
    image_noise_std: float = 0.0  # corruption of the image
    seed: int | None = None  # corruption/encoding seed (None: the run's seed)
    timeout_s: float | None = None  # Lava watchdog
    calibration_samples: int = CALIBRATION_SAMPLES  # fixed point: training samples to calibrate on (0: by range)
    build: str = "simulation"  # simulation | loihi2-ready (only processes Loihi 2 runs on chip)
    allow_host: bool = False  # loihi2-ready: keep parts without an on-chip form on host processes
    image_occlusion: float = 0.0  # occluded fraction of the image

    @property
    def corruption(self) -> dict[str, Any]:
        """The corruption fields ``load_dataset`` takes (clean by default, whatever the run trained on)."""
        return {"audio_snr_db": self.audio_snr_db, "image_noise_std": self.image_noise_std,
                "image_occlusion": self.image_occlusion}

    @property
    def stem(self) -> str:
        """Result file stem in the run directory: sim_<precision>[_<split>][_loihi2-ready] (the test split
        unnamed)."""
        return (f"sim_{self.precision}" + ("" if self.split == "test" else f"_{self.split}")
                + ("" if self.build == "simulation" else f"_{self.build}"))


def snn_spikes(model, x_audio: torch.Tensor, x_visual: torch.Tensor, fixed: bool = False) -> dict[str, np.ndarray]:
    """snnTorch's own modules in float64 (``fixed``: the model's fixed-point forward), every layer's spikes
    batch-major [N, T, ...] uint8."""
    spikes = (fixed_point_reference(model, x_audio, x_visual) if fixed
              else reference_spikes(model, x_audio, x_visual, torch.float64))
    return {k: v.transpose(0, 1).numpy().astype(np.uint8) for k, v in spikes.items()}


def batch_major(x_audio: torch.Tensor, x_visual: torch.Tensor) -> dict[str, np.ndarray]:
    """Encoded time-major trains -> the Input node arrays ``[N, T, *shape]`` (float64, own memory) that Lava,
    the reference executor and the npz files take."""
    return {m: x.transpose(0, 1).double().contiguous().numpy() for m, x in zip(MODALITIES, (x_audio, x_visual))}


def encoded_split(run, split: str, limit: int | None = None, corruption: dict | None = None,
                  seed: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The first ``limit`` samples of ``split`` (all when None) encoded as Lava gets them (``batch_major``),
    spike trains drawn with ``seed`` (default the run's), and their labels."""
    seed = run.train_config.seed if seed is None else seed
    data = load_dataset(run.config, split, corruption)
    n = len(data.labels) if limit is None else min(limit, len(data.labels))
    if n < 1:
        raise UserError(f"--limit {limit} selects no samples; pass a positive limit")
    x = encode_inputs(run.model_config, torch.as_tensor(data.audio[:n]), torch.as_tensor(data.image[:n]),
                      torch.Generator().manual_seed(seed))
    return batch_major(*x), np.asarray(data.labels[:n])


def calibration_inputs(run, samples: int = CALIBRATION_SAMPLES, corruption: dict | None = None,
                       seed: int | None = None) -> dict[str, np.ndarray]:
    """The training samples fixed point calibrates its exponents on: ``samples`` rows drawn with ``seed``
    (default the run's), encoded with ``seed + 1``; never test data."""
    seed = run.train_config.seed if seed is None else seed
    train = load_dataset(run.config, "train", corruption)
    rows = torch.from_numpy(calibration_indices(len(train.labels), samples, seed))
    return batch_major(*encode_inputs(run.model_config, torch.as_tensor(train.audio)[rows],
                                      torch.as_tensor(train.image)[rows], torch.Generator().manual_seed(seed + 1)))


def torch_inputs(inputs: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_major`` arrays back to the time-major trains the models take."""
    return tuple(torch.from_numpy(inputs[m]).transpose(0, 1) for m in MODALITIES)


def prediction(spikes: dict[str, np.ndarray]) -> np.ndarray:
    """The class each sample is read as: the output layer's most frequent spiker; spikes [N, T, ...]."""
    return spikes["output"].sum(axis=1).argmax(axis=1)


def fixed_point_prediction(graph, inputs: dict[str, np.ndarray], calibration: dict[str, np.ndarray]) -> np.ndarray:
    """The class each sample is read as by ``graph`` quantised as ``simulate --precision fixed`` quantises it
    (exponents calibrated on ``calibration``) and run by ``simulate_fixed``, bit-exact with Lava's fixed-point
    models: no Lava process."""
    plan = plan_graph(graph)
    quant = quantize_plan(plan, inputs, Calibration.from_graph(graph, calibration))
    return prediction(simulate_fixed(plan, quant, inputs))


def compare(lava: dict[str, np.ndarray], snn: dict[str, np.ndarray]) -> tuple[dict[str, int], np.ndarray]:
    """Mismatched spike entries per layer, and per sample summed over layers."""
    per_layer, per_sample = {}, None
    for name, ref in snn.items():
        diff = (lava[name] != ref).reshape(ref.shape[0], -1).sum(axis=1)
        per_layer[name] = int(diff.sum())
        per_sample = diff if per_sample is None else per_sample + diff
    return per_layer, per_sample


def run_model_graph(run_dir: Path, run) -> Any:
    """RUN_DIR/model.nir, else a fresh export of the run's model."""
    nir_path = run_dir / "model.nir"
    return read_graph(nir_path) if nir_path.is_file() else export_model(run.model, run.model_config)


def deployed_gains(model, graph) -> None:
    """Give ``model`` the fusion gains the graph folded into its projections, so that snnTorch runs the network
    Lava runs."""
    gains = graph_metadata(graph).get("fusion", {}).get("gains")
    if gains:
        model.fusion.gain.copy_(torch.tensor([float(gains[m]) for m in MODALITIES], dtype=model.fusion.gain.dtype))


def simulate_run(run_dir: str | Path, request: SimulationRequest, graph=None, progress: bool = True) -> dict[str, Any]:
    """Simulate ``run_dir``'s model (``graph``, else RUN_DIR/model.nir, else a fresh export); returns the summary."""
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    config = run.config
    seed = run.train_config.seed if request.seed is None else request.seed
    corruption = request.corruption
    Corruption(**corruption)
    inputs, labels = encoded_split(run, request.split, request.limit, corruption, seed)
    n = len(labels)
    if graph is None:
        graph = run_model_graph(run_dir, run)
    deployed_gains(run.model, graph)
    x_a, x_v = torch_inputs(inputs)
    fixed = request.precision == "fixed"
    trained_fixed = fixed and run.train_config.quant_aware
    snn = snn_spikes(run.model, x_a, x_v, fixed=trained_fixed)
    float_snn = snn_spikes(run.model, x_a, x_v) if trained_fixed else snn
    calibration = None
    if fixed and request.calibration_samples > 0 and not trained_fixed:
        calibration = calibration_inputs(run, request.calibration_samples, corruption, seed)
    result = simulate_graph(graph, inputs, request.precision, timeout_s=request.timeout_s, progress=progress,
                            calibration=calibration, build=request.build, allow_host=request.allow_host)
    per_layer, per_sample = compare(result.spikes, snn)
    lava_pred, snn_pred, float_pred = (prediction(s) for s in (result.spikes, snn, float_snn))
    summary: dict[str, Any] = {
        "precision": request.precision, "split": request.split, "samples": n, "corruption": corruption,
        "seed": seed, "reference": "fixed-point forward" if trained_fixed else "snnTorch float64",
        "accuracy": {"lava": float((lava_pred == labels).mean()), "snntorch": float((snn_pred == labels).mean()),
                     "snntorch_float": float((float_pred == labels).mean())},
        "prediction_agreement": float((lava_pred == snn_pred).mean()),
        "float_prediction_agreement": float((lava_pred == float_pred).mean()),
        "spike_counts": {"lava": {k: int(v.sum()) for k, v in result.spikes.items()},
                         "snntorch": {k: int(v.sum()) for k, v in snn.items()}},
        "mismatches": per_layer, "mismatches_per_sample": per_sample.tolist(),
        "spike_agreement": {k: 1.0 - per_layer[k] / snn[k].size for k in per_layer},
        "float_spike_agreement": {k: float((result.spikes[k] == v).mean()) for k, v in float_snn.items()},
        "quantization": result.quantization, "deployment": result.deployment, "lava_steps": result.steps,
        "latency_steps": result.latency, "timing": {"samples_per_s": result.samples_per_s, "wall_s": result.wall_s},
        "provenance": provenance({"run": config.to_dict(), "simulation": request}, seed),
    }
    stem = run_dir / request.stem
    with atomic_path(stem.with_suffix(".npz")) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **inputs, **result.spikes)
    write_json_atomic(stem.with_suffix(".json"), summary)
    return summary


def npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Each member's (shape, dtype) from its .npy header, without reading its data."""
    headers = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            with archive.open(member) as fh:
                version = np.lib.format.read_magic(fh)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read(fh)
            headers[member.removesuffix(".npy")] = (shape, dtype)
    return headers


def physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def read_inputs(path: Path, steps: int) -> dict[str, np.ndarray]:
    """Headers first: wrong shapes and arrays larger than memory are refused before anything is read."""
    if not path.is_file():
        raise UserError(f"{path} does not exist; pass --inputs X.npz with one array per Input node")
    try:
        headers = npz_headers(path)
        for name, (shape, _) in headers.items():
            if len(shape) < 2 or shape[1] != steps:
                raise UserError(f"input {name!r} in {path} has shape {shape}, but --steps is {steps}; arrays "
                                "must be [N, T, *shape] with T = --steps")
        need = sum(math.prod(shape) * dtype.itemsize for shape, dtype in headers.values())
        memory = physical_memory()
        if need > memory:
            raise UserError(f"{path} declares {need / 2**30:.1f} GiB of inputs, more than this machine's "
                            f"{memory / 2**30:.1f} GiB of memory; simulate fewer samples per file")
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path} is not a readable .npz ({type(exc).__name__}); write it with numpy.savez") from exc


def simulate_file(graph_path: Path, inputs_path: Path, steps: int, out: Path, precision: str = "float",
                  dt: float | None = None, timeout_s: float | None = None, progress: bool = True,
                  build: str = "simulation", allow_host: bool = False) -> LavaRun:
    """Simulate any supported NIR file on ``inputs_path`` ([N, T, *shape] per Input node) into ``out`` (npz:
    the Output nodes' trains, per-sample spike counts per layer, and a JSON ``meta`` with provenance)."""
    graph = read_graph(graph_path)
    inputs = read_inputs(inputs_path, steps)
    result = simulate_graph(graph, inputs, precision, dt=dt, timeout_s=timeout_s, progress=progress, build=build,
                            allow_host=allow_host)
    counts = {name: int(s.sum()) for name, s in result.spikes.items()}
    meta = {"graph": str(graph_path), "precision": precision, "steps": result.steps,
            "latency": result.latency, "spike_counts": counts, "quantization": result.quantization,
            "deployment": result.deployment,
            "provenance": provenance({"graph": str(graph_path), "precision": precision, "dt": dt, "build": build,
                                      "allow_host": allow_host})}
    arrays = {**result.outputs, **{f"count/{n}": s.reshape(len(s), -1).sum(axis=1) for n, s in result.spikes.items()},
              "meta": np.array(json.dumps(meta, default=str))}
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return result
