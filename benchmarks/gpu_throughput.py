"""Training throughput of cremad-resnet18 on synthetic CREMA-D-shaped tensors, side by side with the ANN anchor.

In one process: (1) the anchor script's plain-ANN ResNet-18 pair (``anchor_resnet_pair.py``, fp32, same
batch), then (2) our spiking cremad-resnet18 trained with our real step (IEMF loss + gradient modulation,
T steps, zero-reset LIF). The SNN cannot beat T ANN passes, so the figure of merit is

    ratio = ours_samples_per_s / (ann_samples_per_s / T)        (floor 0.8)

Usage (GPU):  python benchmarks/gpu_throughput.py --anchor bench/anchor_resnet_pair.py
CPU smoke:    python benchmarks/gpu_throughput.py --device cpu --small --batch 2 --time-steps 2 --steps 1 --anchor none
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

DEFAULT_ANCHOR = Path(__file__).resolve().parents[1] / ".." / "shared" / "bench" / "anchor_resnet_pair.py"
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


def measure_ours(args: argparse.Namespace, device: torch.device) -> dict:
    overrides = [f"method={args.method}", "deterministic=false", f"channels_last={str(args.channels_last).lower()}",
                 f"bf16={str(args.bf16).lower()}", f"model.time_steps={args.time_steps}"]
    config = get_run_config("cremad-resnet18", overrides=overrides)
    if args.small:
        model = replace(config.model, audio=replace(config.model.audio, input_shape=SMALL_SHAPES["audio"]),
                        visual=replace(config.model.visual, input_shape=SMALL_SHAPES["visual"]))
        config = replace(config, model=model)
    configure_determinism(False, device)
    net = build_net(config, device)
    model = torch.compile(net) if args.compile else net
    optimizer = make_optimizer(net, config)
    gen = torch.Generator(device=device).manual_seed(0)
    ctx = StepContext(model, net, config, optimizer, gen, torch.Generator(device=device).manual_seed(1))
    audio = torch.rand(args.batch, *config.model.audio.input_shape, device=device, generator=gen)
    image = torch.rand(args.batch, *config.model.visual.input_shape, device=device, generator=gen)
    labels = torch.randint(0, config.model.num_classes, (args.batch,), device=device, generator=gen)
    if device.type == "cuda":
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
    return {"samples_per_s": round(args.batch * args.steps / dt, 1), "peak_mem_gib": peak,
            "loss": float(stats["loss"]), "method": args.method, "time_steps": args.time_steps,
            "bf16": args.bf16, "channels_last": args.channels_last, "compile": args.compile,
            "audio_shape": list(config.model.audio.input_shape), "visual_shape": list(config.model.visual.input_shape)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchor", default=str(DEFAULT_ANCHOR), help="anchor_resnet_pair.py path, or 'none'")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--time-steps", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20, help="timed optimisation steps")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--method", default="iemf", help="training method of our step (default iemf)")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast for ours")
    parser.add_argument("--channels-last", action="store_true", help="channels_last convolutions for ours")
    parser.add_argument("--compile", action="store_true", help="torch.compile our network")
    parser.add_argument("--small", action="store_true", help="shrunken input shapes (CPU smoke test)")
    parser.add_argument("--naive-snn", action="store_true", help="also time the anchor's naive snnTorch SNN")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, "
          f"batch {args.batch}, T {args.time_steps}", flush=True)

    result: dict = {}
    if args.anchor != "none":
        anchor = load_anchor(Path(args.anchor), args.batch)
        anchor.STEPS, anchor.T = args.steps, args.time_steps
        result["ann"] = anchor.bench(False, False)
        print("ann", json.dumps(result["ann"]), flush=True)
        if args.naive_snn:
            result["naive_snn"] = anchor.bench(True, False)
            print("naive_snn", json.dumps(result["naive_snn"]), flush=True)
    result["ours"] = measure_ours(args, device)
    print("ours", json.dumps(result["ours"]), flush=True)
    if "ann" in result:
        ann_over_t = result["ann"]["samples_per_s"] / args.time_steps
        ratio = result["ours"]["samples_per_s"] / ann_over_t
        result["summary"] = {"ours_samples_per_s": result["ours"]["samples_per_s"],
                             "ann_samples_per_s": result["ann"]["samples_per_s"], "ann_over_T": round(ann_over_t, 1),
                             "ratio_to_ann_over_T": round(ratio, 3), "floor": 0.8, "meets_floor": ratio >= 0.8,
                             "ours_peak_mem_gib": result["ours"]["peak_mem_gib"],
                             "ann_peak_mem_gib": result["ann"]["peak_mem_gib"]}
        print("summary", json.dumps(result["summary"]), flush=True)


if __name__ == "__main__":
    main()
