"""The `finsent` entry point: the parser made of every command group, and the error policy."""

from __future__ import annotations

import argparse
import logging
import sys

from connectors.errors import UserInputError
from pipeline.cli import alert, dev, model, observe, scrape, stream
from pipeline.cli.common import with_settings

log = logging.getLogger("finsent")

# Order of the groups in `finsent --help`: running the stream and feeding it first, the model and
# alerts after.
COMMAND_GROUPS = (stream, scrape, observe, model, alert, dev)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finsent", description="Real-time financial news classification.")
    parser.add_argument("--text-logs", action="store_true", help="human-readable logs instead of JSON")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.add_commands(sub, with_settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except UserInputError as exc:  # the operator's input: one clear line, no traceback
        print(f"finsent: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the last line of defence: a clear message, not a traceback
        log.exception("command failed")
        print(f"finsent: error: {exc}", file=sys.stderr)
        return 1
