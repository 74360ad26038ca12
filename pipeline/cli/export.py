"""`iemf-neuro export`: export a trained run to a NIR graph, with fusion gains set or chosen for a deployment."""

from __future__ import annotations

import argparse

from iemf_neuro.errors import UserError

GAIN_HELP = ("fusion gains folded into the projections: unity (default), reliability (weights from each "
             "modality's validation reliability under the deployment condition), power-of-two (the most accurate "
             "pair of powers of two on validation), or explicit audio=G,visual=G")


def parse_gains(text: str) -> dict[str, float]:
    """``audio=1.2,visual=0.8`` -> {"audio": 1.2, "visual": 0.8} (range checks happen at export)."""
    gains: dict[str, float] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--fusion-gain entry {part!r} is neither a rule nor MODALITY=GAIN; write e.g. "
                            "reliability or audio=1.2,visual=0.8")
        try:
            gains[key] = float(value)
        except ValueError:
            raise UserError(f"--fusion-gain {key}={value!r} is not a number; write e.g. {key}=1.0") from None
    return gains


def add_condition_arguments(parser: argparse.ArgumentParser) -> None:
    """The declared deployment condition: what the gains are chosen for."""
    parser.add_argument("--audio-snr-db", type=float, help="deployment condition: microphone SNR in dB")
    parser.add_argument("--image-noise-std", type=float, default=0.0, help="deployment condition: pixel noise std")
    parser.add_argument("--image-occlusion", type=float, default=0.0,
                        help="deployment condition: occluded image fraction")


def condition_of(args: argparse.Namespace) -> dict[str, float | None]:
    return {"audio_snr_db": args.audio_snr_db, "image_noise_std": args.image_noise_std,
            "image_occlusion": args.image_occlusion}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a trained run to a NIR graph",
        description="Export RUN_DIR's best model to NIR (default RUN_DIR/model.nir). The fusion gains are folded "
                    "into the fusion projections; set them, or choose them for the deployment condition given by "
                    "--audio-snr-db / --image-noise-std / --image-occlusion (see docs/nir.md).")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by `iemf-neuro train`")
    parser.add_argument("--out", help="output .nir path (default RUN_DIR/model.nir)")
    parser.add_argument("--fusion-gain", default="unity", metavar="RULE|audio=G,visual=G", help=GAIN_HELP)
    add_condition_arguments(parser)
    parser.add_argument("--calibration-split", default="val", choices=("train", "val"),
                        help="split the gains are chosen on (never test)")
    parser.add_argument("--mantissa-bits", type=int, default=3,
                        help="reliability: fractional bits of the gain mantissa (gain = mantissa * 2**exp); "
                             "0: powers of two")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.export import GAIN_RULES, export_for_condition, export_run

    condition = condition_of(args)
    chosen_by_rule = args.fusion_gain in GAIN_RULES
    if not chosen_by_rule or args.fusion_gain == "unity":
        if args.audio_snr_db is not None or args.image_noise_std or args.image_occlusion:
            raise UserError("--audio-snr-db/--image-noise-std/--image-occlusion declare the condition gains are "
                            "chosen for; add --fusion-gain reliability or --fusion-gain power-of-two")
        gains = None if chosen_by_rule else parse_gains(args.fusion_gain)
        print(f"wrote {export_run(args.run_dir, args.out, gains)}")
        return 0
    path, chosen = export_for_condition(args.run_dir, args.out, args.fusion_gain, condition, args.calibration_split,
                                        args.mantissa_bits)
    print(f"{chosen.rule} gains audio={chosen.gains['audio']:g} visual={chosen.gains['visual']:g}"
          + (f" (reliability audio {chosen.reliability['audio']:.3f}, visual {chosen.reliability['visual']:.3f}, "
             f"common gain {chosen.common_gain:.3f})" if chosen.reliability else
             f" (validation accuracy {chosen.accuracy:.4f})"))
    print(f"wrote {path}")
    return 0
