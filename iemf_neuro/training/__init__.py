"""Training IEMF spiking networks: the IEMF rule, OGM-GE, the trainer, checkpoints and evaluation.

Nothing here imports Lava (Lava switches multiprocessing to 'fork' at import, and GPU hosts lack it).
"""

from .config import METHODS, RUN_CONFIGS, RunConfig, TrainConfig, get_run_config, run_config_from_dict

__all__ = ["METHODS", "RUN_CONFIGS", "RunConfig", "TrainConfig", "get_run_config", "run_config_from_dict"]
