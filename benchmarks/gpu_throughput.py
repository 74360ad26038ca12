"""Training throughput of cremad-resnet18 on synthetic CREMA-D-shaped tensors, side by side with the ANN anchor.

In one process: (1) the anchor script's plain-ANN ResNet-18 pair (``anchor_resnet_pair.py``, fp32, same
batch), then (2) our spiking cremad-resnet18 trained with our real step (IEMF loss + gradient modulation,
T steps, zero-reset LIF). The SNN cannot beat T ANN passes, so the figure of merit is

    ratio = ours_samples_per_s / (ann_samples_per_s / T)        (floor 0.8)

Several builds of ours (``--variants``: eager or compiled neuron kernels, channels_last, bf16) are timed
against the same ANN measurement, each after its own warm-up (which absorbs torch.compile's compilation).

The anchor is the team's ``shared/bench/anchor_resnet_pair.py`` beside the checkout when there is one, else
the copy committed here (``benchmarks/support/anchor_resnet_pair.py``); the first line printed says which.

Usage (GPU):  python benchmarks/gpu_throughput.py --variants eager,compiled
No arguments: CUDA when present (batch 128, 20 steps); otherwise the CPU with batch 4, 3 steps (the anchor's
              own step on the CPU: a CPU ratio, not the GPU floor; add --small for a smoke test)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from iemf_neuro.training.config import get_run_config
from iemf_neuro.training.trainer import StepContext, build_net, configure_determinism, make_optimizer, train_step

ANCHORS = (Path(__file__).resolve().parents[2] / "shared" / "bench" / "anchor_resnet_pair.py",
           Path(__file__).resolve().parent / "support" / "anchor_resnet_pair.py")
CUDA_DEFAULTS = {"batch": 128, "steps": 20, "warmup": 3}
CPU_DEFAULTS = {"batch": 4, "steps": 3, "warmup": 1}
SMALL_SHAPES = {"audio": (1, 33, 24), "visual": (3, 32, 32)}  # --small: every ResNet stage still downsamples


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_anchor(path: Path, batch: int):
    """Import the anchor by path; it reads its batch size from sys.argv at import time."""
    if not path.is_file():
        raise SystemExit(f"error: anchor script {path} not found; pass --anchor PATH (or --anchor none)")
    spec = importlib.util.spec_from_file_location("anchor_resnet_pair", path)
    module = importlib.util.module_from_spec(spec)
    argv = sys.argv
    sys.argv = [str(path), str(batch)]
    try:
        spec.loader.exec_module(module)
    finally:
        sys.argv = argv
    return module


class _NoCuda:
    """torch.cuda's timing and memory calls as the anchor makes them, for a CPU run: nothing to wait for,
    no peak memory to read (reported as 0)."""

    synchronize = reset_peak_memory_stats = staticmethod(lambda *args: None)
    max_memory_allocated = staticmethod(lambda *args: 0)


class _TorchOnCpu:
    def __getattr__(self, name: str):
        return _NoCuda if name == "cuda" else getattr(torch, name)


def run_anchor_on(anchor, device: torch.device) -> None:
    """Point the anchor's own bench() at ``device``; on the CPU its CUDA calls become no-ops, so the
    ANN-over-T comparison can be made (as a CPU figure) where no GPU is lent."""
    anchor.dev = str(device)
    if device.type == "cpu":
        anchor.torch = _TorchOnCpu()


VARIANT_OPTIONS = ("eager", "compiled", "channels_last", "bf16")


def parse_variant(spec: str) -> dict:
    """'compiled+channels_last' -> our step's options; the neuron kernel defaults to eager."""
    parts = spec.split("+")
    unknown = sorted(set(parts) - set(VARIANT_OPTIONS))
    if unknown or ("eager" in parts and "compiled" in parts):
        raise SystemExit(f"error: bad variant {spec!r}; join options from {', '.join(VARIANT_OPTIONS)} with '+'")
    return {"neuron_kernel": "compiled" if "compiled" in parts else "eager",
            "channels_last": "channels_last" in parts, "bf16": "bf16" in parts}


