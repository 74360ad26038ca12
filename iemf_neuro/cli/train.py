"""`iemf-neuro train`: train an IEMF spiking network into a run directory."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from iemf_neuro.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train an IEMF spiking network",
        description="Train an audio-visual spiking network (snnTorch, zero-reset LIF) with IEMF or a baseline. "
                    "Multi-process: torchrun --nproc_per_node N $(which iemf-neuro) train ...")
    parser.add_argument("--config", default="avdigits-mlp",
                        help="named run config: avdigits-mlp (default), avdigits-cnn, cremad-resnet18")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default runs/CONFIG-METHOD-sSEED)")
    parser.add_argument("--method", default=None,
                        help="plain | aux-heads | iemf (default) | ogm-ge | ogm-ge+iemf")
    parser.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last.pt")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set lr=1e-3 --set model.time_steps=8 (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iemf_neuro.training.config import get_run_config, run_config_from_dict
    from iemf_neuro.training.trainer import train

    config = get_run_config(args.config, args.method, args.epochs, args.seed, args.overrides)
    out = args.out or Path("runs") / f"{config.name}-{config.train.method}-s{config.train.seed}"
    if args.resume:
        stored = out / "config.json"
        if not stored.is_file():
            raise UserError(f"nothing to resume in {out} (no config.json); drop --resume to start a new run")
        try:
            record = json.loads(stored.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{stored} is damaged ({exc}); restore it or start a new run without --resume") from exc
        if not isinstance(record, dict):
            raise UserError(f"{stored} does not hold a run config; restore it or start a new run without --resume")
        record.pop("provenance", None)
        config = run_config_from_dict(record)
        if args.epochs is not None:
            config = run_config_from_dict({**config.to_dict(),
                                           "train": {**config.to_dict()["train"], "epochs": args.epochs}})
    result = train(out, config, resume=args.resume, device=args.device, progress=not args.quiet)
    if os.environ.get("RANK", "0") != "0":
        return 0
    test = result.test
    print(f"{out}: test accuracy {test['accuracy']:.4f} (audio head {test['audio_accuracy']:.4f}, visual head "
          f"{test['visual_accuracy']:.4f}); best epoch {result.best_epoch + 1} of {config.train.epochs}")
    return 0
