"""`iemf-neuro energy`: energy, latency and resource reports per hardware target."""

from __future__ import annotations

import argparse

from iemf_neuro.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("energy", help="energy, latency and resource reports per hardware target", description="energy, latency and resource reports per hardware target")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise UserError("'energy' has not landed yet in this version of iemf-neuro")