def measure_ours(args: argparse.Namespace, device: torch.device, variant: str, options: dict) -> dict:
    overrides = [f"method={args.method}", "deterministic=false", f"model.time_steps={args.time_steps}"]
    overrides += [f"{key}={str(value).lower()}" for key, value in options.items()]
    config = get_run_config("cremad-resnet18", overrides=overrides)
    if args.small:
        model = replace(config.model, audio=replace(config.model.audio, input_shape=SMALL_SHAPES["audio"]),
                        visual=replace(config.model.visual, input_shape=SMALL_SHAPES["visual"]))
        config = replace(config, model=model)
    configure_determinism(False, device)
    net = build_net(config, device)
    optimizer = make_optimizer(net, config)
    gen = torch.Generator(device=device).manual_seed(0)
    ctx = StepContext(net, net, config, optimizer, gen, torch.Generator(device=device).manual_seed(1))
    audio = torch.rand(args.batch, *config.model.audio.input_shape, device=device, generator=gen)
    image = torch.rand(args.batch, *config.model.visual.input_shape, device=device, generator=gen)
    labels = torch.randint(0, config.model.num_classes, (args.batch,), device=device, generator=gen)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(args.warmup):
        train_step(ctx, audio, image, labels, epoch=0)
    _sync(device)
    tic = time.perf_counter()
    for _ in range(args.steps):
        stats = train_step(ctx, audio, image, labels, epoch=0)
    _sync(device)
    dt = time.perf_counter() - tic
    peak = round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None
    return {"variant": variant, "samples_per_s": float(f"{args.batch * args.steps / dt:.4g}"), "peak_mem_gib": peak,
            "loss": float(stats["loss"]), "method": args.method, "time_steps": args.time_steps, **options,
            "audio_shape": list(config.model.audio.input_shape), "visual_shape": list(config.model.visual.input_shape)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchor", default=None, help="anchor_resnet_pair.py path, or 'none' (default: see above)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=None, help="default 128 on CUDA, 4 on the CPU")
    parser.add_argument("--time-steps", type=int, default=4)
    parser.add_argument("--steps", type=int, default=None, help="timed optimisation steps (20 on CUDA, 3 on the CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (3 on CUDA, 1 on the CPU)")
    parser.add_argument("--method", default="iemf", help="training method of our step (default iemf)")
    parser.add_argument("--variants", default="eager",
                        help="comma-separated builds of ours, each options joined by '+' from "
                             f"{', '.join(VARIANT_OPTIONS)} (e.g. eager,compiled,compiled+channels_last)")
    parser.add_argument("--small", action="store_true", help="shrunken input shapes (CPU smoke test)")
    parser.add_argument("--naive-snn", action="store_true", help="also time the anchor's naive snnTorch SNN")
    args = parser.parse_args()
    for key, value in (CUDA_DEFAULTS if args.device.startswith("cuda") else CPU_DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.anchor = args.anchor or str(next(p for p in ANCHORS if p.is_file()))
    builds = {variant: parse_variant(variant) for variant in args.variants.split(",")}
    want_bf16 = any(options["bf16"] for options in builds.values())
    if args.device == "cpu" and args.anchor != "none" and want_bf16:
        raise SystemExit("error: bf16 builds are compared with the anchor's CUDA bf16 ANN; on the CPU use fp32 "
                         "builds or --anchor none")
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__}, device {name}, batch {args.batch}, T {args.time_steps}, anchor {args.anchor}",
          flush=True)

    result: dict = {}
    if args.anchor != "none":
        anchor = load_anchor(Path(args.anchor), args.batch)
        anchor.STEPS, anchor.T = args.steps, args.time_steps
        run_anchor_on(anchor, device)
        result["ann"] = anchor.bench(False, False)
        print("ann", json.dumps(result["ann"]), flush=True)
        if want_bf16:
            result["ann_bf16"] = anchor.bench(False, True)
            print("ann_bf16", json.dumps(result["ann_bf16"]), flush=True)
        if args.naive_snn:
            result["naive_snn"] = anchor.bench(True, False)
            print("naive_snn", json.dumps(result["naive_snn"]), flush=True)
    for variant, options in builds.items():
        ours = measure_ours(args, device, variant, options)
        print("ours", json.dumps(ours), flush=True)
        if "ann" in result:
            ann = result["ann_bf16" if ours["bf16"] else "ann"]  # same precision on both sides
            ann_over_t = ann["samples_per_s"] / args.time_steps
            ratio = ours["samples_per_s"] / ann_over_t
            summary = {"variant": variant, "ours_samples_per_s": ours["samples_per_s"],
                       "ann_samples_per_s": ann["samples_per_s"], "ann_over_T": round(ann_over_t, 1),
                       "ratio_to_ann_over_T": float(f"{ratio:.4g}"), "floor": 0.8, "device": device.type,
                       "meets_floor": ratio >= 0.8 if device.type == "cuda" and not args.small else None,
                       "ours_peak_mem_gib": ours["peak_mem_gib"], "ann_peak_mem_gib": ann["peak_mem_gib"]}
            print("summary", json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
