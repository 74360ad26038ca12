"""`iemf-neuro data`: build and inspect the AV-Digits dataset."""

from __future__ import annotations

import argparse

from iemf_neuro.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="build and inspect the AV-Digits dataset", description="build and inspect the AV-Digits dataset")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise UserError("'data' has not landed yet in this version of iemf-neuro")
