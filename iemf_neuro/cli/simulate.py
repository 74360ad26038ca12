"""`iemf-neuro simulate`: simulate a run or a NIR graph in Lava."""

from __future__ import annotations

import argparse

from iemf_neuro.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("simulate", help="simulate a run or a NIR graph in Lava", description="simulate a run or a NIR graph in Lava")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise UserError("'simulate' has not landed yet in this version of iemf-neuro")
