"""Neuron-loop cost of one spiking ResNet layer, forward + backward, side by side in one run.

The ANN pays one ReLU per activation; a spiking layer steps its LIF neurons through T time steps. This times
one layer's activation ``[T, B, C, H, W]`` (default: the visual stem, 64 x 112 x 112) through

    relu         ReLU on all T steps at once: the ANN-over-T cost of the same activations (the floor)
    snntorch     snnTorch's own Leaky modules, one call per step (what the naive snnTorch SNN runs)
    eager        our fused zero-reset LIF node, loops run eagerly
    compiled     the same node with its loops compiled by torch.compile (one kernel per loop)

and prints each one's time and its ratio to snnTorch's and to the ReLU floor.

Usage:  python benchmarks/neuron_kernel.py [--device cuda] [--batch 128] [--shape 64 112 112] [--time-steps 4]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from iemf_neuro.models import NeuronConfig, neuron_kernels
from iemf_neuro.models.network import run_neurons
from iemf_neuro.models.neurons import make_neuron


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_build(name: str, neuron: torch.nn.Module, current: torch.Tensor, grad: torch.Tensor, repeats: int) -> float:
    """Median seconds of one forward + backward over ``current``, after one warm-up call."""
    def once() -> None:
        x = current.detach().requires_grad_()
        if name == "relu":
            out = torch.relu(x)
        else:
            with neuron_kernels(name):
                out = run_neurons(neuron, x)
        out.backward(grad)

    once()
    times = []
    for _ in range(repeats):
        _sync(current.device)
        tic = time.perf_counter()
        once()
        _sync(current.device)
        times.append(time.perf_counter() - tic)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--shape", type=int, nargs="+", default=[64, 112, 112], help="one sample's neurons")
    parser.add_argument("--time-steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--kind", default="lif", choices=("lif", "cuba"))
    parser.add_argument("--builds", default="relu,snntorch,eager,compiled")
    args = parser.parse_args()
    device = torch.device(args.device)
    gen = torch.Generator(device=device).manual_seed(0)
    neuron = make_neuron(NeuronConfig(kind=args.kind), tuple(args.shape)).to(device)
    size = (args.time_steps, args.batch, *args.shape)
    current = torch.randn(size, device=device, generator=gen) + 0.5
    grad = torch.randn(size, device=device, generator=gen)
    print(f"torch {torch.__version__}, {device}, activation {list(size)} ({current.numel() / 1e6:.1f} M)", flush=True)

    seconds = {b: time_build(b, neuron, current, grad, args.repeats) for b in args.builds.split(",")}
    for build, s in seconds.items():
        row = {"build": build, "ms": round(s * 1e3, 2)}
        if "snntorch" in seconds:
            row["speedup_vs_snntorch"] = round(seconds["snntorch"] / s, 2)
        if "relu" in seconds:
            row["times_relu"] = round(s / seconds["relu"], 2)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
