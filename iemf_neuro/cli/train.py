"""`iemf-neuro train`: train an IEMF spiking network."""

from __future__ import annotations

import argparse

from iemf_neuro.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train an IEMF spiking network", description="train an IEMF spiking network")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise UserError("'train' has not landed yet in this version of iemf-neuro")
