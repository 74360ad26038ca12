"""`iemf-neuro evaluate`: evaluate a trained run (inverse-effectiveness sweep)."""

from __future__ import annotations

import argparse

from iemf_neuro.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="evaluate a trained run (inverse-effectiveness sweep)", description="evaluate a trained run (inverse-effectiveness sweep)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise UserError("'evaluate' has not landed yet in this version of iemf-neuro")
