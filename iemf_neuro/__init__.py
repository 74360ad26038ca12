"""iemf-neuro: audio-visual IEMF spiking networks, from snnTorch training to Loihi-style Lava simulation.

Data flows one way: ``iemf_neuro`` (data, models, training) -> ``converters`` (model -> NIR -> Lava)
-> ``hardware_targets`` (targets, simulation runs, costs, reports).
"""

__version__ = "0.1.0"
