"""The `finsent` command line: one module per command group, `common` for what the groups share.

May import every other part of the project; nothing outside `pipeline.cli` imports it (the
launcher and `python -m pipeline.cli` excepted).
"""

from pipeline.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
