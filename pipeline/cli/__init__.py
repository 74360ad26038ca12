"""The ``iemf-neuro`` command: one subcommand per pipeline stage; each parses its arguments and calls ``pipeline``.

Every subcommand lives in its own module here with ``register(subparsers)``; the handler is set with
``set_defaults(func=...)`` and imports the pipeline (torch, Lava's caller side) only when it runs.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback

from iemf_neuro.errors import UserError

from . import data, energy, evaluate, export, import_netx, simulate, train, train_and_convert

SUBCOMMANDS = (data, train, evaluate, export, import_netx, simulate, energy, train_and_convert)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iemf-neuro",
        description="Train IEMF audio-visual SNNs, export them to NIR, simulate them in Lava, report energy.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        module.register(subparsers)
    return parser


def _interrupt(signum, frame) -> None:
    """SIGTERM ends a command like Ctrl-C: atomic writes drop their temporaries, Lava runs are stopped."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; finished artefacts are kept, re-run the same command to continue",
              file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a traceback dump
        if args.debug:
            traceback.print_exc()
        print(f"error: internal error ({type(exc).__name__}: {exc}); re-run with --debug for the traceback "
              "and report it", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
