"""`iemf-neuro export`: export a trained run to a NIR graph."""

from __future__ import annotations

import argparse

from iemf_neuro.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export a trained run to a NIR graph", description="export a trained run to a NIR graph")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise UserError("'export' has not landed yet in this version of iemf-neuro")
