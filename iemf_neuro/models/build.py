"""Build an ``IEMFNet`` from a ``ModelConfig``: the branch architectures live here."""

from __future__ import annotations

import copy

import torch
from torch import nn

from .config import BranchConfig, ModelConfig
from .gate import build_gate
from .network import Branch, Fusion, IEMFNet, ResidualBlock, SpikingStage
from .neurons import NeuronConfig, make_neuron


def out_shape(module: nn.Module, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Output shape of one sample, probed in eval mode so BatchNorm's running statistics stay untouched."""
    was_training = module.training
    module.eval()
    with torch.no_grad():
        shape = tuple(module(torch.zeros(1, *in_shape)).shape[1:])
    module.train(was_training)
    return shape


def stage(synapse: nn.Sequential, in_shape: tuple[int, ...], neuron: NeuronConfig):
    shape = out_shape(synapse, in_shape)
    return SpikingStage(synapse, make_neuron(neuron, shape)), shape


def mlp_branch(cfg: BranchConfig, neuron: NeuronConfig):
    blocks, shape = [], cfg.input_shape
    for i, width in enumerate(cfg.widths):
        layers = ([nn.Flatten()] if i == 0 and len(shape) > 1 else []) + [nn.Linear(_numel(shape), width)]
        block, shape = stage(nn.Sequential(*layers), shape, neuron)
        blocks.append(block)
    return blocks, shape, nn.Sequential()


def cnn_branch(cfg: BranchConfig, neuron: NeuronConfig):
    """conv3x3 -> LIF, then (avgpool 2 -> conv3x3 -> LIF) per further width; readout avgpool 2 + flatten."""
    blocks, shape = [], cfg.input_shape
    for i, width in enumerate(cfg.widths):
        layers = ([nn.AvgPool2d(2)] if i > 0 else []) + [nn.Conv2d(shape[0], width, 3, padding=1)]
        block, shape = stage(nn.Sequential(*layers), shape, neuron)
        blocks.append(block)
    return blocks, shape, nn.Sequential(nn.AvgPool2d(2), nn.Flatten())


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int, pre: list[nn.Module] = ()) -> nn.Sequential:
    return nn.Sequential(*pre, nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(c_out))


def resnet18_branch(cfg: BranchConfig, neuron: NeuronConfig):
    """Spiking ResNet-18: stem conv7x7/2 + BN + LIF, 4 x 2 BasicBlocks (64..512); max-pool becomes avg-pool
    (sum pooling is what NIR and Loihi express); readout global average pool + flatten."""
    stem, shape = stage(conv_bn(cfg.input_shape[0], 64, 7, 2), cfg.input_shape, neuron)
    blocks, c_in = [stem], 64
    for i, c_out in enumerate((64, 128, 256, 512)):
        for j in range(2):
            stride = 2 if (i > 0 and j == 0) else 1
            pre = [nn.AvgPool2d(2)] if (i == 0 and j == 0) else []
            first, mid = stage(conv_bn(c_in, c_out, 3, stride, pre), shape, neuron)
            second, new_shape = stage(conv_bn(c_out, c_out, 3, 1), mid, neuron)
            if stride != 1 or c_in != c_out:
                shortcut = conv_bn(c_in, c_out, 1, stride, pre)
            else:
                shortcut = nn.Sequential(*pre)
            blocks.append(ResidualBlock(first, second, shortcut))
            shape, c_in = new_shape, c_out
    return blocks, shape, nn.Sequential(nn.AvgPool2d(shape[1:]), nn.Flatten())


BRANCH_BUILDERS = {"mlp": mlp_branch, "cnn": cnn_branch, "resnet18": resnet18_branch}


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def build_model(cfg: ModelConfig) -> IEMFNet:
    """The network, its unimodal heads and, built last so that a seed initialises the deployed layers as it
    did before the probe existed, the fused readout probe Linear(fusion_dim, classes)."""
    branches, readouts, heads, dims = {}, {}, {}, {}
    for modality in ("audio", "visual"):
        bcfg: BranchConfig = getattr(cfg, modality)
        blocks, shape, readout = BRANCH_BUILDERS[bcfg.arch](bcfg, cfg.neuron)
        branches[modality] = Branch(blocks)
        readouts[modality] = readout
        dims[modality] = _numel(out_shape(readout, shape))
        heads[modality] = nn.Sequential(*copy.deepcopy(readout), nn.Linear(dims[modality], cfg.num_classes))
    fusion = Fusion(cfg.fusion, readouts, dims, cfg.fusion_dim, make_neuron(cfg.neuron, (cfg.fusion_dim,)),
                    build_gate(cfg.gate, heads, dims, cfg.fusion_dim, cfg.neuron))
    output, _ = stage(nn.Sequential(nn.Linear(cfg.fusion_dim, cfg.num_classes)), (cfg.fusion_dim,), cfg.neuron)
    return IEMFNet(branches, fusion, output, heads, nn.Linear(cfg.fusion_dim, cfg.num_classes))


def spread_batchnorm(model: nn.Module) -> None:
    """Random BatchNorm statistics and affine (torch's global generator) that let a randomly initialised
    ResNet fire at every layer: what benchmarks and tests simulate when there is no trained run."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(1.0, 2.5)
                m.bias.uniform_(0.0, 0.5)
