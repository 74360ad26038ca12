"""`iemf-neuro data`: build and inspect the AV-Digits dataset."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="build and inspect the AV-Digits dataset",
                                   description="build and inspect the AV-Digits dataset")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    build = actions.add_parser("build-avdigits", help="regenerate the AV-Digits file from FSDD's WAVs",
                               description="regenerate the AV-Digits file (bit-identical to the shipped one when "
                                           "given the same FSDD recordings)")
    build.add_argument("--fsdd", required=True, metavar="DIR",
                       help="FSDD's recordings/ folder (or the dataset root holding it)")
    build.add_argument("--out", metavar="PATH", default=None,
                       help="where to write the .npz (default: the file shipped inside the package)")
    build.set_defaults(func=run_build)

    info = actions.add_parser("info", help="print split sizes, class balance and feature shapes",
                              description="print split sizes, class balance and feature shapes, optionally "
                                          "after a corruption")
    info.add_argument("--split", choices=("train", "val", "test"), action="append",
                      help="split to describe (repeatable; default: all)")
    info.add_argument("--path", metavar="PATH", default=None, help="AV-Digits file (default: the shipped one)")
    info.add_argument("--audio-snr-db", type=float, default=None, metavar="X",
                      help="add noise to the audio at this SNR in dB")
    info.add_argument("--audio-noise", choices=("white", "pink"), default="white",
                      help="type of the audio noise (pink is never used in training: a mismatch test)")
    info.add_argument("--image-noise-std", type=float, default=0.0, metavar="S",
                      help="add Gaussian pixel noise of this std (pixels in [0, 1])")
    info.add_argument("--image-occlusion", type=float, default=0.0, metavar="F",
                      help="blank a rectangle covering this fraction of each image")
    info.add_argument("--seed", type=int, default=0, help="corruption seed")
    info.set_defaults(func=run_info)


def run_build(args: argparse.Namespace) -> int:
    from iemf_neuro.data.avdigits import DEFAULT_PATH
    from iemf_neuro.data.build import build_avdigits

    out = build_avdigits(args.fsdd, args.out or DEFAULT_PATH)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) and {out.name}.provenance.json")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from iemf_neuro.data import Corruption, summary

    corruption = Corruption(args.audio_snr_db, args.image_noise_std, args.image_occlusion, args.audio_noise)
    splits = tuple(dict.fromkeys(args.split or ("train", "val", "test")))
    info = summary(args.path, corruption, args.seed, splits)
    print("AV-Digits: FSDD spoken digits (CC BY-SA 4.0) paired with scikit-learn handwritten digits")
    if not corruption.is_identity:
        print(f"corruption: {corruption} seed={args.seed}")
    for split, row in info.items():
        print(f"{split:>5}: {row['samples']:5d} samples ({row['recordings']} recordings, {row['images']} images)  "
              f"audio {'x'.join(map(str, row['audio_shape']))} (mel x frames) in "
              f"[{row['audio_range'][0]:.2f}, {row['audio_range'][1]:.2f}]  "
              f"image {'x'.join(map(str, row['image_shape']))} in "
              f"[{row['image_range'][0]:.2f}, {row['image_range'][1]:.2f}]")
        print(f"       per class 0-9: {' '.join(str(n) for n in row['per_class'])}")
    return 0
