"""`iemf-neuro evaluate`: evaluate a trained run, optionally over the inverse-effectiveness sweep."""

from __future__ import annotations

import argparse
from pathlib import Path


def _snr(text: str) -> float | None:
    return None if text.lower() in ("clean", "none") else float(text)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="evaluate a trained run (inverse-effectiveness sweep)",
        description="Evaluate RUN_DIR's best checkpoint on a split; --sweep evaluates it over audio SNR x image "
                    "noise and plots multisensory gain against the stronger unimodal accuracy. Unimodal "
                    "accuracies come from the auxiliary heads.")
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory written by `train`")
    parser.add_argument("--split", default="test", help="train, val or test (default test)")
    parser.add_argument("--sweep", action="store_true", help="run the inverse-effectiveness sweep")
    parser.add_argument("--audio-snrs", type=_snr, nargs="+", default=None, metavar="DB",
                        help="sweep audio SNRs in dB ('clean' for none); default clean 60 50 40 30 20 10")
    parser.add_argument("--image-noise", type=float, nargs="+", default=None, metavar="STD",
                        help="sweep image noise stds; default 0 0.25 0.5 0.75 1")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.evaluate import evaluate_run, sweep_run

    if args.sweep:
        result, json_path, png_path = sweep_run(args.run_dir, args.split, args.audio_snrs, args.image_noise,
                                                args.device)
        fit = result.fit
        print(f"{'audio SNR':>9} {'img std':>7} {'fused':>6} {'audio':>6} {'visual':>6} {'gain':>6}")
        for c in result.cells:
            snr = "clean" if c["audio_snr_db"] is None else f"{c['audio_snr_db']:g}"
            print(f"{snr:>9} {c['image_noise_std']:>7g} {c['accuracy']:6.3f} {c['audio_accuracy']:6.3f} "
                  f"{c['visual_accuracy']:6.3f} {c['multisensory_gain']:+6.3f}")
        print(f"gain vs stronger unimodal accuracy: slope {fit['slope']:+.3f}, r {fit['pearson_r']:+.3f} "
              f"(inverse effectiveness: negative); wrote {json_path} and {png_path}")
        return 0
    metrics, path = evaluate_run(args.run_dir, args.split, args.device)
    print(f"{args.split}: fused {metrics.accuracy:.4f}, audio head {metrics.audio_accuracy:.4f}, visual head "
          f"{metrics.visual_accuracy:.4f} ({metrics.n} samples); wrote {path}")
    return 0
