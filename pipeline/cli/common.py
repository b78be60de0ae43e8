"""Helpers every command group shares: settings read once per command, and the migrated database.

They live here rather than in one command group so that no group imports another (the model
commands once held `open_engine`, and the alert commands imported the whole model CLI for it).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from pipeline.settings import Settings, load_settings
from pipeline.telemetry import logs

Handler = Callable[[argparse.Namespace, Settings], int]


def command_settings(args: argparse.Namespace) -> Settings:
    """The settings, read once for this command, with logging configured from them."""
    settings = load_settings()
    logs.configure(
        settings.log_level, settings.log_format if not getattr(args, "text_logs", False) else "text"
    )
    return settings


def with_settings(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """An argparse handler that receives the command's settings as its second argument."""
    return lambda args: handler(args, command_settings(args))


def open_engine(settings: Settings) -> Engine:
    """The database, migrated to the current schema (every command that touches it starts here)."""
    from connectors.db.engine import make_engine
    from connectors.db.migrate import upgrade

    upgrade(settings.database_url)
    return make_engine(settings.database_url)


# What each command group's `add_commands(sub, run)` receives: argparse's subparsers and `with_settings`.
Subparsers = Any
Register = Callable[[Handler], Callable[[argparse.Namespace], int]]
