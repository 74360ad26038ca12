"""Two-process DDP on CPU (gloo): sharded data, synchronised IEMF/OGM-GE coefficients, identical weights."""

import os
import socket

import torch
import torch.multiprocessing as mp

from iemf_neuro.training.config import get_run_config

SETTINGS = ["dataset=synthetic", "synthetic_size=256", "batch_size=32", "max_batches=3", "model.time_steps=4",
            "model.encoding=rate"]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from iemf_neuro.training.trainer import train

    config = get_run_config("avdigits-mlp", method="ogm-ge+iemf", epochs=2, overrides=SETTINGS)
    result = train(os.path.join(out_dir, "run"), config, progress=False)
    torch.save(result.model.state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_run_ends_with_identical_weights(tmp_path):
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method="spawn")
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["model"]
    for key in w0:
        assert torch.equal(w0[key], w1[key]), key
        assert torch.equal(w0[key], saved[key]), key
    assert (tmp_path / "run" / "test_metrics.json").is_file()
