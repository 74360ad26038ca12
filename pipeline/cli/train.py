"""`iemf-neuro train`: train an IEMF spiking network into a run directory."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train an IEMF spiking network",
        description="Train an audio-visual spiking network (snnTorch, zero-reset LIF) with IEMF or a baseline. "
                    "Multi-process: torchrun --nproc_per_node N $(which iemf-neuro) train ...")
    parser.add_argument("--config", default=None,
                        help="named run config: avdigits-mlp (default), avdigits-cnn, cremad-resnet18")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default runs/CONFIG-METHOD-sSEED)")
    parser.add_argument("--method", default=None,
                        help="plain | aux-heads | iemf (default) | iemf-control | ogm-ge | ogm-ge+iemf")
    parser.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from checkpoints/last.pt with its recorded config; options "
                             "that would change its results are refused, --epochs may extend it")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set lr=1e-3 --set model.time_steps=8 (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.train import ConfigChanges, default_run_dir, train_run

    changes = ConfigChanges(args.config, args.method, args.epochs, args.seed, tuple(args.overrides))
    out = args.out or default_run_dir(changes)
    result = train_run(out, changes, resume=args.resume, device=args.device, progress=not args.quiet)
    if os.environ.get("RANK", "0") != "0":
        return 0
    test = result.test
    print(f"{out}: test accuracy {test['accuracy']:.4f} (audio head {test['audio_accuracy']:.4f}, visual head "
          f"{test['visual_accuracy']:.4f}); best epoch {result.best_epoch + 1} of {len(result.history)}")
    return 0
