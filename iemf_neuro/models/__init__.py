"""Spiking audio-visual models: neurons, network, named configs, input encoding."""

from .build import build_model
from .config import MODEL_CONFIGS, BranchConfig, ModelConfig, get_model_config, model_config_from_dict
from .encoding import encode, encode_inputs
from .network import DEPLOYABLE_FUSIONS, FUSIONS, NEURON_KERNELS, IEMFNet, NetOutput, neuron_kernels
from .neurons import NeuronConfig

__all__ = ["build_model", "MODEL_CONFIGS", "BranchConfig", "ModelConfig", "get_model_config",
           "model_config_from_dict", "encode", "encode_inputs", "DEPLOYABLE_FUSIONS", "FUSIONS", "IEMFNet",
           "NetOutput", "NeuronConfig", "NEURON_KERNELS", "neuron_kernels"]
