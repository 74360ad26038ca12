"""`iemf-neuro export`: export a trained run to a NIR graph, with fusion gains set or calibrated."""

from __future__ import annotations

import argparse

from iemf_neuro.errors import UserError


def parse_gains(text: str) -> dict[str, float]:
    """``audio=1.2,visual=0.8`` -> {"audio": 1.2, "visual": 0.8} (range checks happen at export)."""
    gains: dict[str, float] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--fusion-gain entry {part!r} is not MODALITY=GAIN; write e.g. audio=1.2,visual=0.8")
        try:
            gains[key] = float(value)
        except ValueError:
            raise UserError(f"--fusion-gain {key}={value!r} is not a number; write e.g. {key}=1.0") from None
    return gains


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a trained run to a NIR graph",
        description="Export RUN_DIR's best model to NIR (default RUN_DIR/model.nir). The fusion gains are folded "
                    "into the fusion projections; set them with --fusion-gain or calibrate them with "
                    "--calibrate-gains on validation data degraded like the deployment (see docs/nir.md).")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by `iemf-neuro train`")
    parser.add_argument("--out", help="output .nir path (default RUN_DIR/model.nir)")
    gains = parser.add_mutually_exclusive_group()
    gains.add_argument("--fusion-gain", metavar="audio=G,visual=G", help="explicit gains, e.g. audio=1.2,visual=0.8")
    gains.add_argument("--calibrate-gains", action="store_true",
                       help="calibrate gains by inverse effectiveness on the validation split under the condition "
                            "given by --audio-snr-db / --image-noise-std / --image-occlusion")
    parser.add_argument("--audio-snr-db", type=float, help="calibration condition: microphone SNR in dB")
    parser.add_argument("--image-noise-std", type=float, default=0.0, help="calibration condition: pixel noise std")
    parser.add_argument("--image-occlusion", type=float, default=0.0, help="calibration condition: occluded fraction")
    parser.add_argument("--calibration-split", default="val", choices=("train", "val"),
                        help="split to calibrate on (never test)")
    parser.add_argument("--mantissa-bits", type=int, default=3,
                        help="fractional bits of the gain mantissa (gain = mantissa * 2**exp); 0: powers of two")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.export import export_calibrated, export_run

    condition = {"audio_snr_db": args.audio_snr_db, "image_noise_std": args.image_noise_std,
                 "image_occlusion": args.image_occlusion}
    if not args.calibrate_gains and (args.audio_snr_db is not None or args.image_noise_std or args.image_occlusion):
        raise UserError("--audio-snr-db/--image-noise-std/--image-occlusion describe a calibration condition; "
                        "add --calibrate-gains")
    if not args.calibrate_gains:
        gains = parse_gains(args.fusion_gain) if args.fusion_gain else None
        print(f"wrote {export_run(args.run_dir, args.out, gains)}")
        return 0
    path, calibration = export_calibrated(args.run_dir, args.out, condition, args.calibration_split,
                                          args.mantissa_bits)
    gains = calibration.gains
    print(f"calibrated gains audio={gains['audio']:g} visual={gains['visual']:g} "
          f"(evidence audio {calibration.evidence['audio']:.3f}, visual {calibration.evidence['visual']:.3f}, "
          f"fused {calibration.evidence['av']:.3f})")
    print(f"wrote {path}")
    return 0
