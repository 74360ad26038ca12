"""`iemf-neuro train-and-convert`: train -> export -> Lava float/fixed -> energy report."""

from __future__ import annotations

import argparse

from iemf_neuro.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train-and-convert", help="train -> export -> Lava float/fixed -> energy report", description="train -> export -> Lava float/fixed -> energy report")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise UserError("'train-and-convert' has not landed yet in this version of iemf-neuro")
